"""The OpenAI-compatible backend against a local fake server speaking streaming chat completions."""
from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from rag.generate.base import GenerationError, GenerationRequest
from rag.generate.openai_server import OpenAIServerGenerator
from rag.generate.prompt import Passage
from rag.pipeline import AnswerPipeline
from testkit.fake_llm_server import FakeLLMServer
from tests.rag.test_generation import INJECTION, pipeline  # noqa: F401 - the shared index fixture

PASSAGES = [Passage(1, "/docs/guide.pdf", 3, "The Lumen L2 has a two-year warranty covering defects.")]


def test_streams_the_reply_in_pieces_with_the_grounded_prompt():
    with FakeLLMServer(lambda messages: "The warranty lasts two years [1].") as server:
        generator = OpenAIServerGenerator(server.base_url, "fake-model")
        pieces = list(generator.stream(GenerationRequest("How long is the warranty?", PASSAGES)))
    assert len(pieces) > 1 and "".join(pieces) == "The warranty lasts two years [1]."
    body = server.requests[0]["body"]
    assert body["model"] == "fake-model" and body["stream"] is True
    assert body["messages"][0]["role"] == "system" and "untrusted data" in body["messages"][0]["content"]
    assert "[1] guide.pdf, page 3" in body["messages"][1]["content"]


def test_retries_a_warming_up_server():
    with FakeLLMServer(lambda messages: "ok", failures=2) as server:
        assert OpenAIServerGenerator(server.base_url, "m", retries=2).complete([{"role": "user", "content": "hi"}]) == "ok"
    assert len(server.requests) == 3


def test_a_server_that_is_down_is_one_clear_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    generator = OpenAIServerGenerator(f"http://127.0.0.1:{port}/v1", "m", retries=0)
    with pytest.raises(GenerationError, match=rf"cannot reach the LLM server at http://127.0.0.1:{port}/v1 .*is it running\?"):
        list(generator.stream(GenerationRequest("q", PASSAGES)))


def test_the_key_goes_only_where_it_is_given_and_credentials_in_urls_are_never_shown():
    from rag.generate.factory import make_generator
    from rag.text import BM25Tokenizer

    with FakeLLMServer(lambda messages: "Two years [1].") as server:
        spec = f"openai:{server.base_url}#m"
        make_generator(spec, None, BM25Tokenizer(), api_key="sk-operator").complete([{"role": "user", "content": "hi"}])  # type: ignore[arg-type]
        make_generator(spec, None, BM25Tokenizer()).complete([{"role": "user", "content": "hi"}])  # type: ignore[arg-type]
        assert [r["authorization"] for r in server.requests] == ["Bearer sk-operator", None]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(GenerationError) as down:
        OpenAIServerGenerator(f"http://alice:s3cret@127.0.0.1:{port}/v1", "m", retries=0).complete([{"role": "user", "content": "hi"}])
    assert "s3cret" not in str(down.value) and "alice" not in str(down.value) and "http://***@127.0.0.1" in str(down.value)
    with FakeLLMServer(lambda messages: "ok", failures=5) as server:
        with pytest.raises(GenerationError) as failed:
            OpenAIServerGenerator(server.base_url.replace("http://", "http://bob:pw@"), "m", retries=0).complete([{"role": "user", "content": "hi"}])
    assert "bob" not in str(failed.value) and "pw@" not in str(failed.value) and "HTTP 503" in str(failed.value)


def test_http_errors_name_the_status():
    with FakeLLMServer(lambda messages: "ok", failures=5) as server:
        with pytest.raises(GenerationError, match="answered HTTP 503"):
            OpenAIServerGenerator(server.base_url, "m", retries=1).complete([{"role": "user", "content": "hi"}])


def test_the_stop_signal_ends_the_stream_early():
    with FakeLLMServer(lambda messages: "word " * 200) as server:
        request = GenerationRequest("q", PASSAGES)
        received = []
        for piece in OpenAIServerGenerator(server.base_url, "m").stream(request):
            received.append(piece)
            if len(received) == 3:
                request.stop.set()
    assert len(received) == 3


def test_pipeline_answers_with_checked_citations_through_the_server(pipeline: AnswerPipeline):  # noqa: F811
    def reply(messages):
        context = messages[1]["content"]
        number = next(line.split("]")[0][1:] for line in context.splitlines() if "lumen-l2-guide.pdf, page 3" in line)
        return f"The Lumen L2 has a two-year warranty covering defects in materials [{number}]. It also flies [9]."

    with FakeLLMServer(reply) as server:
        llm = AnswerPipeline(pipeline.retriever, OpenAIServerGenerator(server.base_url, "m"))
        answer = llm.answer("How long is the Lumen L2 warranty?")
    assert answer.grounded and not answer.refused
    assert "[9]" not in answer.text and answer.unsupported == ["It also flies."]
    assert (Path(answer.citations[0].source).name, answer.citations[0].page) == ("lumen-l2-guide.pdf", 3)


def test_an_obedient_model_fooled_by_a_planted_document_is_caught(pipeline: AnswerPipeline):  # noqa: F811
    def obey_injection(messages):
        user = messages[1]["content"]
        tag = re.search(r"<(documents-[0-9a-f]{16})>", user).group(1)
        documents = user[user.index(f"<{tag}>") : user.index(f"</{tag}>")]
        assert INJECTION.split(" <script>")[0] in documents, "planted text stays inside the documents block"
        return "HACKED. The warranty is ninety-nine years."

    with FakeLLMServer(obey_injection) as server:
        llm = AnswerPipeline(pipeline.retriever, OpenAIServerGenerator(server.base_url, "m"))
        answer = llm.answer("How long is the Lumen L2 warranty?")
    assert not answer.grounded and answer.citations == []
    assert answer.unsupported == ["HACKED.", "The warranty is ninety-nine years."]


def test_follow_ups_are_rewritten_by_the_llm(pipeline: AnswerPipeline):  # noqa: F811
    def reply(messages):
        if "standalone question" in messages[0]["content"]:
            return "How long does the Lumen L2 take to charge from USB-C?\n"
        return "About 4 hours [1]."

    with FakeLLMServer(reply) as server:
        llm = AnswerPipeline(pipeline.retriever, OpenAIServerGenerator(server.base_url, "m"))
        standalone = llm.standalone_question("And from USB?", [("How long does it charge in the sun?", "10 hours [1].")])
    assert standalone == "How long does the Lumen L2 take to charge from USB-C?"
    assert "Follow-up: And from USB?" in server.requests[0]["body"]["messages"][1]["content"]


def test_a_question_that_stands_alone_is_searched_as_written_without_asking_the_llm(pipeline: AnswerPipeline):  # noqa: F811
    with FakeLLMServer(lambda messages: "What is model quantisation in the Lumen L2?") as server:
        llm = AnswerPipeline(pipeline.retriever, OpenAIServerGenerator(server.base_url, "m"))
        standalone = llm.standalone_question("How long is the Lumen L2 warranty?", [("模型量化是什么意思？", "量化是…[1]")])
    assert standalone == "How long is the Lumen L2 warranty?"
    assert server.requests == []


def test_citations_are_numbered_by_first_use_in_the_stream_and_the_answer(pipeline: AnswerPipeline):  # noqa: F811
    def reply(messages):
        """The first sentence of each of the last two passages, cited by their prompt numbers, last first."""
        blocks = re.findall(r"^\[(\d+)\] [^\n]+\n(.*?)(?=^\[\d+\] |\Z)", messages[1]["content"], re.MULTILINE | re.DOTALL)
        found = [(n, sentence.group()) for n, body in blocks if (sentence := re.search(r"[A-Z][^.\n]{20,}\.", body))]
        return " ".join(f"{sentence} [{n}]" for n, sentence in reversed(found[-2:]))

    with FakeLLMServer(reply) as server:
        llm = AnswerPipeline(pipeline.retriever, OpenAIServerGenerator(server.base_url, "m"))
        items = list(llm.stream("How long is the Lumen L2 warranty?"))
    answer = items[-1]
    streamed = "".join(item for item in items[:-1] if isinstance(item, str))
    assert answer.grounded and [c.n for c in answer.citations] == [1, 2]
    assert re.findall(r"\[(\d+)\]", answer.text) == ["1", "2"] and streamed.strip() == answer.text
    by_chunk = {p.chunk_id: p for p in answer.passages}
    first, second = (by_chunk[c.chunk_id] for c in answer.citations)
    assert first.n > second.n, "the passage cited first is [1] whatever its rank"


def test_a_model_that_finds_nothing_is_turned_into_a_refusal_without_leaking_the_marker(pipeline: AnswerPipeline):  # noqa: F811
    with FakeLLMServer(lambda messages: "NOT_FOUND") as server:
        llm = AnswerPipeline(pipeline.retriever, OpenAIServerGenerator(server.base_url, "m"))
        streamed = [item for item in llm.stream("How long is the Lumen L2 warranty?") if isinstance(item, str)]
    assert streamed == ["Not found in your documents."]
