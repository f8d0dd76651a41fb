"""Cross-encoder reranking with any local sentence-transformers ``CrossEncoder`` model directory."""
from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder


class RerankerError(RuntimeError):
    """The reranker model cannot be loaded."""


class Reranker:
    """Scores ``(query, passage)`` pairs jointly; slower than retrieval, so it sees only the top candidates.

    Usage, with a cross-encoder folder on disk::

        Reranker("/models/bge-reranker-base").scores("warranty?", ["Two years.", "Ten hours."])  # [0.93, 0.02]
    """

    def __init__(self, model: str, batch_size: int = 16, device: str | None = None) -> None:
        self.model_name = model
        self._batch_size = batch_size
        self._device = device

    @cached_property
    def model(self) -> CrossEncoder:
        from sentence_transformers import CrossEncoder

        try:
            return CrossEncoder(self.model_name, device=self._device, local_files_only=True)
        except Exception as exc:  # any loader failure becomes one clear line
            raise RerankerError(
                f"cannot load reranker {self.model_name!r}: {exc}. Set RAG_RERANKER to a local CrossEncoder model directory."
            ) from exc

    def scores(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        result = self.model.predict([(query, p) for p in passages], batch_size=self._batch_size, show_progress_bar=False)
        return [float(s) for s in result]
