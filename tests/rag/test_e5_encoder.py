"""The e5 encoder module against transformers' BertModel with the same weights, and its packed weights
against plain linear layers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from rag.embed.e5_encoder import LINEAR_TENSORS, NORM_TENSORS, E5Encoder, PackedLinear
from rag.embed.e5_weights import E5Weights


@pytest.fixture(scope="module")
def weights() -> E5Weights:
    return E5Weights.open()


def bert_from(encoder: E5Encoder, w: E5Weights) -> BertModel:
    """transformers' BERT with the encoder's weights: the reference it must agree with."""
    config = BertConfig(vocab_size=1, hidden_size=w.hidden, num_hidden_layers=w.layers, num_attention_heads=w.heads,
                        intermediate_size=w.intermediate, max_position_embeddings=w.max_positions, type_vocab_size=1,
                        layer_norm_eps=w.layer_norm_eps, hidden_act="gelu")
    bert = BertModel(config, add_pooling_layer=False).eval()
    state = encoder.state_dict()
    mapped = {"embeddings.position_embeddings.weight": state["positions"], "embeddings.token_type_embeddings.weight": state["token_type"][None],
              "embeddings.LayerNorm.weight": state["embedding_norm.weight"], "embeddings.LayerNorm.bias": state["embedding_norm.bias"],
              "embeddings.word_embeddings.weight": torch.zeros(1, w.hidden)}
    bert_names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value", "ao": "attention.output.dense",
                  "fi": "intermediate.dense", "fo": "output.dense", "aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(w.layers):
        for module, parts in LINEAR_TENSORS.items():
            for kind in ("weight", "bias"):
                for part, rows in zip(parts, state[f"layers.{layer}.{module}.{kind}"].chunk(len(parts)), strict=True):
                    mapped[f"encoder.layer.{layer}.{bert_names[part]}.{kind}"] = rows
        for module, short in NORM_TENSORS.items():
            for kind in ("weight", "bias"):
                mapped[f"encoder.layer.{layer}.{bert_names[short]}.{kind}"] = state[f"layers.{layer}.{module}.{kind}"]
    bert.load_state_dict(mapped, strict=True)
    return bert


def test_the_encoder_computes_what_bert_computes_with_and_without_padding(weights):
    encoder = E5Encoder.from_weights(weights)
    bert = bert_from(encoder, weights)
    rng = np.random.default_rng(0)
    lengths = [12, 5, 9]
    ids = np.full((3, 12), weights.pad, np.int64)
    for row, n in enumerate(lengths):
        ids[row, :n] = [weights.bos, *rng.integers(10, 100_000, n - 2), weights.eos]
    mask = torch.from_numpy(ids != weights.pad)
    vocabulary, inverse = np.unique(ids, return_inverse=True)
    tokens = torch.from_numpy(weights.word_rows(vocabulary)[inverse.reshape(ids.shape)])
    with torch.inference_mode():
        ours = encoder(tokens, mask)
        theirs = bert(inputs_embeds=tokens, attention_mask=mask.long(), token_type_ids=torch.zeros_like(mask, dtype=torch.long)).last_hidden_state
        alone = encoder(tokens[1:2, :5])  # one text, no padding: no mask
    for row, n in enumerate(lengths):  # padded positions are never pooled: only real tokens must agree
        assert torch.allclose(ours[row, :n], theirs[row, :n], atol=2e-4), row
    assert torch.allclose(alone[0], theirs[1, :5], atol=2e-4)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="PyTorch built without oneDNN")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_packed_weights_give_the_products_of_plain_linear_layers(dtype):
    torch.manual_seed(0)
    linear = torch.nn.Linear(384, 1536).to(dtype)
    packed = PackedLinear(linear)
    assert packed.weight.is_mkldnn
    for rows in (1, 7, 300):  # one question, a few tokens, a batch
        x = torch.randn(2, rows, 384).to(dtype)
        with torch.inference_mode():
            expected, got = linear(x), packed(x)
        if dtype is torch.bfloat16:
            assert torch.equal(got, expected)
        else:
            assert torch.allclose(got, expected, atol=1e-5)


def test_packing_applies_on_the_cpu_to_float_weights_only(weights):
    encoder = E5Encoder.from_weights(weights).packed()
    assert isinstance(encoder.layers[0].feed_forward_out, PackedLinear) == torch.backends.mkldnn.is_available()
    assert encoder.packed() is encoder
    quantised = torch.ao.quantization.quantize_dynamic(E5Encoder.from_weights(weights), {torch.nn.Linear}, dtype=torch.qint8)
    assert not isinstance(quantised.packed().layers[0].qkv, PackedLinear)
