"""RAFT training examples from the user's own index: a question about a passage (the oracle), shown
among passages retrieved for the same question (the distractors), with a target that quotes and
cites the oracle, or the not-found marker when the oracle is left out.

The context is numbered and delimited by :func:`rag.generate.prompt.build_messages`, the live
prompt, so the model is trained on exactly what it is served.

Example:
    >>> from rag.config import Settings
    >>> retriever = Retriever.open(Path("rag-index"), Settings.resolve({}, env={}))
    >>> cases = pseudo_questions(retriever, n=20)
    >>> examples = RaftBuilder(retriever, distractors=2).build(cases)
    >>> examples[0]["messages"][-1]["role"], {e["split"] for e in examples} <= {"train", "validation"}
    ('assistant', True)
"""
from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from typing import Any

from eval.synthetic import PSEUDO_LABEL, synthetic_cases
from rag.generate.base import Generator
from rag.generate.extractive import ExtractiveGenerator
from rag.generate.prompt import NOT_FOUND_MARKER, Passage, build_messages
from rag.index.store import ChunkRow
from rag.jsonl import read_jsonl
from rag.retrieve import Filters, Mode, Retriever
from rag.text import split_sentences

USER_LABEL = "written by a person"
LLM_LABEL = "written by the configured LLM"
MIN_NEEDLE = 3
"""Quoted text or answers shorter than this (a number, a year) do not rule a chunk out as a distractor."""


class DataError(ValueError):
    """Training data that cannot be built or read; the message is one line naming the file and the reason."""


@dataclass(frozen=True)
class QuestionCase:
    """A question and the chunk that answers it; ``answer`` is the gold answer when one is known."""

    question: str
    oracle: ChunkRow
    answer: str | None
    kind: str
    label: str


def user_questions(path: Path, retriever: Retriever, limit: int | None = None) -> tuple[list[QuestionCase], int]:
    """Cases from a JSONL of ``{question, answer?, source?, page?, quote?}`` (``rag feedback`` writes
    these; the first ``limit`` are used), and how many were skipped because their source is not in the index.

    The oracle is the best-ranked chunk of the named file (and page); a quote or answer found in a
    chunk of it picks that chunk. Without a source, the best-ranked chunk of the whole index is taken.
    The gold answer is the given answer, else the quote (the sentence an up-voted answer rested on).
    """
    expected = "expected a JSON object with a question (and a whole-number page)"
    lines = read_jsonl(path, DataError, expected, contents="the questions")
    cases, skipped = [], 0
    indexed = [record.path for record in retriever.index.files()]
    for number, item in lines[:limit]:
        try:
            question = str(item["question"]).strip()
            page = int(item["page"]) if item.get("page") else None
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}:{number}: {expected} ({exc})") from exc
        if not question:
            raise DataError(f"{path}:{number}: the question is empty")
        source = indexed_source(str(item["source"]), indexed, f"{path}:{number}") if item.get("source") else None
        oracle = _oracle_for(retriever, question, item, source, page)
        if oracle is None:
            skipped += 1
            continue
        gold = str(item.get("answer") or item.get("quote") or "").strip() or None
        cases.append(QuestionCase(question, oracle, gold, "user", USER_LABEL))
    return cases, skipped


def indexed_source(source: str, indexed: Sequence[str], where: str) -> str | None:
    """The indexed file a question's ``source`` names: its path, or a file name or trailing part of a path
    as citations show it (``"acl2020-main-447.pdf"``, ``"papers/report.pdf"``); None when no indexed file
    matches. A name that several indexed files end with is an error that lists them.

    Example:
        >>> indexed_source("b.pdf", ["/docs/a.pdf", "/docs/x/b.pdf"], "q.jsonl:1")
        '/docs/x/b.pdf'
    """
    wanted = PurePath(source.replace("\\", "/"))
    resolved = str(Path(source).expanduser().resolve())
    if resolved in indexed:
        return resolved
    parts = wanted.parts
    matches = [path for path in indexed if PurePath(path).parts[-len(parts):] == parts] if parts else []
    if len(matches) > 1:
        raise DataError(f"{where}: source {source!r} matches {len(matches)} indexed files ({', '.join(sorted(matches))}); "
                        "give more of its path")
    return matches[0] if matches else None


def _oracle_for(retriever: Retriever, question: str, item: dict[str, Any], source: str | None, page: int | None) -> ChunkRow | None:
    filters = None
    if item.get("source"):
        if source is None:
            return None
        filters = Filters(paths=(source,), pages=(page, page) if page else None)
    hits = retriever.search(question, mode=Mode.HYBRID, k=20, filters=filters, rerank=False).hits
    for needle in (item.get("quote"), item.get("answer")):
        if needle:
            containing = [h.chunk for h in hits if str(needle).strip() in h.text]
            if containing:
                return containing[0]
    return hits[0].chunk if hits else None


def written_questions(retriever: Retriever, writer: Generator, n: int, seed: int = 0) -> list[QuestionCase]:
    """``n`` questions written by the configured LLM about randomly chosen chunks."""
    return _from_synthetic(retriever, synthetic_cases(retriever.index, retriever.tokenizer, n, writer=writer, seed=seed))


def pseudo_questions(retriever: Retriever, n: int, seed: int = 0) -> list[QuestionCase]:
    """``n`` offline pseudo-questions (a chunk's keywords or one of its sentences), labelled as such."""
    return _from_synthetic(retriever, synthetic_cases(retriever.index, retriever.tokenizer, n, seed=seed))


def _from_synthetic(retriever: Retriever, cases: list[dict[str, Any]]) -> list[QuestionCase]:
    chunks = {c.id: c for c in retriever.index.chunks([case["chunk_id"] for case in cases])}
    return [QuestionCase(case["question"], chunks[case["chunk_id"]], None, "llm" if case["kind"] == "llm" else "pseudo",
                         LLM_LABEL if case["kind"] == "llm" else PSEUDO_LABEL) for case in cases]


class RaftBuilder:
    """Turns question cases into RAFT examples (see the module docstring).

    Documents, not chunks, are split into train and validation (about ``validation_share`` of the
    cases, whole documents at a time), so no validation passage is seen in training; distractors come
    from the same split (documents without questions count as train). A ``no_oracle_share`` of each
    split leaves the oracle out (and every chunk of its document), with the not-found marker as the
    target; such an example keeps its oracle when no other document of its split is left to fill it.

    Example:
        >>> from rag.config import Settings
        >>> retriever = Retriever.open(Path("rag-index"), Settings.resolve({}, env={}))
        >>> builder = RaftBuilder(retriever, distractors=2, no_oracle_share=0.2, seed=1)
        >>> cases = pseudo_questions(retriever, n=20)
        >>> examples = builder.build(cases)
        >>> len(examples) == len(cases), sum(e["oracle"] is None for e in examples) > 0
        (True, True)
    """

    def __init__(self, retriever: Retriever, distractors: int = 4, no_oracle_share: float = 0.2,
                 validation_share: float = 0.2, seed: int = 0, quote_sentences: int = 2) -> None:
        if distractors < 1:
            raise DataError("--distractors must be at least 1")
        if not 0 <= no_oracle_share < 1 or not 0 <= validation_share < 1:
            raise DataError("--no-oracle-share and --validation-share must be in [0, 1)")
        self.retriever = retriever
        self.distractors = distractors
        self.no_oracle_share = no_oracle_share
        self.validation_share = validation_share
        self.seed = seed
        self._quoter = ExtractiveGenerator(retriever.embedder, retriever.tokenizer, max_sentences=quote_sentences,
                                           dense_weight=retriever.dense_weight_for)

    def split_documents(self, cases: Sequence[QuestionCase]) -> dict[str, str]:
        """``{document path: "train" | "validation"}`` for every indexed document. Documents with
        questions, in a seeded random order, go to validation while they keep it within
        ``validation_share`` of the cases (at least one, when there are two or more; never all);
        the rest, and documents without questions (distractors only), are train."""
        counts = Counter(case.oracle.path for case in cases)
        documents = sorted(counts)
        random.Random(self.seed).shuffle(documents)
        target = self.validation_share * len(cases)
        held: list[str] = []
        for document in documents:
            if len(held) < len(documents) - 1 and sum(counts[d] for d in held) + counts[document] <= target:
                held.append(document)
        if not held and self.validation_share > 0 and len(documents) >= 2:
            held.append(min(documents, key=lambda d: counts[d]))
        every = {record.path for record in self.retriever.index.files()} | set(documents)
        return {doc: "validation" if doc in held else "train" for doc in every}

    def build(self, cases: Sequence[QuestionCase]) -> list[dict[str, Any]]:
        if not cases:
            raise DataError("no questions to build examples from")
        rng = random.Random(self.seed)
        splits = self.split_documents(cases)
        without_oracle: set[int] = set()
        for split in ("train", "validation"):
            members = [i for i, case in enumerate(cases) if splits[case.oracle.path] == split]
            without_oracle.update(rng.sample(members, round(self.no_oracle_share * len(members))))
        documents = {split: Filters(paths=tuple(sorted(d for d, s in splits.items() if s == split))) for split in ("train", "validation")}
        return [self.example(case, splits[case.oracle.path], documents[splits[case.oracle.path]], i not in without_oracle, rng)
                for i, case in enumerate(cases)]

    def example(self, case: QuestionCase, split: str, documents: Filters, with_oracle: bool, rng: random.Random) -> dict[str, Any]:
        """One example of ``split``, its distractors drawn from ``documents`` (that split's). An example
        meant to leave the oracle out keeps it when no other document can fill its context."""
        cite, quoted = self._target(case)
        needles = [s for s in quoted + [case.answer or ""] if len(s) >= MIN_NEEDLE]
        chunks: list[ChunkRow] = []
        if not with_oracle:
            chunks = self._distractors(case, documents, {case.oracle.path}, needles, self.distractors + 1)
            with_oracle = not chunks
        if with_oracle:
            chunks = self._distractors(case, documents, set(), needles, self.distractors) + [case.oracle]
        rng.shuffle(chunks)
        passages = [Passage(n, c.path, c.page, c.text, c.id) for n, c in enumerate(chunks, start=1)]
        oracle_n = next((p.n for p in passages if p.chunk_id == case.oracle.id), None)
        target = cite(oracle_n) if oracle_n else NOT_FOUND_MARKER
        messages = build_messages(case.question, passages, boundary=f"{rng.getrandbits(64):016x}") + [{"role": "assistant", "content": target}]
        return {
            "split": split,
            "oracle": {"source": case.oracle.path, "page": case.oracle.page, "chunk_id": case.oracle.id} if oracle_n else None,
            "question": case.question,
            "answer": case.answer or (quoted[0] if quoted else None),
            "kind": case.kind, "label": case.label,
            "passages": [{"n": p.n, "source": p.source, "page": p.page, "chunk_id": p.chunk_id, "text": p.text} for p in passages],
            "messages": messages,
        }

    def _target(self, case: QuestionCase) -> tuple[Callable[[int], str], list[str]]:
        """The answer as a function of the oracle's number, and the oracle sentences it quotes.

        A gold answer found in an oracle sentence quotes that sentence (or, when that is a fragment or a
        heading, gives the answer alone); one not found is used as written; without one, the sentences
        the extractive backend picks from the oracle are quoted.
        """
        text = case.oracle.text
        if case.answer:
            holding = [s for s in split_sentences(text) if case.answer in s]
            if not holding:
                return lambda n: f"{case.answer} [{n}]", []
            text = holding[0]
        chosen = self._quoter.select(case.question, [Passage(1, case.oracle.path, case.oracle.page, text, case.oracle.id)])
        if chosen:
            return (lambda n: "".join(self._quoter.render(case.question, [replace(s, passage=n) for s in chosen])),
                    [s.text for s in chosen])
        if case.answer:  # the sentence holding it is a fragment or a heading: the answer alone reads better
            return lambda n: f"{case.answer} [{n}]", [text]
        first = (split_sentences(text) or [text.strip()])[0]
        return lambda n: f"{first} [{n}]", [first]

    def _distractors(self, case: QuestionCase, documents: Filters, excluded: set[str], needles: Iterable[str],
                     count: int) -> list[ChunkRow]:
        """Chunks retrieved for the question from ``documents``, other than the oracle, its document
        when ``excluded``, and any chunk holding the quoted text or the answer."""
        chosen: list[ChunkRow] = []
        for depth in (4 * (count + 1), 200, 1000):  # deeper only when the oracle's own document fills the top
            pool = self.retriever.search(case.question, mode=Mode.HYBRID, k=depth, filters=documents, rerank=False).hits
            chosen = [hit.chunk for hit in pool if hit.chunk.id != case.oracle.id and hit.chunk.path not in excluded
                      and not any(needle in hit.chunk.text for needle in needles)]
            if len(chosen) >= count or len(pool) < depth:
                break
        return chosen[:count]


def write_examples(examples: Sequence[dict[str, Any]], path: Path) -> None:
    """One JSON object per line, written to a temporary file and renamed: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples), encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_examples(path: Path) -> list[dict[str, Any]]:
    """The examples of a ``rag finetune data`` file, checked; raises :class:`DataError` naming the line."""
    examples = []
    for number, example in read_jsonl(path, DataError, "not a training example", contents="the training data"):
        try:
            messages = example["messages"]
            valid = (example.get("split") in ("train", "validation") and isinstance(messages, list) and len(messages) >= 2
                     and all(isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") for m in messages)
                     and messages[-1]["role"] == "assistant")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"{path}:{number}: not a training example ({type(exc).__name__}: {exc})") from exc
        if not valid:
            raise DataError(f"{path}:{number}: not a training example (needs split train|validation and messages "
                            "ending with the assistant's answer)")
        examples.append(example)
    if not examples:
        raise DataError(f"{path}: no training examples; build them with `rag finetune data`")
    return examples

