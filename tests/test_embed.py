"""The encoder: the same vectors as sentence-transformers' own encode, and sentence vectors in one pass."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from qa.embed import SentenceTransformerEmbedder

pytestmark = [pytest.mark.slow, pytest.mark.precision]

TEXTS = [
    "What does SOSA do?",
    "The Security of Supply Arrangement lets each side ask the other for priority in defense contracts.",
    "Japan eased its export rules in December 2023, so Patriot interceptors made under licence "
    "can be shipped to the United States to refill its stocks. " * 3,
    "Short.",
]


def test_embed_equals_sentence_transformers_encode(embedder):
    ours = embedder.embed(TEXTS)
    theirs = embedder.model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == (len(TEXTS), embedder.dimension) and ours.dtype == np.float32
    assert np.abs(ours - theirs).max() < 1e-5
    assert embedder.embed([]).shape == (0, embedder.dimension)


def test_the_model_loads_once_per_process(embedder):
    """Every encoder of one model and precision shares one loaded model (the UI and CLI open many)."""
    again = SentenceTransformerEmbedder(embedder.name, precision=embedder.precision)
    assert again.model is embedder.model


def test_span_vectors_come_with_the_text_vectors_and_match_their_sentences(embedder):
    text = TEXTS[1] + " " + TEXTS[2].strip()
    spans = [(0, len(TEXTS[1])), (len(TEXTS[1]) + 1, len(text))]
    vectors, pooled = embedder.embed_spans([text], [spans])
    assert np.abs(vectors - embedder.embed([text])).max() < 1e-5
    own = embedder.embed([text[a:b] for a, b in spans])
    similarity = pooled[0] @ own.T
    assert similarity[0, 0] > similarity[0, 1] and similarity[1, 1] > similarity[1, 0]
    assert np.allclose(np.linalg.norm(pooled[0], axis=1), 1.0, atol=1e-5)


def test_bf16_gives_nearly_the_same_vectors():
    fp32 = SentenceTransformerEmbedder(precision="fp32").embed(TEXTS)
    bf16 = SentenceTransformerEmbedder(precision="bf16").embed(TEXTS)
    assert np.min(np.sum(fp32 * bf16, axis=1)) > 0.995


def test_int8_keeps_vectors_within_0_95_cosine_of_fp32():
    """What int8 must keep, on every CPU path: each vector at least 0.95 cosine to fp32's.

    Measured 0.993 (VNNI, 8-bit weights) and 0.990 (no VNNI, 7-bit weights) at the least on these
    texts; SQuAD snippet accuracy within 0.5 point of fp32 is checked by `qa eval` (README).
    """
    fp32 = SentenceTransformerEmbedder(precision="fp32").embed(TEXTS)
    int8 = SentenceTransformerEmbedder(precision="int8").embed(TEXTS)
    assert np.min(np.sum(fp32 * int8, axis=1)) >= 0.95


@pytest.mark.parametrize("vnni", [True, False], ids=["vnni", "no-vnni"])
def test_int8_replaces_every_linear_layer_with_8_bit_weights_only_where_the_cpu_has_vnni(vnni, embedder):
    import torch

    from qa.embed import _quantize_int8

    model = _quantize_int8(copy.deepcopy(embedder.model), vnni=vnni)
    assert not [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    layers = [m for m in model.modules() if type(m).__name__ == "Int8Linear"]
    assert len(layers) == 6 * 6 + 1  # q, k, v, attention out, up and down per layer; the pooler
    for layer in layers:
        top = 127 if vnni else 63
        assert layer.weight_t.dtype == torch.int8 and int(layer.weight_t.abs().max()) == top


def test_int8_sums_are_exact_on_this_cpu_path(embedder):
    """The int8 kernel's sums equal exact integer arithmetic: no 16-bit saturation (CPUs without VNNI)."""
    import torch

    from qa.embed import _quantize_int8

    model = _quantize_int8(copy.deepcopy(embedder.model))
    layer = next(m for m in model.modules() if type(m).__name__ == "Int8Linear" and m.in_features == 1536)
    x = torch.randn(40, layer.in_features, generator=torch.Generator().manual_seed(0))
    x[0] = 5.0  # a token whose every activation quantises to the extreme, 127
    top = x.abs().amax(dim=1, keepdim=True)
    q = torch.round(x * (127.0 / top)).long()
    exact = (q @ layer.weight_t.long()).double() * (top * layer.scale).double() + layer.bias.double()
    with torch.inference_mode():
        got = layer(x).double()
    assert torch.allclose(got, exact, rtol=1e-5, atol=1e-4)


def test_int8_vectors_do_not_depend_on_the_batch():
    """Per-token scales: a text's vector is the same alone and beside longer or shorter texts."""
    int8 = SentenceTransformerEmbedder(precision="int8")
    together = int8.embed(TEXTS)
    alone = np.vstack([int8.embed([t]) for t in TEXTS])
    assert np.abs(together - alone).max() < 1e-5
