"""The encoder: the same vectors as sentence-transformers' own encode, and sentence vectors in one pass."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from qa.embed import SentenceTransformerEmbedder

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


def test_int8_quantises_the_linear_layers_per_channel_and_stays_close_to_fp32():
    fp32 = SentenceTransformerEmbedder(precision="fp32").embed(TEXTS)
    int8 = SentenceTransformerEmbedder(precision="int8").embed(TEXTS)
    # 0.98 here; torch's own recipe (7-bit activations, one weight scale per layer) gives 0.89.
    assert np.min(np.sum(fp32 * int8, axis=1)) > 0.97


@pytest.mark.parametrize("flags", [{"avx512_vnni"}, set()], ids=["vnni", "no-vnni"])
def test_int8_uses_8_bit_activations_only_with_vnni_and_otherwise_keeps_down_projections_float(
    flags, embedder, monkeypatch
):
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    from qa import settings
    from qa.embed import _quantize_int8

    monkeypatch.setattr(settings, "cpu_flags", lambda: frozenset(flags))
    model = _quantize_int8(copy.deepcopy(embedder.model))
    linear = {n: m for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, DynamicLinear))}
    down = {name for name in linear if name.endswith(".output.dense") and "attention" not in name}
    assert len(down) == 6  # one per transformer layer
    for name, module in linear.items():
        if name in down and not flags:
            assert isinstance(module, torch.nn.Linear), name
        else:
            assert isinstance(module, DynamicLinear), name
            assert module.weight().qscheme() == torch.per_channel_affine, name
            assert (type(module).__name__ == "Int8Linear") == bool(flags), name
