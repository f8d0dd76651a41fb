"""What every embedder offers: unit vectors for texts in a role (query or passage), batch by batch."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from enum import StrEnum
from typing import Any

import numpy as np


class Role(StrEnum):
    """What a text is to the embedder: asymmetric models (e5) embed questions and passages differently."""

    QUERY = "query"
    PASSAGE = "passage"


class EmbedderError(RuntimeError):
    """The embedding model cannot be loaded or does not match the index."""


class EmbedderMismatchError(EmbedderError):
    """The index was built with another embedding model than the one configured."""


LANGUAGE_OFFSET_SCALE = 0.5
"""The share of the language offset that retrieval and answer selection add to text in the other language:
less than all of it, so that of two passages about as close to the question, the one in its language wins
(an English question about the English guide, not its Chinese twin), while the other language still wins
when it is clearly closer. Chosen on pdf_qa's dev half (bench/pdf_answers.py): mean reciprocal rank of the
gold passage 0.736 at 1.0, 0.748 at 0.5 and 0.25, 0.744 at 0; hit@5 0.905 at each."""


class Embedder(ABC):
    """Normalised float32 embeddings; the model loads on first use.

    Example:
        >>> from rag.embed import load_embedder
        >>> embedder = load_embedder("e5-small")
        >>> embedder.encode(["室外传感器的电池能用多久？"], Role.QUERY).shape
        (1, 384)
    """

    name: str
    """The canonical name the index manifest records (``multilingual-e5-small``, ``all-MiniLM-L6-v2``, a folder)."""
    batch_size: int
    needs_unknown_warning: bool = False
    """True for vocabularies that turn whole scripts into [UNK] (MiniLM and Chinese)."""
    language_offsets: dict[tuple[str, str], float] = {}
    """``(question language, passage language) -> offset``: multilingual models rate text in the
    question's own language closer than text in another, whatever it says; adding the measured gap to
    the cosine of a passage in the other language lets it compete on meaning."""

    def language_offset(self, question_language: str, passage_language: str, scale: float = 1.0) -> float:
        """``scale`` times the measured gap (see :data:`LANGUAGE_OFFSET_SCALE`)."""
        return scale * self.language_offsets.get((question_language, passage_language), 0.0)

    @abstractmethod
    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""

    @abstractmethod
    def unknown_token_counts(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        """``(tokens, unknown tokens)`` per text under the model's tokenizer, special tokens excluded."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What the index manifest records: name, backend, model, dimension, normalisation, prefixes."""

    def lengths(self, texts: Sequence[str]) -> list[int]:
        """A cheap measure of each text's length in tokens, for batching texts of a size together."""
        return [len(t) for t in texts]

    @property
    def dimension(self) -> int:
        return int(self.describe()["dimension"])

    def encode_batches(self, texts: Sequence[str], role: Role = Role.PASSAGE) -> Iterator[tuple[list[int], np.ndarray]]:
        """Yield ``(positions in texts, vectors)`` batch by batch, so callers can save and report progress.

        Texts are batched longest first, so each batch pads to a similar length.
        """
        lengths = self.lengths(texts)
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        for offset in range(0, len(order), self.batch_size):
            positions = order[offset : offset + self.batch_size]
            yield positions, self.encode([texts[i] for i in positions], role)
