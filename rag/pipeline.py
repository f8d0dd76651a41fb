"""Question in, grounded answer out: retrieve, decide whether the evidence suffices, generate, check.

Example:
    >>> from rag.config import Settings
    >>> retriever = Retriever.open(Path("rag-index"), Settings.resolve({}, env={}))
    >>> pipeline = AnswerPipeline(retriever, ExtractiveGenerator(retriever.embedder, retriever.tokenizer))
    >>> answer = pipeline.answer("How long is the warranty of the Lumen L2?")
    >>> answer.refused, [(Path(c.source).name, c.page) for c in answer.citations][:1]
    (False, [('lumen-l2-guide.pdf', 3)])
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rag.embed import Role, base_model
from rag.follow_up import carried_topic, is_follow_up
from rag.generate.base import GenerationError, GenerationRequest, Generator
from rag.generate.citations import CitationCheck, check_citations, first_use_order, renumbered, renumbered_prefix
from rag.generate.extractive import ExtractiveGenerator
from rag.generate.prompt import NOT_FOUND_MARKER, SOURCES_LABEL, Passage, fit_passages, neutralise, not_found, split_header
from rag.generate.units import answer_units
from rag.retrieve import Mode, RetrievalResult, Retriever
from rag.retrieve.variants import KeywordExtractor
from rag.specifics import missing_specifics, specifics_of
from rag.text import BM25Tokenizer, held_share, language_of, normalise, split_sentences


@dataclass(frozen=True)
class Abstention:
    """When the documents hold too little evidence to answer (see :meth:`AnswerPipeline.evidence`).

    A passage's evidence is ``(1 - semantic_weight) * lexical + semantic_weight * semantic``: the share of
    the question's idf mass found in it (a name in the question also counts as found where the passage's
    document has it on its first page or in its file name), and its cosine to the question rescaled so that
    ``similarity_floor`` is 0 and 1 is 1. Below ``min_evidence`` for all of the top three, the answer is
    "not found".

    A passage in another language than the question's shares no words with it, so its lexical share
    is taken to be its semantic score, and its cosine gets the embedder's ``language_offset`` added (see
    :class:`rag.embed.Embedder`): a Chinese passage can answer an English question.
    """

    min_evidence: float = 0.50
    semantic_weight: float = 0.0
    similarity_floor: float = 0.0


LEXICAL_ABSTENTION = Abstention(min_evidence=0.50)
"""For embedders without a calibration of their own (MiniLM, model folders): words only. Calibrated for
MiniLM by bench/calibrate_abstention.py: 88% of answerable questions answered, 91% of off-topic refused."""
ABSTENTION = {
    "multilingual-e5-small": Abstention(min_evidence=0.37, semantic_weight=0.5, similarity_floor=0.8),
}
"""Per embedder, calibrated on the dev split by bench/calibrate_abstention.py together with the
specifics check: for multilingual-e5-small, 90.3% of held-out answerable questions answered and 89.0% of
off-topic ones refused (words alone: 90.2% and 85.3%). The model's bfloat16 and int8 kernels share its
rule (their vectors keep mean cosines of 0.9999 and 0.997 to the float ones; not calibrated separately)."""

_SOURCES_BLOCK = re.compile(rf"(?ims)^[ \t]*{SOURCES_LABEL}.*\Z")
"""A sources list that a model wrote at the end of its answer (an obedient one copies the documents')."""

Turn = tuple[str, str]
"""A past exchange: (question, answer)."""
WARM_UP_QUESTION = "What does this knowledge base hold? 知识库里有什么？"
"""Asked before any user question (see :meth:`AnswerPipeline.warm_up`); in both languages, for jieba."""
Stage = Literal["searching", "reading", "writing"]
"""What an answer is waiting for: retrieval, the evidence check, the backend writing."""


@dataclass(frozen=True)
class Citation:
    """A cited passage: ``n`` is its marker in the answer (1..k in order of first use), ``chunk_id`` the
    passage it quotes."""

    n: int
    chunk_id: int
    source: str
    page: int
    quote: str


@dataclass
class Answer:
    """The answer with its citations; ``refused`` when the documents did not hold enough evidence."""

    question: str
    text: str
    citations: list[Citation]
    grounded: bool
    refused: bool
    passages: list[Passage]
    ms: float
    standalone_question: str
    evidence: float
    unsupported: list[str] = field(default_factory=list)
    retrieval: RetrievalResult | None = None
    header: str = ""
    """Set when the answer quotes documents in another language than the question's."""
    missing: list[str] = field(default_factory=list)
    """What the question names that no passage holds (a refusal's reason), e.g. ``["October"]``."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "question": self.question, "answer": self.text,
            "citations": [c.__dict__ for c in self.citations], "grounded": self.grounded,
            "ms": round(self.ms, 1), "refused": self.refused, "evidence": round(self.evidence, 3),
            "unsupported": self.unsupported, "standalone_question": self.standalone_question,
        }
        if self.refused:
            data["missing"] = self.missing
            data["nearest"] = [{"n": p.n, "source": p.source, "page": p.page, "quote": p.text[:300]} for p in self.passages]
        return data


class AnswerPipeline:
    """Retrieval plus a generator, with abstention, citation checking and follow-up rewriting.

    ``stream`` yields answer text as it is produced and then, last, the :class:`Answer`.
    """

    def __init__(self, retriever: Retriever, generator: Generator, mode: Mode = Mode.FUSION, k: int = 5,
                 abstention: Abstention | None = None, max_new_tokens: int = 512) -> None:
        self.retriever = retriever
        self.generator = generator
        self.mode = mode
        self.k = k
        self.abstention = abstention or ABSTENTION.get(base_model(retriever.embedder.name), LEXICAL_ABSTENTION)
        self.max_new_tokens = max_new_tokens

    # before generation ----------------------------------------------------------------------------
    def standalone_question(self, question: str, history: Sequence[Turn]) -> str:
        """The question to search: as written unless it follows up the conversation (see
        :mod:`rag.follow_up`); a follow-up is rewritten to stand alone by the LLM when there is one, else
        the topic words of the questions it follows are added to it."""
        tokenizer = self.retriever.tokenizer
        if not history or not is_follow_up(question, tokenizer):
            return question
        if not isinstance(self.generator, ExtractiveGenerator):
            turns = "\n".join(f"User: {q}\nAssistant: {a[:500]}" for q, a in history[-3:])
            messages = [
                {"role": "system", "content": "Rewrite the user's follow-up question as one standalone question in "
                 "the same language. Reply with the question only."},
                {"role": "user", "content": f"{turns}\nFollow-up: {question}"},
            ]
            try:
                rewritten = self.generator.complete(messages, max_new_tokens=64).strip().splitlines()
                if rewritten and rewritten[0].strip():
                    return rewritten[0].strip()
            except GenerationError:
                pass
        return f"{question} {carried_topic(question, [q for q, _ in history], self._keywords)}".strip()

    @cached_property
    def _keywords(self) -> KeywordExtractor:
        """Loaded on the first follow-up (jieba's idf table takes about a second)."""
        return KeywordExtractor(self.retriever.tokenizer)

    def evidence(self, question: str, retrieval: RetrievalResult) -> float:
        """How well the best of the top three passages covers the question, by words and by meaning
        (see :class:`Abstention`): low when the documents do not talk about what is asked."""
        lexical, semantic = self.evidence_parts(question, retrieval)
        return float(np.max(combined_evidence(lexical, semantic, self.abstention), initial=0.0))

    def evidence_parts(self, question: str, retrieval: RetrievalResult) -> tuple[np.ndarray, np.ndarray]:
        """Per top-three passage that an answer may quote (one that is all headings or a file list is no
        evidence; see :mod:`rag.generate.units`): the lexical share (NaN for a passage in another language than the
        question's) and the cosine of the question to the passage or, when closer, to its best table row
        (a row answers where the table as a whole reads as far off), with the language offset."""
        hits = [hit for hit in retrieval.hits if answer_units(hit.text)][:3]
        asked = language_of(question)
        named = self._named_documents(question, {hit.chunk.path for hit in hits})
        lexical = np.array([self._lexical_share(question, set(hit.chunk.tokens) | named[hit.chunk.path], hit.text)
                            if language_of(hit.text) == asked else np.nan for hit in hits])
        semantic = np.zeros(len(hits))
        if self.abstention.semantic_weight > 0 and self.retriever.index.dense is not None:
            vector = retrieval.query_vector
            if vector is None:
                vector = self.retriever.embedder.encode([question], Role.QUERY)[0]
            semantic = self.retriever.index.vectors([hit.chunk.id for hit in hits]) @ vector
            embedder = self.retriever.embedder
            units = [[u.text for u in answer_units(hit.text) if u.is_row] for hit in hits]
            flat = [text for texts in units for text in texts]
            if flat:
                closeness = iter(embedder.encode(flat, Role.PASSAGE) @ vector)
                best = [max((float(next(closeness)) for _ in texts), default=-1.0) for texts in units]
                semantic = np.maximum(semantic, best)
            # the whole measured gap: evidence asks whether a passage is about the question, in whatever
            # language (half of it only breaks near ties in ranking)
            semantic = semantic + np.array([embedder.language_offset(asked, language_of(hit.text)) for hit in hits])
        return lexical, semantic

    def missing_specifics(self, question: str, retrieval: RetrievalResult) -> list[str]:
        """What the question names (a name, a year, a month, an amount of money) that none of the
        passages holds, a name being also found on its document's first page or in its file name (see
        :mod:`rag.specifics`): a question about October asked of November's table is not answered."""
        paths = list(dict.fromkeys(hit.chunk.path for hit in retrieval.hits))
        front_matter = [text for path in paths for text in (path, self.retriever.index.store.first_page(path))]
        return missing_specifics(question, [hit.text for hit in retrieval.hits], front_matter)

    def _named_documents(self, question: str, paths: set[str]) -> dict[str, set[str]]:
        """Per document, the words of the names in the question (see :mod:`rag.specifics`) that its file
        name or first page holds: "the English ElegantPaper guide" names the document, and its passages
        need not repeat it."""
        tokenize = self.retriever.tokenizer.tokenize
        names = {token for name in specifics_of(question).names for token in tokenize(name)}
        if not names:
            return {path: set() for path in paths}
        return {path: names & set(tokenize(f"{Path(path).stem} {self.retriever.index.store.first_page(path)}"))
                for path in paths}

    def _lexical_share(self, question: str, passage: set[str], text: str) -> float:
        """The share of the question's idf mass (its distinctive words) found in the passage: among its
        tokens or, for a Chinese word, in its ``text`` (see :func:`rag.text.held_share`)."""
        tokens = set(self.retriever.tokenizer.tokenize(question))
        words = {t for t in tokens if not (len(t) == 1 and language_of(t) == "zh")}  # 能, 用: fragments
        tokens = words or tokens
        if not tokens:
            return 0.0
        idf = self.retriever.index.sparse.idf(sorted(tokens))
        total = sum(idf.values())
        # jieba's search mode also emits a compound's parts (保修期, 保修): the compound counts as
        # found when its parts from the question are all found
        parts = {t: [p for p in tokens if p != t and p in t] for t in tokens}
        text = normalise(text)

        def found(token: str) -> float:
            if parts[token] and all(p in passage for p in parts[token]):
                return 1.0
            return held_share(token, passage, text)

        return sum(idf[t] * found(t) for t in tokens) / total

    # the answer ------------------------------------------------------------------------------------
    def stream(self, question: str, history: Sequence[Turn] = (), stop: threading.Event | None = None,
               on_stage: Callable[[Stage], None] | None = None) -> Iterator[str | Answer]:
        """Answer text as it is written, then the :class:`Answer`; ``on_stage`` hears each :data:`Stage`
        as it starts."""
        started = time.perf_counter()
        tell = on_stage or (lambda stage: None)
        tell("searching")
        standalone = self.standalone_question(question, history)
        retrieval = self.retriever.search(standalone, mode=self.mode, k=self.k, window=0)
        tell("reading")
        # markers, sources blocks and documents tags in document text never reach a backend
        passages = [Passage(h.rank, h.source, h.page, neutralise(h.text), h.chunk.id) for h in retrieval.hits]
        evidence = self.evidence(standalone, retrieval)
        missing = self.missing_specifics(standalone, retrieval)
        if evidence < self.abstention.min_evidence or missing:
            yield from self._refusal(question, passages, started, standalone, evidence, retrieval, missing)
            return
        passages = fit_passages(standalone, passages, self.generator.count_tokens, self.generator.context_window,
                                reserve=self.max_new_tokens)
        request = GenerationRequest(standalone, passages, self.max_new_tokens, stop or threading.Event())
        tell("writing")
        for item in generate_reply(self.generator, self.retriever.tokenizer, request):
            if not isinstance(item, Reply):
                yield item
            elif item.refused:
                yield from self._refusal(question, passages, started, standalone, evidence, retrieval)
            else:
                assert item.check is not None
                citations = self._citations(item.check, passages)
                order = first_use_order(item.text, [c.n for c in citations])
                order.update({c.n: len(order) + 1 for c in citations if c.n not in order})
                numbered = sorted((replace(c, n=order[c.n]) for c in citations), key=lambda c: c.n)
                yield Answer(question, renumbered(item.text, order), numbered, item.check.grounded, False, passages,
                             _ms(started), standalone, evidence, [renumbered(u, order) for u in item.check.unsupported],
                             retrieval, item.header)

    @staticmethod
    def _refusal(question: str, passages: list[Passage], started: float, standalone: str, evidence: float,
                 retrieval: RetrievalResult, missing: Sequence[str] = ()) -> Iterator[str | Answer]:
        """"Not found" in the question's language, then the refused :class:`Answer` with the nearest passages."""
        text = not_found(question, missing)
        yield text
        yield Answer(question, text, [], False, True, passages, _ms(started), standalone, evidence, retrieval=retrieval,
                     missing=list(missing))

    def answer(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        return final_answer(self.stream(question, history))

    def warm_up(self) -> None:
        """Load what the first question would (the embedder's weights, jieba, the backend) by answering
        :data:`WARM_UP_QUESTION`, or, with a language model, by searching it only (a reply is no warm-up
        worth its wait)."""
        if isinstance(self.generator, ExtractiveGenerator):
            self.answer(WARM_UP_QUESTION)
        else:
            self.retriever.search(WARM_UP_QUESTION, mode=self.mode, k=self.k)

    def _citations(self, check: CitationCheck, passages: Sequence[Passage]) -> list[Citation]:
        """Each cited passage once, quoting its sentence closest to the first answer sentence citing it."""
        by_n = {p.n: p for p in passages}
        tokenize = self.retriever.tokenizer.tokenize
        citations = []
        for n in check.cited:
            claims = set(tokenize(next(s.text for s in check.sentences if n in s.cited)))
            units = answer_units(by_n[n].text)
            quotes = [(u.text, u.source) for u in units] or [(s, s) for s in split_sentences(by_n[n].text) or [by_n[n].text]]
            quote = max(quotes, key=lambda q: len(claims & set(tokenize(q[0]))))[1]
            citations.append(Citation(n, by_n[n].chunk_id, by_n[n].source, by_n[n].page, quote))
        return citations

    def as_runnable(self) -> Any:
        """The pipeline as a LangChain runnable: ``invoke("question")`` returns the :class:`Answer`."""
        from langchain_core.runnables import RunnableLambda

        return RunnableLambda(lambda question: self.answer(question if isinstance(question, str) else question["question"]),
                              name="rag-answer")


@dataclass
class Reply:
    """A backend's whole reply to a request, its citations checked; ``refused`` when it wrote the
    not-found marker or nothing (then ``check`` is None)."""

    text: str
    header: str = ""
    check: CitationCheck | None = None

    @property
    def refused(self) -> bool:
        return self.check is None


def generate_reply(generator: Generator, tokenizer: BM25Tokenizer, request: GenerationRequest) -> Iterator[str | Reply]:
    """Stream the backend's answer text (held back while it may be the not-found marker, its citations
    numbered by first use), then the checked :class:`Reply`. The answer pipeline and ``rag finetune eval`` both generate through this.

    Example:
        >>> from rag.embed import load_embedder
        >>> from rag.generate.prompt import Passage
        >>> generator = ExtractiveGenerator(load_embedder("e5-small"), BM25Tokenizer())
        >>> passages = [Passage(1, "guide.pdf", 3, "The lantern's warranty lasts two years.")]
        >>> reply = list(generate_reply(generator, BM25Tokenizer(), GenerationRequest("How long is the warranty?", passages)))[-1]
        >>> reply.refused, reply.check.cited
        (False, [1])
    """
    pieces: list[str] = []
    shown = 0
    numbers = {p.n for p in request.passages}
    for piece in generator.stream(request):
        pieces.append(piece)
        text = "".join(pieces)
        if NOT_FOUND_MARKER.startswith(text.strip()) or text.lstrip().startswith(NOT_FOUND_MARKER):
            continue  # may be, or is, the refusal marker: nothing to show yet
        display = renumbered_prefix(text, numbers)  # citations numbered as the final answer numbers them
        if len(display) > shown:
            yield display[shown:]
            shown = len(display)
    raw = "".join(pieces).strip()
    if not raw or raw.startswith(NOT_FOUND_MARKER):
        yield Reply(raw)
        return
    header, body = split_header(raw)
    body = _SOURCES_BLOCK.sub("", body).strip()  # the pipeline lists the sources itself
    check = check_citations(body, {p.n: p.text for p in request.passages}, tokenizer)
    yield Reply(f"{header}\n{check.text}" if header else check.text, header, check)


def final_answer(stream: Iterable[str | Answer]) -> Answer:
    """The :class:`Answer` that ends a :meth:`AnswerPipeline.stream`, once the text before it is consumed."""
    final = None
    for item in stream:
        if isinstance(item, Answer):
            final = item
    assert final is not None
    return final


def combined_evidence(lexical: np.ndarray, semantic: np.ndarray, rule: Abstention) -> np.ndarray:
    """Each passage's evidence under ``rule`` (see :class:`Abstention`)."""
    scaled = np.clip((semantic - rule.similarity_floor) / (1 - rule.similarity_floor), 0.0, 1.0)
    lexical = np.where(np.isnan(lexical), scaled, lexical)
    return (1 - rule.semantic_weight) * lexical + rule.semantic_weight * scaled


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000

