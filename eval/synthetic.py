"""Question/passage pairs made from a user's own index, for evaluating retrieval on their documents.

With an LLM the questions are written by it; without one they are pseudo-queries (a passage's
keywords, or one of its sentences with its content words only): easier than real questions, and
labelled so.

Example:
    >>> from pathlib import Path
    >>> cases = synthetic_cases(Index.open(Path("rag-index")), BM25Tokenizer(), n=5)
    >>> len(cases), {case["kind"] for case in cases} <= {"keywords", "sentence"}
    (5, True)
"""
from __future__ import annotations

import random
from typing import Any

from rag.index import Index
from rag.retrieve.variants import KeywordExtractor
from rag.text import BM25Tokenizer, split_sentences

QUESTION_PROMPT = (
    "Write one specific question that the passage below answers on its own, in the passage's language, as a "
    "reader of the document would ask it: name the thing asked about and do not refer to \"the passage\". "
    "Reply with the question only.\n\n"
)
PSEUDO_LABEL = "pseudo-query from the passage's own words: easier than real questions"


def synthetic_cases(index: Index, tokenizer: BM25Tokenizer, n: int, writer: Any = None, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` cases ``{question, source, page, chunk_id, kind, label}`` from randomly chosen chunks."""
    ids = [chunk_id for chunk_id, _, _, _ in index.store.chunk_locations()]
    rng = random.Random(seed)
    keywords = KeywordExtractor(tokenizer, top_k=6)
    cases: list[dict[str, Any]] = []
    for chunk in index.chunks(rng.sample(ids, min(len(ids), n * 3))):
        if len(cases) == n:
            break
        if len(chunk.tokens) < 8:
            continue
        if writer is not None:
            question = writer.complete([{"role": "user", "content": QUESTION_PROMPT + chunk.text}]).strip()
            question = question.splitlines()[0].strip().strip('"“”') if question else ""
            kind, label = "llm", "written by the configured LLM"
        elif len(cases) % 2 == 0:
            question, kind, label = keywords.keywords(chunk.text), "keywords", PSEUDO_LABEL
        else:
            sentences = [s for s in split_sentences(chunk.text) if len(tokenizer.tokenize(s)) >= 4] or [chunk.text]
            sentence = rng.choice(sentences)
            question, kind, label = " ".join(tokenizer.content_words(sentence)) or sentence, "sentence", PSEUDO_LABEL
        if question:
            cases.append({"question": question, "source": chunk.path, "page": chunk.page, "chunk_id": chunk.id,
                          "kind": kind, "label": label})
    return cases
