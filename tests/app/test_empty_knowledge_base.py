"""A knowledge base without passages (an empty folder ingested, or one whose every file failed) answers
every command with one line, never a traceback, and the library underneath returns nothing rather than failing."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main
from rag.generate.extractive import ExtractiveGenerator
from rag.index import Index
from rag.pipeline import AnswerPipeline
from rag.retrieve import Mode, Retriever


@pytest.fixture(scope="module", params=["empty folder", "every file fails"])
def empty_index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    if request.param == "every file fails":
        (folder / "broken.pdf").write_bytes(b"%PDF-1.7 this is not a PDF at all")
    index_dir = folder.parent / f"{folder.name}-index"
    result = CliRunner().invoke(main, ["ingest", str(folder), "--index", str(index_dir)])
    assert Index.open(index_dir).is_empty(), result.output
    return index_dir


@pytest.mark.parametrize("command", [
    ["search", "battery life"],
    ["search", "battery life", "--mode", "fusion"],
    ["search", "电池续航", "--mode", "dense", "--json"],
    ["ask", "How long does the battery last?"],
])
def test_commands_on_an_empty_knowledge_base_say_so_in_one_line(empty_index: Path, command: list[str]):
    result = CliRunner().invoke(main, [*command, "--index", str(empty_index)])
    assert result.exit_code == 1 and not isinstance(result.exception, AssertionError | KeyError)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "holds no passages yet" in lines[0] and str(empty_index) in lines[0]


def test_the_library_finds_nothing_in_an_empty_index_and_the_answer_is_a_refusal(empty_index: Path, embedder):
    retriever = Retriever(Index.open(empty_index), embedder)
    for mode in Mode:
        assert retriever.search("How long does the battery last?", mode=mode, k=5).hits == []
    answer = AnswerPipeline(retriever, ExtractiveGenerator(embedder, retriever.tokenizer)).answer("How long does the battery last?")
    assert answer.refused and not answer.citations
