"""`rag finetune data`: RAFT examples from real indexes (the shared PDF corpus, the demo documents)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from finetune.examples import DataError, indexed_source, read_examples
from rag.generate.base import GenerationRequest
from rag.generate.prompt import NOT_FOUND_MARKER, Passage, neutralise
from testkit.fake_llm_server import FakeLLMServer
from tests.app.test_cli import rag
from tests.finetune.conftest import write_jsonl


def _questions(docs: Path) -> list[dict]:
    return [
        {"question": "Which LaTeX class is the ElegantPaper template based on?", "answer": "article",
         "source": str(docs / "en/elegantpaper-en.pdf"), "page": 1},
        {"question": "ElegantPaper 中文说明文档的版本号是多少？", "answer": "0.08", "source": str(docs / "zh/elegantpaper-cn.pdf")},
        {"question": "What corpus does the S2ORC paper introduce?", "source": str(docs / "en/acl2020-main-447.pdf"), "page": 1},
        {"question": "Who was the petitioner in the case argued on January 13, 2009?", "answer": "KNOWLES",
         "source": str(docs / "en/scotus-transcript-p1.pdf")},
        {"question": "Which agency proposed the airworthiness directive?", "answer": "Federal Aviation Administration",
         "source": str(docs / "en/federal-register-2020-17221.pdf"), "page": 1},
        {"question": "中国科学院大学学位论文模板的作者是谁？", "answer": "莫晃锐", "source": str(docs / "zh/ucasthesis-template-guide.pdf"), "page": 1},
        {"question": "How many background checks did NICS process?", "source": str(docs / "en/nics-background-checks-2015-11.pdf")},
        {"question": "Where is the moon base?", "source": str(docs / "en/not-indexed.pdf")},
    ] * 3  # three examples per question: enough for both splits and the no-oracle share


@pytest.mark.slow
def test_examples_from_a_questions_file_split_by_document_in_the_live_format(corpus_index, tmp_path: Path):
    docs, index_dir, _ = corpus_index
    as_cited = {str(docs / "en/acl2020-main-447.pdf"): "acl2020-main-447.pdf", str(docs / "zh/elegantpaper-cn.pdf"): "zh/elegantpaper-cn.pdf"}
    # sources as citations show them (a file name, the end of a path) name the same files as full paths
    questions = write_jsonl(tmp_path / "questions.jsonl", [{**q, "source": as_cited.get(q["source"], q["source"])} for q in _questions(docs)])
    out = tmp_path / "raft.jsonl"
    result = rag("finetune", "data", "--index", str(index_dir), "--out", str(out), "--questions", str(questions),
                 "--distractors", "3", "--validation-share", "0.3", "--seed", "7")
    assert result.returncode == 0, result.stderr
    assert "3 questions skipped: their source is not in" in result.stderr
    examples = read_examples(out)
    assert len(examples) == 21 and f"21 examples written to {out}" in result.stdout

    documents = {split: {p["source"] for e in examples if e["split"] == split for p in e["passages"]} for split in ("train", "validation")}
    assert documents["train"] and documents["validation"] and not documents["train"] & documents["validation"]
    for split in ("train", "validation"):
        members = [e for e in examples if e["split"] == split]
        assert sum(e["oracle"] is None for e in members) == round(0.2 * len(members))

    for example in examples:
        passages = [Passage(p["n"], p["source"], p["page"], p["text"], p["chunk_id"]) for p in example["passages"]]
        assert [p.n for p in passages] == list(range(1, len(passages) + 1))
        served = GenerationRequest(example["question"], passages).messages  # what backends get, but for the boundary
        tag = re.search(r"documents-[0-9a-f]{16}", example["messages"][0]["content"]).group(0)
        assert example["messages"][:-1] == json.loads(re.sub(r"documents-[0-9a-f]{16}", tag, json.dumps(served)))
        target = example["messages"][-1]
        assert target["role"] == "assistant"
        if example["split"] == "train":
            assert len(passages) == 4  # three distractors and the oracle, or four distractors
        given = next(q for q in _questions(docs) if q["question"] == example["question"])
        if example["oracle"] is None:  # neither the oracle's document nor the answer is in the context
            assert target["content"] == NOT_FOUND_MARKER and passages
            assert all(Path(p.source).resolve() != Path(given["source"]).resolve() for p in passages)
            assert not any(given.get("answer", "\0") in p.text for p in passages)
            continue
        oracle = next(p for p in passages if p.chunk_id == example["oracle"]["chunk_id"])
        assert oracle.source == example["oracle"]["source"] and neutralise(oracle.text) in example["messages"][1]["content"]
        assert f"[{oracle.n}]" in target["content"]
        assert Path(oracle.source).resolve() == Path(given["source"]).resolve()
        if given.get("answer"):  # the target quotes the oracle's sentence that holds the answer
            quoted = re.sub(r"\s*\[\d+\]", "", target["content"]).strip()
            flat = oracle.text.replace("\n", " ")
            # a sentence verbatim, or a table row's cells (under their column names, "Name: value; ...")
            cells = [part for cell in re.split(r"\s*[|;]\s*", quoted) for part in cell.split(": ") if part]
            assert given["answer"] in quoted and (quoted in flat or all(part in flat for part in cells))
        if given.get("page"):
            assert oracle.page == given["page"]


def test_without_an_llm_the_questions_are_labelled_pseudo_questions(demo_index: Path, tmp_path: Path):
    out = tmp_path / "raft.jsonl"
    result = rag("finetune", "data", "--index", str(demo_index), "--out", str(out), "-n", "6")
    assert result.returncode == 0, result.stderr
    examples = read_examples(out)
    assert len(examples) == 6 and {e["kind"] for e in examples} == {"pseudo"}
    assert all("easier than real questions" in e["label"] for e in examples)
    assert "questions pseudo-query from the passage's own words" in result.stdout


def test_the_configured_llm_writes_the_questions(demo_index: Path, tmp_path: Path):
    def reply(messages: list[dict[str, str]]) -> str:
        assert "Write one specific question that the passage below answers on its own" in messages[-1]["content"]
        return "How long does the battery of the outdoor sensor last?\n(extra line)"

    with FakeLLMServer(reply) as server:
        result = rag("finetune", "data", "--index", str(demo_index), "--out", str(tmp_path / "raft.jsonl"), "-n", "3",
                     "--llm", f"openai:{server.base_url}#writer")
    assert result.returncode == 0, result.stderr
    examples = read_examples(tmp_path / "raft.jsonl")
    assert [e["question"] for e in examples] == ["How long does the battery of the outdoor sensor last?"] * 3
    assert {e["kind"] for e in examples} == {"llm"} and len(server.requests) == 3


def test_a_source_is_matched_by_path_file_name_or_path_ending_and_an_ambiguous_one_is_refused():
    indexed = ["/kb/en/guide.pdf", "/kb/zh/guide.pdf", "/kb/en/report.pdf"]
    assert indexed_source("/kb/en/report.pdf", indexed, "q.jsonl:1") == "/kb/en/report.pdf"
    assert indexed_source("report.pdf", indexed, "q.jsonl:1") == "/kb/en/report.pdf"
    assert indexed_source("zh/guide.pdf", indexed, "q.jsonl:1") == "/kb/zh/guide.pdf"
    assert indexed_source("elsewhere.pdf", indexed, "q.jsonl:1") is None
    assert indexed_source("port.pdf", indexed, "q.jsonl:1") is None  # whole names only
    with pytest.raises(DataError, match=r"q.jsonl:4: source 'guide.pdf' matches 2 indexed files \(/kb/en/guide.pdf, /kb/zh/guide.pdf\)"):
        indexed_source("guide.pdf", indexed, "q.jsonl:4")


def test_questions_may_name_their_source_as_citations_show_it(demo_index: Path, tmp_path: Path):
    questions = write_jsonl(tmp_path / "questions.jsonl", [{"question": "How long does the battery last?", "source": "lumen-l2-guide.pdf"}] * 3)
    out = tmp_path / "raft.jsonl"
    result = rag("finetune", "data", "--index", str(demo_index), "--out", str(out), "--questions", str(questions), "--no-oracle-share", "0")
    assert result.returncode == 0, result.stderr
    oracles = {e["oracle"]["source"] for e in read_examples(out)}
    assert len(oracles) == 1 and Path(oracles.pop()).name == "lumen-l2-guide.pdf"


@pytest.mark.parametrize("content, message", [
    ("", "questions.jsonl: no questions in it"),
    ('{"question": "ok?"}\nnot json\n', "questions.jsonl:2: expected a JSON object with a question"),
    ('{"question": "Where is the moon base?", "source": "/nowhere/x.pdf"}\n',
     "questions.jsonl: no usable questions (1 name sources that are not in"),
])
def test_a_question_source_with_nothing_to_offer_is_one_clear_error(demo_index: Path, tmp_path: Path, content: str, message: str):
    (tmp_path / "questions.jsonl").write_text(content, encoding="utf-8")
    out = tmp_path / "raft.jsonl"
    result = rag("finetune", "data", "--index", str(demo_index), "--out", str(out), "--questions", str(tmp_path / "questions.jsonl"))
    assert result.returncode == 1 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("content, message", [
    ("", "no training examples"),
    ('{"split": "train", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n{oops\n', "raft.jsonl:2: not a training example"),
    ('{"split": "test", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n', "raft.jsonl:1: not a training example"),
    ('{"split": "train", "messages": [{"role": "user", "content": "q"}]}\n', "raft.jsonl:1: not a training example"),
])
def test_malformed_training_data_names_the_file_and_line(tmp_path: Path, content: str, message: str):
    (tmp_path / "raft.jsonl").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_examples(tmp_path / "raft.jsonl")


def test_the_data_file_contract(demo_index: Path, tmp_path: Path):
    out = tmp_path / "raft.jsonl"
    assert rag("finetune", "data", "--index", str(demo_index), "--out", str(out), "-n", "4", "--no-oracle-share", "0.5").returncode == 0
    for line in out.read_text(encoding="utf-8").splitlines():
        example = json.loads(line)
        assert example["split"] in ("train", "validation")
        assert example["oracle"] is None or set(example["oracle"]) == {"source", "page", "chunk_id"}
        assert [m["role"] for m in example["messages"]] == ["system", "user", "assistant"]


def test_a_split_of_one_document_never_gives_an_empty_context(tmp_path: Path, embedders):
    from ingest.pipeline import Ingestor
    from rag.config import Settings

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lantern.md").write_text("# Lantern\n" + "\n\n".join(
        f"Section {i}. The lantern's setting {i} gives {10 * i} lumens for {80 - 7 * i} hours on one charge." for i in range(1, 9)),
        encoding="utf-8")
    (docs / "station.md").write_text("# Station\n" + "\n\n".join(
        f"Part {i}. The weather station sends its readings every {12 * i} seconds over {433 + i} MHz radio." for i in range(1, 9)),
        encoding="utf-8")
    settings = Settings.resolve({"index_dir": tmp_path / "index", "chunk_size": 40, "chunk_overlap": 0}, env={})
    Ingestor(settings, embedders=embedders, progress=False).run([docs])
    out = tmp_path / "raft.jsonl"
    result = rag("finetune", "data", "--index", str(tmp_path / "index"), "--out", str(out), "-n", "12",
                 "--no-oracle-share", "0.5", "--validation-share", "0.5")
    assert result.returncode == 0, result.stderr
    examples = read_examples(out)
    assert {e["split"] for e in examples} == {"train", "validation"}
    # one document per split: no other document can stand in for the oracle, so every example keeps it
    assert all(e["oracle"] and e["passages"] for e in examples)
