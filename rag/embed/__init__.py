"""Sentence embeddings behind one interface: the bundled multilingual-e5-small (default, in bfloat16 where
the processor multiplies bfloat16 natively) or any local sentence-transformers model, chosen by name.

Example:
    >>> embedder = load_embedder("e5-small")
    >>> embedder.encode(["保修期多长？"], Role.QUERY).shape
    (1, 384)
"""
from __future__ import annotations

from pathlib import Path

from rag.embed.base import Embedder, EmbedderError, EmbedderMismatchError, Role
from rag.embed.e5 import E5_SMALL, E5_SMALL_BF16, E5_SMALL_INT8, KERNELS, BundledE5Embedder
from rag.embed.sbert import MINILM, SentenceTransformerEmbedder

ALIASES = {"e5-small": E5_SMALL, "e5": E5_SMALL, E5_SMALL: E5_SMALL, "e5-small-int8": E5_SMALL_INT8, "e5-int8": E5_SMALL_INT8,
           E5_SMALL_INT8: E5_SMALL_INT8, "e5-small-bf16": E5_SMALL_BF16, "e5-bf16": E5_SMALL_BF16, E5_SMALL_BF16: E5_SMALL_BF16,
           "minilm": MINILM, MINILM: MINILM}
"""Names users type (``--embedder``, ``embed_model`` in rag.toml, RAG_EMBED_MODEL) -> the name indexes record."""


def native_bfloat16() -> bool:
    """Whether this machine multiplies bfloat16 in hardware: AMX or AVX-512 BF16 on the CPU, or a CUDA GPU
    that supports it. Elsewhere bfloat16 is emulated and slower than float32."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def default_embedder() -> str:
    """The embedder of new indexes: e5-small in bfloat16 where the hardware has it (2.2x float32's
    passages per second here, same nDCG@10: bench/embedder_kernels.py), else in float32."""
    return E5_SMALL_BF16 if native_bfloat16() else E5_SMALL


def base_model(name: str) -> str:
    """The model behind an embedder name: kernels of the bundled e5 share its tuned settings."""
    return E5_SMALL if name in KERNELS else name


def canonical_name(spec: str) -> str:
    """The recorded name for a spec: a known alias, or the absolute path of a model folder."""
    if spec in ALIASES:
        return ALIASES[spec]
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise EmbedderError(f"unknown embedder {spec!r}: use e5-small, e5-small-bf16, e5-small-int8, minilm, or a local "
                            "sentence-transformers model folder")
    return str(path.resolve())


def choose_embedder(configured: str | None, built_with: str | None, where: object = "index") -> str:
    """The embedder for an index: the one it was built with, or for a new index the configured one.

    A configured embedder of another model is refused: its vectors would be meaningless there. One of the
    same model in another kernel (e5-small on an index made in bfloat16) gets the index's kernel.
    """
    if built_with is None:
        return canonical_name(configured) if configured else default_embedder()
    if configured is not None and not _names(configured, built_with):
        raise EmbedderMismatchError(
            f"{where}: index was built with embedder {built_with!r} but {configured!r} is configured; "
            "use another --index, or drop --embedder / RAG_EMBED_MODEL to use the index's own"
        )
    return built_with


def _names(spec: str, name: str) -> bool:
    """Whether a spec (alias, name or folder) names the recorded embedder ``name``'s model."""
    if base_model(ALIASES.get(spec, spec)) == base_model(name):
        return True
    path = Path(spec).expanduser()
    return path.is_dir() and str(path.resolve()) == name


def load_embedder(name: str, batch_size: int = 32) -> Embedder:
    """The embedder for a name or alias (nothing loads until the first text is embedded)."""
    canonical = canonical_name(name)
    if canonical in KERNELS:
        return BundledE5Embedder(batch_size=batch_size, name=canonical)
    return SentenceTransformerEmbedder(canonical, batch_size=batch_size)


__all__ = ["ALIASES", "E5_SMALL", "E5_SMALL_BF16", "E5_SMALL_INT8", "base_model", "default_embedder", "native_bfloat16", "BundledE5Embedder", "Embedder", "EmbedderError", "EmbedderMismatchError",
           "Role", "SentenceTransformerEmbedder", "canonical_name", "choose_embedder", "load_embedder"]
