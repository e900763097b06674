"""The answer scorer: does this sentence answer the question? A learned judge with a calibrated confidence.

Two stages, both trained by ``qa.scorer.train`` on SQuAD train data only (the model card,
``model/README.md``, has the data, seeds and figures):

- the cheap head, a logistic regression over features retrieval already has (similarities, word
  overlap, answer-type cues), ranks the candidate sentences;
- the reader, all-MiniLM-L6-v2's layers fine-tuned to read the question with one sentence, reads
  the best ``read`` of them, gives each a logit that it answers the question and finds the answer
  phrase inside it; the candidates it read are ranked by its logit plus ``cheap_weight`` times the
  cheap head's (both weights fitted with the calibration).

A calibration (logistic regression on held-out questions) turns the best candidate's scores into
one probability that the shown sentence answers the question: the confidence the CLI, JSON, batch
files and UI all show. Below the calibrated threshold the answer abstains.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .candidates import Candidate, candidates, cues, features
from .features import Cues, is_english_script, states_type

MODEL_DIR = Path(__file__).parent / "model"
SCORERS = ("reader", "cheap", "none")
PHRASE_MAX_SHARE = 0.8  # a phrase covering more of its sentence than this is the whole sentence
READ_BATCH = 16  # (question, sentence) pairs the reader reads in one pass

__all__ = [
    "MODEL_DIR",
    "SCORERS",
    "AnswerScorer",
    "Candidate",
    "Cues",
    "Judgement",
    "candidates",
    "cues",
    "features",
    "is_english_script",
    "states_type",
]


@dataclass(frozen=True)
class Judgement:
    """The scorer's verdict over one question's candidates.

    ``order`` lists candidate positions best first (only those judged); ``confidence[i]`` is the
    calibrated probability that candidate ``order[i]`` answers the question; ``phrase`` is the answer
    phrase inside the best candidate (offsets into its text), or None when the whole sentence is
    the answer.
    """

    order: tuple[int, ...]
    confidence: tuple[float, ...]
    phrase: tuple[int, int] | None
    threshold: float
    stated: bool  # whether any judged candidate states what the question asks for (a number, a date)


class AnswerScorer:
    """The shipped scorer, ``kind`` "reader" (cheap head, then the reader) or "cheap" (the head alone)."""

    def __init__(
        self, kind: str = "reader", folder: Path = MODEL_DIR, read: int | None = None, onnx: Any = None
    ) -> None:
        """``onnx``, when given, is a ``qa.ort.OrtReader`` exported from this folder's reader: it reads
        instead of torch, with the same logits within 1e-3."""
        if kind not in ("reader", "cheap"):
            raise ValueError(f"scorer {kind!r} is not one of reader, cheap")
        self.kind = kind
        self.folder = folder
        self.onnx = onnx
        self._cheap = json.loads((folder / "cheap.json").read_text())
        self._calibration = json.loads((folder / "calibration.json").read_text())[kind]
        self._meta = json.loads((folder / "reader.json").read_text())
        self.read = read or int(self._meta.get("read", 8))
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """What the manifest and answers record: the scorer kind and the model's training date tag."""
        return f"{self.kind}:{self._meta.get('version', 'v1')}"

    @property
    def reads_context(self) -> bool:
        """Whether the reader reads each sentence with its neighbours (``reader.json``'s ``context``)."""
        from .reader import context_of

        return self.kind == "reader" and any(context_of(self._meta))

    @property
    def cheap_weight(self) -> float:
        return float(self._calibration.get("cheap_weight", 0.0))

    @property
    def threshold(self) -> float:
        return float(self._calibration["threshold"])

    @cached_property
    def _reader(self) -> Any:
        from .reader import load

        return load(self.folder)

    @cached_property
    def _tokenizer(self) -> Any:
        from .train import _tokenizer

        return _tokenizer()

    def cheap_logits(self, rows: np.ndarray) -> np.ndarray:
        c = self._cheap
        z = (rows - np.asarray(c["mean"], dtype=np.float32)) / np.asarray(c["scale"], dtype=np.float32)
        return z @ np.asarray(c["coef"], dtype=np.float32) + float(c["intercept"])

    def judge_many(self, items: list[tuple[str, Cues, list[Candidate], np.ndarray]]) -> list[Judgement]:
        """Judge several questions' candidates; the reader reads all of their pairs in one pass."""
        tops: list[list[int]] = []
        cheap: list[np.ndarray] = []
        for _, _, cands, rows in items:
            logits = self.cheap_logits(rows) if len(cands) else np.zeros(0, dtype=np.float32)
            cheap.append(logits)
            tops.append([int(i) for i in np.argsort(-logits, kind="stable")[: self.read]])
        if self.kind == "reader":
            pairs = [(q, c[i]) for (q, _, c, _), top in zip(items, tops, strict=True) for i in top]
            readings = self._read(pairs)
        out, at = [], 0
        for (_, question_cues, cands, _), top, logits in zip(items, tops, cheap, strict=True):
            if not top:
                out.append(Judgement((), (), None, self.threshold, False))
                continue
            if self.kind == "reader":
                part = readings[at : at + len(top)]
                at += len(top)
                # The reader's logit, plus the cheap head's (what retrieval saw) at the weight fitted
                # with the calibration: together they rank the right sentence first more often.
                scores = np.array([r[0] for r in part], dtype=np.float32) + self.cheap_weight * logits[top]
            else:
                part = []
                scores = logits[top]
            order = np.argsort(-scores, kind="stable")
            stated = [states_type(question_cues.kind, cands[i].text) for i in top]
            probabilities = self._calibrated(scores, logits[top], bool(question_cues.missing), stated)
            phrase = None
            if part:
                span = part[int(order[0])][1]
                text = cands[top[int(order[0])]].text
                span = _trimmed(text, span) if span is not None else None
                if span is not None and (span[1] - span[0]) <= PHRASE_MAX_SHARE * len(text):
                    phrase = span
            out.append(
                Judgement(
                    tuple(top[int(i)] for i in order),
                    tuple(float(probabilities[int(i)]) for i in order),
                    phrase,
                    self.threshold,
                    any(stated),
                )
            )
        return out

    def _calibrated(self, scores: np.ndarray, cheap: np.ndarray, missing: bool, stated: list[bool]) -> np.ndarray:
        """P(right) of every judged candidate, from its own score and its lead over the best other."""
        c = self._calibration
        coef, intercept = np.asarray(c["coef"], dtype=np.float64), float(c["intercept"])
        out = np.zeros(len(scores))
        for i, s in enumerate(scores):
            others = np.delete(scores, i)
            second = float(others.max()) if len(others) else float(s) - 5.0
            x = np.array([s, s - second, cheap[i], float(missing), float(not stated[i])], dtype=np.float64)
            out[i] = 1.0 / (1.0 + np.exp(-(x @ coef + intercept)))
        return out

    def _read(self, pairs: list[tuple[str, Candidate]]) -> list[tuple[float, tuple[int, int] | None]]:
        """Reader logit and answer phrase (offsets into the sentence) of each (question, candidate)."""
        if not pairs:
            return []
        from .reader import context_of, decode_spans, second_segment

        context = context_of(self._meta)
        seconds = [second_segment(c.title, c.text, c.before, c.after, context) for _, c in pairs]
        questions, texts = [q for q, _ in pairs], [s for s, _ in seconds]
        # Pairs of about one length read together: a batch pads to its longest pair, and the
        # reader's cost grows with the padded length (one long sentence among 128 short ones made
        # the whole batch read at its length).
        order = sorted(range(len(pairs)), key=lambda i: (len(questions[i]) + len(texts[i]), i))
        out: list[tuple[float, tuple[int, int] | None]] = [(0.0, None)] * len(pairs)
        for at in range(0, len(order), READ_BATCH):
            rows = order[at : at + READ_BATCH]
            qs, ts = [questions[i] for i in rows], [texts[i] for i in rows]
            with self._lock:
                if self.onnx is not None:
                    feats, logit, start, end = self.onnx.read(qs, ts)
                else:
                    feats, logit, start, end = self._read_torch(qs, ts)
            spans = decode_spans(
                feats, start, end, [seconds[i][1] for i in rows], [len(pairs[i][1].text) for i in rows]
            )
            for i, v, (span, _) in zip(rows, logit, spans, strict=True):
                out[i] = (float(v), span)
        return out

    def _read_torch(self, questions: list[str], texts: list[str]) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
        import torch

        from .reader import encode

        with torch.inference_mode():
            feats = encode(self._tokenizer, questions, texts)
            logit, start, end = self._reader(feats["input_ids"], feats["attention_mask"], feats["token_type_ids"])
        return feats, logit.float().numpy(), start.float().numpy(), end.float().numpy()


_MARKUP = "*_`~"  # Markdown's emphasis and code marks: around a phrase, not part of it


def _trimmed(text: str, span: tuple[int, int]) -> tuple[int, int] | None:
    """``span`` without the white space and Markdown marks at its edges ("**night shift" reads
    "night shift"), nor the punctuation that ends its clause or sentence ("Thomas Hale." reads
    "Thomas Hale"; the dot of "U.S." or "Inc." stays); None when nothing is left."""
    a, b = span
    while True:
        while a < b and (text[a].isspace() or text[a] in _MARKUP):
            a += 1
        while b > a and (text[b - 1].isspace() or text[b - 1] in _MARKUP):
            b -= 1
        if b > a and text[b - 1] in ",;:":
            b -= 1
            continue
        word = text[a : b - 1].split()[-1] if b - 1 > a and text[a : b - 1].split() else ""
        if b > a and text[b - 1] == "." and len(word) > 3 and "." not in word:
            b -= 1
            continue
        return (a, b) if b > a else None
