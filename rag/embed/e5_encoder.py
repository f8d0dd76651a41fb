"""The e5 encoder (a BERT encoder) as a small PyTorch module, built for inference on few cores.

It computes what ``transformers.BertModel`` computes from the same weights (tests/rag/test_e5_encoder.py
compares the two), with less work per call: the query, key and value projections are one matrix
multiply, there is no per-layer mask, head-mask or output bookkeeping, and on the CPU the weights are
packed once in oneDNN's blocked layout (:meth:`E5Encoder.packed`) instead of on every multiply. One
question's embedding on 2 cores is dominated by such fixed costs. In bfloat16, on 100 questions
embedded one at a time, BertModel took 14.6 ms a question, this module 11.5 ms unpacked and 8.9 ms
packed (``question_p50_ms`` of bench/embedder_kernels.py). A batch whose rows have one length needs
no mask at all.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from rag.embed.e5_weights import E5Weights

LINEAR_TENSORS = {"qkv": ("q", "k", "v"), "attention_output": ("ao",), "feed_forward_in": ("fi",),
                  "feed_forward_out": ("fo",)}
"""Each linear layer of an encoder layer, and the bundled tensors it is made of (stacked by rows)."""
NORM_TENSORS = {"attention_norm": "aln", "output_norm": "oln"}


class PackedLinear(nn.Module):
    """A CPU linear layer whose weight oneDNN has laid out in its blocked format once, at load: a plain
    ``nn.Linear`` in bfloat16 re-lays its weight out on every call, which is half the time of a
    question's embedding. Same products: bfloat16 results are identical to ``nn.Linear``'s, float32
    ones agree to 1e-5."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)
        self.bias = linear.bias.detach() if linear.bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")


class EncoderLayer(nn.Module):
    """Self-attention then the feed-forward block, each added to its input and layer-normalised (post-norm)."""

    def __init__(self, hidden: int, intermediate: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.attention_output = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps)
        self.feed_forward_in = nn.Linear(hidden, intermediate)
        self.feed_forward_out = nn.Linear(intermediate, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(batch, length, hidden)
        x = self.attention_norm(self.attention_output(attended) + x)
        return self.output_norm(self.feed_forward_out(F.gelu(self.feed_forward_in(x))) + x)


class E5Encoder(nn.Module):
    """Token embeddings in, last hidden states out; ``mask`` (batch, length), True on real tokens.

    Example:
        >>> from rag.embed.e5_weights import E5Weights
        >>> weights = E5Weights.open()
        >>> encoder = E5Encoder.from_weights(weights)
        >>> tokens = torch.from_numpy(weights.word_rows(np.array([weights.bos, 35377, weights.eos])))[None]
        >>> encoder(tokens).shape
        torch.Size([1, 3, 384])
    """

    def __init__(self, hidden: int, intermediate: int, heads: int, layers: int, max_positions: int, eps: float) -> None:
        super().__init__()
        self.hidden = hidden
        self.positions = nn.Parameter(torch.zeros(max_positions, hidden), requires_grad=False)
        self.token_type = nn.Parameter(torch.zeros(hidden), requires_grad=False)
        """The one token type's embedding (e5 gives every token type 0)."""
        self.embedding_norm = nn.LayerNorm(hidden, eps)
        self.layers = nn.ModuleList(EncoderLayer(hidden, intermediate, heads, eps) for _ in range(layers))

    @classmethod
    def from_weights(cls, w: E5Weights) -> E5Encoder:
        """The encoder with the bundled weights, dequantised to float32."""
        with torch.device("meta"):
            encoder = cls(w.hidden, w.intermediate, w.heads, w.layers, w.max_positions, w.layer_norm_eps)
        h, ff = w.hidden, w.intermediate
        rows = {"q": h, "k": h, "v": h, "ao": h, "fi": ff, "fo": h}
        columns = {"q": h, "k": h, "v": h, "ao": h, "fi": h, "fo": ff}
        state = {"positions": w.tensor("emb.pos", (w.max_positions, h)), "token_type": w.tensor("emb.type", (w.type_vocab, h))[0],
                 "embedding_norm.weight": w.tensor("emb.ln.w", (h,)), "embedding_norm.bias": w.tensor("emb.ln.b", (h,))}
        for layer in range(w.layers):
            for module, parts in LINEAR_TENSORS.items():
                state[f"layers.{layer}.{module}.weight"] = np.concatenate([w.tensor(f"l{layer}.{p}.w", (rows[p], columns[p])) for p in parts])
                state[f"layers.{layer}.{module}.bias"] = np.concatenate([w.tensor(f"l{layer}.{p}.b", (rows[p],)) for p in parts])
            for module, short in NORM_TENSORS.items():
                state[f"layers.{layer}.{module}.weight"] = w.tensor(f"l{layer}.{short}.w", (h,))
                state[f"layers.{layer}.{module}.bias"] = w.tensor(f"l{layer}.{short}.b", (h,))
        encoder.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, strict=True, assign=True)
        return encoder.eval()

    def packed(self) -> E5Encoder:
        """This encoder with its linear layers' weights packed for oneDNN (see :class:`PackedLinear`), when
        its weights are float32 or bfloat16 on a CPU whose PyTorch has oneDNN; as it is otherwise."""
        first = self.layers[0].qkv
        if not (isinstance(first, nn.Linear) and first.weight.device.type == "cpu" and first.weight.dtype in (torch.float32, torch.bfloat16)
                and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")):
            return self
        for layer in self.layers:
            for name in LINEAR_TENSORS:
                setattr(layer, name, PackedLinear(getattr(layer, name)))
        return self

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        length = tokens.shape[1]
        x = self.embedding_norm(tokens + self.positions[:length] + self.token_type)
        attention = mask[:, None, None, :] if mask is not None and not bool(mask.all()) else None
        for layer in self.layers:
            x = layer(x, attention)
        return x
