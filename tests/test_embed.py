"""The encoder: the same vectors as sentence-transformers' own encode, and sentence vectors in one pass."""

from __future__ import annotations

import numpy as np

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


def test_int8_quantises_all_but_the_down_projections_and_stays_close_to_fp32():
    import torch

    int8 = SentenceTransformerEmbedder(precision="int8")
    linear = {name: module for name, module in int8.model.named_modules() if type(module).__name__.endswith("Linear")}
    down = {name for name, module in linear.items() if name.endswith("output.dense") and "attention" not in name}
    assert len(down) == 6  # one per transformer layer
    for name, module in linear.items():
        if name in down:
            assert type(module).__name__ == "Bf16Linear" or isinstance(module, torch.nn.Linear), name
        elif not name.startswith(tuple(down)):
            assert isinstance(module, torch.ao.nn.quantized.dynamic.Linear), name
            assert module.weight().qscheme() == torch.per_channel_affine, name
    fp32 = SentenceTransformerEmbedder(precision="fp32").embed(TEXTS)
    assert np.min(np.sum(fp32 * int8.embed(TEXTS), axis=1)) > 0.95  # quantising every layer per tensor: 0.89
