"""BEIR loading, cached indexing, compare, synthetic cases, own-corpus cases and `rag eval` end to end."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eval.beir import DatasetError, load_beir
from eval.cases import evaluate_cases
from eval.compare import compare_reports, render
from eval.corpus_index import build_index, evaluation_settings
from eval.synthetic import PSEUDO_LABEL, synthetic_cases
from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.index import Index
from rag.retrieve import Mode
from rag.text import BM25Tokenizer

ROOT = Path(__file__).resolve().parents[2]
DOCS = {
    "d1": ("Solar lanterns", "A solar lantern charges in ten hours of sunlight and lights a tent for a night."),
    "d2": ("Weather stations", "The outdoor sensor sends temperature readings every forty-eight seconds."),
    "d3": ("", "北京是中华人民共和国的首都，位于华北平原。"),
    "d4": ("Batteries", "Lithium iron phosphate batteries survive two thousand charge cycles."),
}


def write_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for doc_id, (title, text) in DOCS.items():
            fh.write(json.dumps({"_id": doc_id, "title": title, "text": text}, ensure_ascii=False) + "\n")
    queries = [("q1", "how long does a solar lantern take to charge", {}), ("q2", "中华人民共和国的首都是哪里", {"answers": ["北京"]}),
               ("q3", "battery charge cycles", {}), ("q4", "unjudged query", {})]
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for qid, text, metadata in queries:
            fh.write(json.dumps({"_id": qid, "text": text, "metadata": metadata}, ensure_ascii=False) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td4\t1\nq2\td3\t1\nq3\td4\t1\nq3\td2\t0\n")
    return folder


def test_beir_loading_keeps_graded_judgements_and_judged_queries(tmp_path: Path):
    dataset = load_beir(write_beir(tmp_path / "tiny"))
    assert [q.id for q in dataset.queries] == ["q1", "q2", "q3"]
    assert dataset.qrels["q1"] == {"d1": 2, "d4": 1} and dataset.qrels["q3"]["d2"] == 0
    assert dataset.corpus["d1"] == DOCS["d1"] and dataset.queries[1].metadata["answers"] == ["北京"]
    assert len(dataset.fingerprint) == 16


def test_bad_datasets_are_named(tmp_path: Path):
    with pytest.raises(DatasetError, match="no such dataset folder"):
        load_beir(tmp_path / "missing")
    folder = write_beir(tmp_path / "broken")
    (folder / "queries.jsonl").write_text("{not json\n")
    with pytest.raises(DatasetError, match=r"queries.jsonl:1: not JSON"):
        load_beir(folder)


def test_the_evaluation_index_is_cached_and_reused(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("RAG_CACHE", str(tmp_path / "cache"))
    dataset = load_beir(write_beir(tmp_path / "tiny"))
    settings = evaluation_settings(Settings.resolve({}, env={}))
    index_dir, id_of = build_index(dataset, settings)
    first = Index.open(index_dir).generation
    assert sorted(id_of.values()) == sorted(DOCS) and Index.open(index_dir).manifest["counts"]["chunks"] == 4
    again, _ = build_index(dataset, settings)
    assert again == index_dir and Index.open(index_dir).generation == first
    other, _ = build_index(dataset, evaluation_settings(settings, chunk_size=64))
    assert other != index_dir


def test_compare_shows_what_changed():
    before = {"dataset": "x", "dataset_hash": "h", "modes": {"bm25": {"ndcg@10": 0.5, "p50_ms": 3.0}}, "settings": {"chunk_size": 512}}
    after = {"dataset": "x", "dataset_hash": "h", "modes": {"bm25": {"ndcg@10": 0.6, "p50_ms": 2.0}}, "settings": {"chunk_size": 256}}
    comparison = compare_reports(before, after)
    assert comparison["modes"]["bm25"]["ndcg@10"] == {"before": 0.5, "after": 0.6, "change": 0.1}
    assert comparison["settings_changed"] == {"chunk_size": {"before": 512, "after": 256}}
    assert "bm25: ndcg@10 0.5 -> 0.6 (+0.1)" in render(comparison)


@pytest.fixture(scope="module")
def user_index(tmp_path_factory: pytest.TempPathFactory, embedders) -> Path:
    base = tmp_path_factory.mktemp("own")
    docs = base / "docs"
    docs.mkdir()
    for doc_id, (title, text) in DOCS.items():
        (docs / f"{doc_id}.md").write_text(f"# {title}\n\n{text} {text}", encoding="utf-8")
    Ingestor(Settings.resolve({"index_dir": base / "index"}, env={}), embedders=embedders, progress=False).run([docs])
    return base / "index"


def test_synthetic_cases_are_labelled_and_retrievable(user_index: Path, tmp_path: Path):
    cases = synthetic_cases(Index.open(user_index), BM25Tokenizer(), n=4)
    assert len(cases) == 4 and {c["kind"] for c in cases} == {"keywords", "sentence"}
    assert all(c["label"] == PSEUDO_LABEL and Path(c["source"]).exists() for c in cases)
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(json.dumps(c, ensure_ascii=False) for c in cases), encoding="utf-8")
    report = evaluate_cases(path, Settings.resolve({"index_dir": user_index}, env={}), [Mode.BM25, Mode.HYBRID])
    assert report["n_queries"] == 4 and report["modes"]["bm25"]["recall@10"] == 1.0


def test_an_empty_cases_file_is_one_clear_error(tmp_path: Path):
    (tmp_path / "cases.jsonl").write_text("\n", encoding="utf-8")  # e.g. `rag feedback` before any thumbs-up
    with pytest.raises(DatasetError, match="cases.jsonl: no cases"):
        evaluate_cases(tmp_path / "cases.jsonl", Settings.resolve({"index_dir": tmp_path / "index"}, env={}), [Mode.BM25])


def _rag(*args: str, cwd: Path, env_cache: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "RAG_CACHE": str(env_cache), "HOME": str(env_cache)}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_rag_eval_prints_the_contract_and_writes_reports_with_plots(tmp_path: Path):
    dataset = write_beir(tmp_path / "tiny")
    result = _rag("eval", str(dataset), "--modes", "bm25,dense,hybrid,fusion", "-k", "10", "--out", str(tmp_path / "out"),
                  "--json", cwd=ROOT, env_cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["dataset"] == "tiny" and summary["n_queries"] == 3
    for mode in ("bm25", "dense", "hybrid", "fusion"):
        assert {"ndcg@10", "recall@10", "recall@100", "mrr@10", "p50_ms", "p95_ms"} <= summary["modes"][mode].keys()
    assert summary["modes"]["bm25"]["recall@100"] == 1.0
    assert summary["answers"]["questions"] == 1 and summary["answers"]["metrics"]["answer_contains_gold"] == 1.0
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 3
    assert "Paired randomization test" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    again = _rag("eval", "--compare", str(tmp_path / "out" / "report.json"), str(tmp_path / "out" / "report.json"),
                 cwd=ROOT, env_cache=tmp_path / "cache")
    assert again.returncode == 0 and "tiny -> tiny" in again.stdout


def test_html_report_renders_in_chromium(tmp_path: Path):
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    dataset = write_beir(tmp_path / "tiny")
    assert _rag("eval", str(dataset), "--modes", "bm25,hybrid", "--out", str(tmp_path / "out"), "--answers", "0",
                cwd=ROOT, env_cache=tmp_path / "cache").returncode == 0
    shots = ROOT / "test-output"
    shots.mkdir(exist_ok=True)
    shot = shots / "eval-report.png"
    shot.unlink(missing_ok=True)
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot}", "--window-size=1200,1400", (tmp_path / "out" / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    colours = image.resize((120, 140)).getcolors(maxcolors=100_000)
    assert image.size == (1200, 1400) and colours and len(colours) > 50, "the plots drew more than text on white"
