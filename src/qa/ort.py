"""Questions without torch: the question encoder and the answer reader through ONNX Runtime.

``qa index`` exports both into ``INDEX/onnx/`` (``qa.export``), beside the index generations, so
that answering a question imports ``onnxruntime`` and ``tokenizers`` (a fraction of a second)
instead of torch, transformers and sentence-transformers (seconds). Each export is a graph, its
tokenizer and a JSON file written last, which names what it was made from: the encoder's model and
precision (those of the index), the reader's weights (size, time and SHA-256 of
``reader.safetensors``). An export that is missing or made from something else is not used; the
torch path answers instead, with the same answers (tests compare the two).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = 1
FOLDER = "onnx"
ENCODER = "encoder"
READER = "reader"
READER_WEIGHTS = "reader.safetensors"


def export_folder(index_dir: Path) -> Path:
    """Where an index keeps its ONNX exports."""
    return Path(index_dir) / FOLDER


def _meta(folder: Path, stem: str) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / f"{stem}.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None
    if not (folder / f"{stem}.onnx").is_file() or not (folder / f"{stem}.tokenizer.json").is_file():
        return None
    return meta


def encoder_meta_ok(folder: Path, model: str, precision: str) -> bool:
    """Whether ``folder`` holds an encoder export of ``model`` at ``precision``."""
    meta = _meta(folder, ENCODER)
    return meta is not None and meta.get("model") == model and meta.get("precision") == precision


def reader_source(model_dir: Path) -> dict[str, Any]:
    """What identifies the reader's weights: size, modification time and SHA-256 of the file."""
    path = model_dir / READER_WEIGHTS
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": _sha256(path)}


def reader_meta_ok(folder: Path, model_dir: Path) -> bool:
    """Whether ``folder`` holds a reader export made from the weights in ``model_dir``."""
    meta = _meta(folder, READER)
    if meta is None or not isinstance(meta.get("source"), dict):
        return False
    source = meta["source"]
    try:
        st = (model_dir / READER_WEIGHTS).stat()
    except OSError:
        return False
    if (st.st_size, st.st_mtime_ns) == (source.get("size"), source.get("mtime_ns")):
        return True
    # Copied or checked out again: the same bytes still count.
    return bool(st.st_size == source.get("size") and _sha256(model_dir / READER_WEIGHTS) == source.get("sha256"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _session(path: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    # That fusion assumes one activation scale per matrix; qa's int8 has one per token.
    return onnxruntime.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=["MatMulIntegerToFloatFusion"]
    )


def _tokenizer(path: Path) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _feeds(encodings: Sequence[Any]) -> dict[str, np.ndarray]:
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }


class OrtEncoder:
    """The question encoder from an export: an ``Embedder`` that needs no torch.

    Texts are batched as ``SentenceTransformerEmbedder.embed`` batches them (longest first, 16 at
    a time, padded to the longest), so both see the same inputs.
    """

    def __init__(self, folder: Path, batch_size: int = 16) -> None:
        meta = _meta(folder, ENCODER)
        if meta is None:
            raise FileNotFoundError(f"{folder}: no encoder export")
        self.name = str(meta["model"])
        self.precision = str(meta["precision"])
        self.dimension = int(meta["dimension"])
        self.batch_size = batch_size
        self._folder = folder
        self._max_length = int(meta["max_length"])

    @cached_property
    def _session(self) -> Any:
        # Made on first use: commands that open an index without asking anything load no model.
        return _session(self._folder / f"{ENCODER}.onnx")

    @cached_property
    def _tokenizer(self) -> Any:
        tokenizer = _tokenizer(self._folder / f"{ENCODER}.tokenizer.json")
        tokenizer.enable_truncation(self._max_length)
        pad = tokenizer.token_to_id("[PAD]")
        tokenizer.enable_padding(pad_id=0 if pad is None else pad, pad_token="[PAD]")
        return tokenizer

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``texts``."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for at in range(0, len(order), self.batch_size):
            batch = order[at : at + self.batch_size]
            feeds = _feeds(self._tokenizer.encode_batch([texts[i] for i in batch]))
            out[batch] = self._session.run(["sentence_embedding"], feeds)[0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        unit: np.ndarray = out / np.maximum(norms, 1e-12)
        return unit


class Features:
    """Tokenised (question, sentence) pairs, read the way ``qa.scorer.reader.decode_spans`` reads
    a transformers ``BatchEncoding``: ``["offset_mapping"].numpy()`` and ``sequence_ids(row)``."""

    def __init__(self, encodings: Sequence[Any]) -> None:
        self._encodings = encodings
        self._offsets = np.array([e.offsets for e in encodings], dtype=np.int64).reshape(len(encodings), -1, 2)

    def __getitem__(self, key: str) -> Any:
        if key != "offset_mapping":
            raise KeyError(key)
        return self

    def numpy(self) -> np.ndarray:
        return self._offsets

    def sequence_ids(self, row: int) -> list[int | None]:
        return list(self._encodings[row].sequence_ids)


class OrtReader:
    """The answer reader from an export: answer logits and start/end logits of (question, text) pairs."""

    def __init__(self, folder: Path) -> None:
        meta = _meta(folder, READER)
        if meta is None:
            raise FileNotFoundError(f"{folder}: no reader export")
        self._session = _session(folder / f"{READER}.onnx")
        self._tokenizer = _tokenizer(folder / f"{READER}.tokenizer.json")
        self._tokenizer.enable_truncation(int(meta["max_length"]), strategy="longest_first")  # as the torch path
        pad = self._tokenizer.token_to_id("[PAD]")
        # Padded to a multiple of 16 as the torch path pads, so both compute on the same shapes.
        self._tokenizer.enable_padding(pad_id=0 if pad is None else pad, pad_token="[PAD]", pad_to_multiple_of=16)

    def read(
        self, questions: Sequence[str], seconds: Sequence[str]
    ) -> tuple[Features, np.ndarray, np.ndarray, np.ndarray]:
        """Features, answer logits, start logits and end logits of each (question, second segment) pair."""
        encodings = self._tokenizer.encode_batch(list(zip(questions, seconds, strict=True)))
        logit, start, end = self._session.run(["logit", "start", "end"], _feeds(encodings))
        return Features(encodings), logit, start, end


def open_encoder(index_dir: Path, model: str, precision: str) -> tuple[OrtEncoder | None, str | None]:
    """The index's ONNX question encoder, or None and why there is none."""
    folder = export_folder(index_dir)
    if not encoder_meta_ok(folder, model, precision):
        return None, f"{index_dir} has no ONNX export of its question encoder ({model}, {precision})"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None, "onnxruntime is not installed"
    return OrtEncoder(folder), None


def open_reader(index_dir: Path, model_dir: Path) -> OrtReader | None:
    """The index's ONNX answer reader when it was exported from the reader in ``model_dir``, else None."""
    folder = export_folder(index_dir)
    return OrtReader(folder) if reader_meta_ok(folder, model_dir) else None


class FileTokenizer:
    """The encoder's tokenizer from its export: counts tokens and finds their spans, as ``qa.embed.HFTokenizer``."""

    def __init__(self, folder: Path, max_tokens: int) -> None:
        self._tokenizer = _tokenizer(folder / f"{ENCODER}.tokenizer.json")
        self.max_tokens = max_tokens

    def count(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def spans(self, text: str) -> list[tuple[int, int]]:
        return [tuple(span) for span in self._tokenizer.encode(text, add_special_tokens=False).offsets]
