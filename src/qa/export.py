"""Export the question encoder and the answer reader to ONNX, so that questions need no torch.

Run at index time, where torch and the models are loaded anyway. The graphs are written out
layer by layer from the loaded torch modules (BERT, as all-MiniLM-L6-v2 and the reader are), with
every linear layer in the arithmetic the torch path uses:

- float32 layers as ``MatMul`` + ``Add``;
- qa's int8 layers (``qa.embed``: weights per output channel, activations per token, summed in
  int32) as the same steps in ONNX operators (``ReduceMax``, ``Round``, ``MatMulInteger``), so the
  ONNX vectors equal torch's up to float rounding;
- torch's dynamic int8 layers (one activation scale per batch) as ``DynamicQuantizeLinear`` and
  ``MatMulInteger``.

Anything else (bf16 weights, another architecture or pooling) is not exported; ``qa.ort`` then
reports why and the torch path answers. ``qa.ort`` reads what this module writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .ort import ENCODER, FORMAT, READER, encoder_meta_ok, reader_meta_ok, reader_source

OPSET = 17


class UnsupportedError(Exception):
    """The model has a part the ONNX graph does not cover; the torch path answers instead."""


class _Graph:
    """A small ONNX graph builder: nodes, constants and unique names."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value: Any, hint: str = "c") -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.array(value, order="C"), name))  # keeps 0-d scalars 0-d
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs: Any) -> Any:
        from onnx import helper

        names = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    def linear(self, x: str, module: Any) -> str:
        """``module(x)`` for a torch linear layer: float32, qa's per-token int8, or torch's dynamic int8."""
        if hasattr(module, "weight_t") and hasattr(module, "scale"):  # qa.embed's Int8Linear
            top = self.op("Max", self.op("ReduceMax", self.op("Abs", x), axes=[-1], keepdims=1), self.const(_f(1e-12)))
            ratio = self.op("Div", self.const(_f(127.0)), top)
            q = self.op("Cast", self.op("Round", self.op("Mul", x, ratio)), to=_onnx_type("int8"))
            acc = self.op("MatMulInteger", q, self.const(_np(module.weight_t).astype(np.int8), "w8"))
            scale = self.op("Mul", top, self.const(_np(module.scale).astype(np.float32), "scale"))
            y = self.op("Mul", self.op("Cast", acc, to=_onnx_type("float32")), scale)
        elif _is_torch_dynamic(module):
            w = module.weight()
            if not w.is_quantized or int(w.q_per_channel_zero_points().abs().max()) != 0:
                raise UnsupportedError("a quantised layer with weight zero points")
            if type(module).forward is _dynamic_forward():
                raise UnsupportedError("torch's 7-bit activations (a CPU without VNNI)")
            q, xs, xz = self.op("DynamicQuantizeLinear", x, outputs=3)
            weights = w.int_repr().numpy().T.astype(np.int8)
            acc = self.op("MatMulInteger", q, self.const(weights, "w8"), xz)
            scales = w.q_per_channel_scales().numpy().astype(np.float32)
            y = self.op("Mul", self.op("Cast", acc, to=_onnx_type("float32")), self.op("Mul", xs, self.const(scales)))
            bias = module.bias()
            return str(y if bias is None else self.op("Add", y, self.const(_np(bias).astype(np.float32), "b")))
        elif type(module).__name__ == "Linear" and getattr(module, "weight", None) is not None:
            if module.weight.dtype.is_floating_point and str(module.weight.dtype) != "torch.float32":
                raise UnsupportedError(f"{module.weight.dtype} weights")
            y = self.op("MatMul", x, self.const(_np(module.weight).T.astype(np.float32), "w"))
        else:
            raise UnsupportedError(f"a {type(module).__name__} layer")
        bias = getattr(module, "bias", None)
        return str(y if bias is None else self.op("Add", y, self.const(_np(bias).astype(np.float32), "b")))

    def layer_norm(self, x: str, module: Any) -> str:
        return str(
            self.op(
                "LayerNormalization",
                x,
                self.const(_np(module.weight).astype(np.float32), "ln_w"),
                self.const(_np(module.bias).astype(np.float32), "ln_b"),
                axis=-1,
                epsilon=float(module.eps),
            )
        )

    def model(self, inputs: list[Any], outputs: list[Any], doc: str) -> Any:
        from onnx import helper

        graph = helper.make_graph(self.nodes, "qa", inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="qa")
        model.doc_string = doc
        model.ir_version = 8
        return model


def _np(tensor: Any) -> np.ndarray:
    return np.asarray(tensor.detach().to("cpu").float() if tensor.is_floating_point() else tensor.detach())


def _f(value: float) -> np.ndarray:
    return np.array(value, dtype=np.float32)


def _onnx_type(name: str) -> int:
    from onnx import TensorProto

    return int({"int8": TensorProto.INT8, "float32": TensorProto.FLOAT}[name])


def _is_torch_dynamic(module: Any) -> bool:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return isinstance(module, DynamicLinear)


def _dynamic_forward() -> Any:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return DynamicLinear.forward


def _bert(g: _Graph, bert: Any) -> str:
    """MiniLM/BERT's embeddings and layers over the graph inputs; returns the last hidden states."""
    config = bert.config
    if getattr(config, "hidden_act", None) != "gelu" or getattr(config, "position_embedding_type", "absolute") not in (
        "absolute",
        None,
    ):
        raise UnsupportedError(f"activation {config.hidden_act!r}")
    heads, hidden = int(config.num_attention_heads), int(config.hidden_size)
    size = hidden // heads
    emb = bert.embeddings
    words = g.op("Gather", g.const(_np(emb.word_embeddings.weight), "word_embeddings"), "input_ids")
    types = g.op("Gather", g.const(_np(emb.token_type_embeddings.weight), "type_embeddings"), "token_type_ids")
    # The first T rows of the position table, T the number of tokens.
    length = g.op("Shape", "input_ids", start=1, end=2)
    table = g.const(_np(emb.position_embeddings.weight), "position_embeddings")
    zero = g.const(np.array([0], dtype=np.int64))
    where = g.op("Slice", table, zero, length, zero)
    x = g.layer_norm(g.op("Add", g.op("Add", words, types), where), emb.LayerNorm)
    # Additive mask over keys: 0 where attended, the float minimum where padded (as transformers).
    mask = g.op("Cast", "attention_mask", to=_onnx_type("float32"))
    bias = g.op("Mul", g.op("Sub", g.const(_f(1.0)), mask), g.const(_f(float(np.finfo(np.float32).min))))
    bias = g.op("Unsqueeze", bias, g.const(np.array([1, 2], dtype=np.int64)))
    split = g.const(np.array([0, 0, heads, size], dtype=np.int64))
    merge = g.const(np.array([0, 0, hidden], dtype=np.int64))
    scaling = g.const(_f(1.0 / float(np.sqrt(size))))
    for layer in bert.encoder.layer:
        att = layer.attention
        q = g.op("Transpose", g.op("Reshape", g.linear(x, att.self.query), split), perm=[0, 2, 1, 3])
        k = g.op("Transpose", g.op("Reshape", g.linear(x, att.self.key), split), perm=[0, 2, 3, 1])
        v = g.op("Transpose", g.op("Reshape", g.linear(x, att.self.value), split), perm=[0, 2, 1, 3])
        scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scaling), bias)
        context = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
        context = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), merge)
        x = g.layer_norm(g.op("Add", g.linear(context, att.output.dense), x), att.output.LayerNorm)
        h = g.linear(x, layer.intermediate.dense)
        # exact GELU, 0.5 x (1 + erf(x / sqrt 2)), as BERT's "gelu"
        erf = g.op("Erf", g.op("Div", h, g.const(_f(float(np.sqrt(2.0))))))
        h = g.op("Mul", g.op("Mul", h, g.op("Add", erf, g.const(_f(1.0)))), g.const(_f(0.5)))
        x = g.layer_norm(g.op("Add", g.linear(h, layer.output.dense), x), layer.output.LayerNorm)
    return x


def _inputs() -> list[Any]:
    from onnx import TensorProto, helper

    return [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"]) for n in _INPUTS]


_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def encoder_graph(model: Any) -> Any:
    """The ONNX graph of a sentence-transformers BERT model with mean pooling: token ids to sentence vectors."""
    from onnx import TensorProto, helper

    modules = list(model)
    pooling = modules[1] if len(modules) > 1 else None
    if (
        len(modules) not in (2, 3)
        or type(modules[0]).__name__ != "Transformer"
        or getattr(pooling, "pooling_mode", None) != "mean"
        or (len(modules) == 3 and type(modules[2]).__name__ != "Normalize")
    ):
        raise UnsupportedError("not a BERT encoder with mean pooling")
    bert = modules[0].auto_model
    if type(bert).__name__ != "BertModel":
        raise UnsupportedError(f"a {type(bert).__name__}, not a BERT model")
    g = _Graph()
    states = _bert(g, bert)
    mask = g.op("Unsqueeze", g.op("Cast", "attention_mask", to=_onnx_type("float32")), g.const(np.array([-1])))
    axis = g.const(np.array([1], dtype=np.int64))
    total = g.op("ReduceSum", g.op("Mul", states, mask), axis, keepdims=0)
    count = g.op("Max", g.op("ReduceSum", mask, axis, keepdims=0), g.const(_f(1e-9)))
    g.nodes.append(_rename(g.op("Div", total, count), "sentence_embedding"))
    width = int(bert.config.hidden_size)
    out = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", width])
    return g.model(_inputs(), [out], "qa question encoder")


def reader_graph(reader: Any) -> Any:
    """The ONNX graph of ``qa.scorer.reader``'s network: answer logit and start/end logits per token."""
    from onnx import TensorProto, helper

    g = _Graph()
    states = _bert(g, reader.encoder)
    first = g.op("Gather", states, g.const(np.array(0, dtype=np.int64)), axis=1)
    hidden = g.op("Tanh", g.linear(first, reader.answers[0]))
    logit = g.op("Squeeze", g.linear(hidden, reader.answers[2]), g.const(np.array([-1], dtype=np.int64)))
    span = g.linear(states, reader.span)
    start = g.op("Gather", span, g.const(np.array(0, dtype=np.int64)), axis=2)
    end = g.op("Gather", span, g.const(np.array(1, dtype=np.int64)), axis=2)
    for name, value in (("logit", logit), ("start", start), ("end", end)):
        g.nodes.append(_rename(value, name))
    outputs = [
        helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch"]),
        helper.make_tensor_value_info("start", TensorProto.FLOAT, ["batch", "tokens"]),
        helper.make_tensor_value_info("end", TensorProto.FLOAT, ["batch", "tokens"]),
    ]
    return g.model(_inputs(), outputs, "qa answer reader")


def _rename(value: str, name: str) -> Any:
    from onnx import helper

    return helper.make_node("Identity", [value], [name])


def export_encoder(folder: Path, model: Any, name: str, precision: str, max_length: int) -> None:
    """Write ``encoder.onnx``, its tokenizer and ``encoder.json`` into ``folder`` (replacing them)."""
    graph = encoder_graph(model)
    meta = {
        "format": FORMAT,
        "model": name,
        "precision": precision,
        "dimension": int(model.get_embedding_dimension()),
        "max_length": int(max_length),
    }
    _write(folder, ENCODER, graph, model.tokenizer, meta)


def export_reader(folder: Path, model_dir: Path, reader: Any, tokenizer: Any) -> None:
    """Write ``reader.onnx``, its tokenizer and ``reader.json`` into ``folder`` (replacing them)."""
    from .scorer.reader import MAX_TOKENS

    graph = reader_graph(reader)
    meta = {"format": FORMAT, "max_length": MAX_TOKENS, "source": reader_source(model_dir)}
    _write(folder, READER, graph, tokenizer, meta)


def _write(folder: Path, stem: str, graph: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
    """The graph, the tokenizer and the meta file, each written to a temporary name and renamed.

    The meta file goes last: it is what says the export is complete.
    """
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    onnx.checker.check_model(graph)
    data = graph.SerializeToString()
    meta["sha256"] = hashlib.sha256(data).hexdigest()
    (folder / f"{stem}.json").unlink(missing_ok=True)
    _atomic(folder / f"{stem}.onnx", data)
    _atomic(folder / f"{stem}.tokenizer.json", tokenizer.backend_tokenizer.to_str().encode())
    _atomic(folder / f"{stem}.json", (json.dumps(meta, indent=1) + "\n").encode())


def _atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as a plain open() would make it, not mkstemp's 0600
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_exports(folder: Path, embedder: Any, name: str, precision: str) -> list[str]:
    """Export what ``folder`` lacks or has stale (encoder, reader); returns why any could not be exported."""
    from .scorer import MODEL_DIR

    problems: list[str] = []
    if not encoder_meta_ok(folder, name, precision):
        try:
            export_encoder(folder, embedder.model, name, precision, int(embedder.model.max_seq_length))
        except UnsupportedError as exc:
            problems.append(f"the question encoder ({name}, {precision}) has {exc}")
    if not reader_meta_ok(folder, MODEL_DIR):
        from .scorer.reader import load
        from .scorer.train import _tokenizer

        try:
            export_reader(folder, MODEL_DIR, load(MODEL_DIR), _tokenizer())
        except UnsupportedError as exc:
            problems.append(f"the answer reader has {exc}")
    return problems
