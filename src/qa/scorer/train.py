"""Train the answer scorer: the cheap head, the reader and the calibration, from SQuAD train data only.

    python -m qa.scorer.collect --data ../shared/datasets/squad/train-du2017.json --out work/scorer/du2017.pkl
    python -m qa.scorer.collect --data ../shared/datasets/squad/dev-v2.0.cs224n-half.json --articles 0-7 \
        --out work/scorer/v2-0-7.pkl
    python -m qa.scorer.train --du2017 work/scorer/du2017.pkl --v2 work/scorer/v2-0-7.pkl \
        --data-files ../shared/datasets/squad/train-du2017.json ../shared/datasets/squad/dev-v2.0.cs224n-half.json

Training data: SQuAD train articles (train-du2017.json) 0-39 and SQuAD v2 half articles 0-5;
calibration on train-du2017 articles 40-43 and v2 articles 6-7. SQuAD v1.1 dev and v2 articles
8-15, where the figures are reported, are never read here.
"""

from __future__ import annotations

import argparse
import json
import lzma
import math
import pickle
import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import data
from .features import FEATURE_NAMES, key_terms, states_type
from .reader import MAX_TOKENS, build_model, encode, second_segment

SEED = 20261125
DU_CALIBRATION = range(40, 44)
V2_CALIBRATION = range(6, 8)
NEGATIVES = 3
NEGATIVES_BY = "retrieval"  # which wrong sentences are "best-ranked": retrieval's order, or the cheap head's
UNANSWERABLE_REPEATS = 3
SWAP_SHARE = 0.6
DELETE_SHARE = 0.0  # answer sentences read with their answer phrase cut out (tried: no better, see the README)
NEGATE_SHARE = 0.5  # questions negated ("was" -> "wasn't") and read with their answer sentence
ANTONYM_SHARE = 0.0  # questions with a word turned to its opposite ("first" -> "last"), read with their answer sentence
LISTWISE = 1.0  # weight of the loss over each question's candidates and "no answer" (see _listwise_loss)
Row = tuple[str, str, int, int, int, int, int]
CONTEXT = (0, 0)  # characters of the sentences before and after read with each (none: measured no better)


def split(du: list[dict], v2: list[dict]) -> tuple[list[dict], list[dict]]:
    train = [r for r in du if r["article"] not in DU_CALIBRATION] + [
        r for r in v2 if r["article"] not in V2_CALIBRATION
    ]
    calibration = [r for r in du if r["article"] in DU_CALIBRATION] + [r for r in v2 if r["article"] in V2_CALIBRATION]
    return train, calibration


def fit_cheap(train: list[dict]) -> dict[str, Any]:
    """Logistic regression over the candidate features: does this sentence hold the answer?"""
    from sklearn.linear_model import LogisticRegression

    x, y, _ = data.stack(train)
    keep = y >= 0
    x, y = x[keep], y[keep]
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    model = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced", random_state=SEED)
    model.fit((x - mean) / scale, y)
    return {
        "features": list(FEATURE_NAMES),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": model.coef_[0].tolist(),
        "intercept": float(model.intercept_[0]),
    }


def cheap_logits(cheap: dict[str, Any], x: np.ndarray) -> np.ndarray:
    z = (x - np.asarray(cheap["mean"], dtype=np.float32)) / np.asarray(cheap["scale"], dtype=np.float32)
    return z @ np.asarray(cheap["coef"], dtype=np.float32) + cheap["intercept"]


def segment(c: dict, context: tuple[int, int]) -> tuple[str, int]:
    """A candidate's second segment as the reader reads it (see ``reader.second_segment``)."""
    return second_segment(c["title"], c["text"], c.get("before", ""), c.get("after", ""), context)


def attach_cheap(records: list[dict], cheap: dict[str, Any]) -> None:
    """Give every candidate its cheap logit (``cheap``) in place of its feature row (``features``)."""
    for r in records:
        cands = r["candidates"]
        if cands and "features" in cands[0]:
            logits = cheap_logits(cheap, np.asarray([c["features"] for c in cands], dtype=np.float32))
            for c, v in zip(cands, logits, strict=True):
                c["cheap"] = float(v)
                del c["features"]


def examples(
    train: list[dict],
    rng: random.Random,
    context: tuple[int, int] = (0, 0),
    swap_share: float = SWAP_SHARE,
    delete_share: float = DELETE_SHARE,
    negate_share: float = NEGATE_SHARE,
    unanswerable_repeats: int = UNANSWERABLE_REPEATS,
    antonym_share: float = ANTONYM_SHARE,
    negatives: int = NEGATIVES,
    negatives_by: str = NEGATIVES_BY,
) -> list[Row]:
    """(question, second segment, label, span start, span end, offset, group) rows for the reader;
    a group is one question read with its candidates (a made-up question is a group of one).

    Per answerable question: the answer sentence, the best-ranked wrong sentences and one drawn at
    random (``negatives`` of them, ranked by retrieval or, with ``negatives_by="cheap"``, by the cheap
    head, which picks what the reader reads). Per unanswerable question (SQuAD v2), its best-ranked sentences, repeated
    ``UNANSWERABLE_REPEATS`` times, as they are few. And questions made unanswerable: the answer
    sentence read with a question whose name or number was swapped for another of the same
    article (``swapped``), the near miss a user's question about another year or person is; the
    answer sentence with its answer phrase cut out (``deleted``), a sentence about everything asked
    but what is asked; the question negated (``negated``). The last two draw from their own seeded
    generators, so that the others' examples do not change with their shares.
    """
    out: list[Row] = []
    groups: list[int] = []  # one per question read with its candidates: the listwise loss's unit
    for r in train:
        cands = r["candidates"]
        pos = [c for c in cands if c["label"] == 1]
        neg = [c for c in cands if c["label"] == 0]
        if negatives_by == "cheap":
            neg = sorted(neg, key=lambda c: -c["cheap"])
        picked = neg[:negatives] + (rng.sample(neg[negatives:], 1) if len(neg) > negatives else [])
        repeats = 1
        if not r["answerable"]:
            picked, repeats = neg[: negatives + 1], unanswerable_repeats
        for _ in range(repeats):
            group = len(groups)
            groups.append(group)
            for c in pos[:1] + picked:
                second, at = segment(c, context)
                span = c["span"] if c["label"] == 1 and c["span"] else (-1, -1)
                out.append((r["question"], second, int(c["label"] == 1), span[0], span[1], at, group))
    made = swapped(train, rng, swap_share)
    if delete_share:
        made += deleted(train, random.Random(SEED + 1), delete_share)
    if negate_share:
        made += negated(train, random.Random(SEED + 2), negate_share)
    if antonym_share:
        made += opposed(train, random.Random(SEED + 3), antonym_share)
    for question, c in made:
        second, at = segment(c, context)
        out.append((question, second, 0, -1, -1, at, len(groups)))
        groups.append(len(groups))
    return out


_LEAD_IN = re.compile(
    r"(?:\b(?:in|on|at|by|of|from|to|for|with|during|about|than|as|the|a|an|some|its|their|his|her)\s+)+$", re.I
)


def deleted(train: list[dict], rng: random.Random, share: float) -> list[tuple[str, dict]]:
    """Answerable questions read with their answer sentence once its answer phrase (and the words
    that lead into it: "in", "the") is cut out: the sentence still holds every other word of the
    question, but no longer what is asked."""
    out = []
    for r in train:
        pos = [c for c in r["candidates"] if c["label"] == 1 and c["span"]]
        if not r["answerable"] or not pos or rng.random() > share:
            continue
        c = pos[0]
        text, (a, b) = c["text"], c["span"]
        if b - a > 0.5 * len(text):
            continue
        head = _LEAD_IN.sub("", text[:a]).rstrip()
        rest = re.sub(r"\s+", " ", f"{head} {text[b:].lstrip()}").strip()
        rest = re.sub(r"\s+([,.;:)])", r"\1", rest).replace("( ", "(").replace(",,", ",")
        if len(rest) < 20 or any(x.lower() in rest.lower() for x in r["answers"]):
            continue
        out.append((r["question"], {**c, "text": rest, "span": None, "label": 0}))
    return out


_AUXILIARY = re.compile(
    r"\b(is|was|are|were|does|did|do|can|could|has|had|have|will|would|should)\b(?!\s+(?:not|n't)\b)", re.I
)
_NEGATIVE = {"can": "can't", "will": "won't"}


def negated(train: list[dict], rng: random.Random, share: float) -> list[tuple[str, dict]]:
    """Answerable questions with their first auxiliary negated ("What was built" -> "What wasn't
    built"), read with their answer sentence: it states what was, not what was not."""
    out = []
    for r in train:
        pos = [c for c in r["candidates"] if c["label"] == 1]
        if not r["answerable"] or not pos or rng.random() > share:
            continue
        m = _AUXILIARY.search(r["question"])
        if m is None or "not" in r["question"].lower().split() or "n't" in r["question"]:
            continue
        word = m.group(1)
        neg = _NEGATIVE.get(word.lower(), f"{word.lower()}n't")
        neg = neg[0].upper() + neg[1:] if word[0].isupper() else neg
        out.append((r["question"][: m.start()] + neg + r["question"][m.end() :], pos[0]))
    return out


_PAIRS = (
    "first last, largest smallest, biggest smallest, greatest smallest, most least, highest lowest, "
    "earliest latest, before after, increase decrease, increased decreased, increases decreases, "
    "rise fall, rose fell, north south, east west, northern southern, eastern western, older younger, "
    "oldest youngest, longest shortest, major minor, maximum minimum, above below, win lose, won lost, "
    "wins loses, more less, larger smaller, bigger smaller, higher lower, best worst, better worse, "
    "early late, positive negative, public private, male female, ancient modern, strong weak, "
    "strongest weakest, successful unsuccessful, legal illegal, import export, imported exported, "
    "buy sell, bought sold, upper lower, internal external, common rare, popular unpopular, rich poor, "
    "same different, possible impossible, support oppose, supported opposed, include exclude, "
    "success failure, victory defeat, domestic foreign, urban rural, primary secondary, majority minority, "
    "inner outer, beginning end, start end, started ended, top bottom, cheap expensive, large small, "
    "big small, high low, young old, allowed forbidden, accepted rejected, wealthy poor, heaviest lightest"
)
_OPPOSITE: dict[str, str] = {}
for _pair in _PAIRS.split(", "):
    _a, _b = _pair.split()
    _OPPOSITE.setdefault(_a, _b)
    _OPPOSITE.setdefault(_b, _a)
_OPPOSABLE = re.compile(r"(?<!\b[Hh]ow )\b(" + "|".join(sorted(_OPPOSITE, key=len, reverse=True)) + r")\b")


def opposed(train: list[dict], rng: random.Random, share: float) -> list[tuple[str, dict]]:
    """Answerable questions with a word turned to its opposite ("the first" -> "the last", "after"
    -> "before"), read with their answer sentence, which does not hold the opposite: the sentence
    answers the question asked, not this one. Only lower-case words, so names ("New York", "West
    Germany") stay, and not after "how" ("how long", "how old" ask for a length, not a side)."""
    out = []
    for r in train:
        pos = [c for c in r["candidates"] if c["label"] == 1]
        if not r["answerable"] or not pos or rng.random() > share:
            continue
        sentence = pos[0]["text"].lower()
        found = [
            m for m in _OPPOSABLE.finditer(r["question"]) if not re.search(rf"\b{_OPPOSITE[m.group(1)]}\b", sentence)
        ]
        if found:
            m = rng.choice(found)
            out.append((r["question"][: m.start()] + _OPPOSITE[m.group(1)] + r["question"][m.end() :], pos[0]))
    return out


def swapped(train: list[dict], rng: random.Random, share: float = SWAP_SHARE) -> list[tuple[str, dict]]:
    """Answerable questions with one name or number that their answer sentence holds replaced by
    another of the same kind from the same article's questions, paired with that sentence."""
    pools: dict[tuple[int, bool], set[str]] = {}
    for r in train:
        for t in key_terms(r["question"]):
            pools.setdefault((r["article"], any(ch.isdigit() for ch in t)), set()).add(t)
    out = []
    for r in train:
        pos = [c for c in r["candidates"] if c["label"] == 1]
        if not r["answerable"] or not pos or rng.random() > share:
            continue
        sentence = pos[0]["text"]
        terms_here = [t for t in key_terms(r["question"]) if t in sentence]
        if not terms_here:
            continue
        term = rng.choice(terms_here)
        pool = sorted(
            x
            for x in pools.get((r["article"], any(ch.isdigit() for ch in term)), ())
            if x not in sentence and x.lower() not in sentence.lower() and term not in x and x not in term
        )
        if pool:
            out.append((r["question"].replace(term, rng.choice(pool)), pos[0]))
    return out


def token_targets(features: Any, spans: list[tuple[int, int, int]]) -> tuple[list[int], list[int]]:
    """Token positions of each answer span (0, the [CLS] token, where there is none or it was cut)."""
    offsets = features["offset_mapping"].tolist()
    starts, ends = [], []
    for row, (a, b, at) in enumerate(spans):
        s = e = 0
        if a >= 0:
            a, b = a + at, b + at
            seq = features.sequence_ids(row)
            for i, sid in enumerate(seq):
                if sid != 1:
                    continue
                lo, hi = offsets[row][i]
                if s == 0 and lo <= a < max(hi, lo + 1):
                    s = i
                if lo < b <= hi:
                    e = i
            if s == 0 or e < s:
                s = e = 0
        starts.append(s)
        ends.append(e)
    return starts, ends


def train_reader(
    rows: list[Row],
    layers: int,
    epochs: float,
    batch: int,
    log: Any,
    base: Path | None = None,
    null_span: bool = True,
    listwise: float = LISTWISE,
) -> Any:
    """Fine-tune MiniLM on ``rows``: on the GPU where there is one (bf16), else on the CPU (bf16 where
    it is native). The same examples, order and steps either way.

    With ``null_span`` a training-only head learns SQuAD 2.0's no-answer target beside the phrase
    heads (``reader.build_model``): on the calibration questions it put the right sentence first
    more often (0.818 against 0.809, same examples and steps) and kept the phrase F1.

    With ``listwise`` (its weight) batches hold whole questions, each with its candidates, and a
    second loss asks that the answer sentence beat the others of its question and a learned "no
    answer" score, which in turn beats every sentence of an unanswerable question: the decision a
    user meets (which sentence, or none), not one pair at a time.
    """
    import torch

    from ..settings import native_bf16

    init_seed = SEED if INIT_SEED is None else INIT_SEED
    torch.manual_seed(init_seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model(layers, base, null_head=null_span).to(device)
    if init_seed != SEED:
        torch.manual_seed(SEED)  # the heads start as init_seed made them; dropout follows the run's seed
    model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    tokenizer = _tokenizer()
    heads = [p for n, p in model.named_parameters() if not n.startswith("encoder.") and p.requires_grad]
    body = [p for n, p in model.named_parameters() if n.startswith("encoder.") and p.requires_grad]
    optimiser = torch.optim.AdamW([{"params": body, "lr": 6e-5}, {"params": heads, "lr": 5e-4}], weight_decay=0.01)
    rng = random.Random(SEED)
    null_bias = torch.nn.Parameter(torch.zeros(1, device=device))
    if listwise:
        optimiser.add_param_group({"params": [null_bias], "lr": 5e-4, "weight_decay": 0.0})
        batches = _group_batches(rows, batch)
    else:
        # batches of similar length: less padding, same examples
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))
        batches = [order[i : i + batch] for i in range(0, len(order), batch)]
    steps = int(math.ceil(len(batches) * epochs))
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    bce = torch.nn.BCEWithLogitsLoss()
    ce = torch.nn.CrossEntropyLoss(ignore_index=-100)
    bf16 = device == "cuda" or native_bf16()
    model.train()
    started = time.perf_counter()
    step = 0
    while step < steps:
        rng.shuffle(batches)
        for b in batches:
            if step >= steps:
                break
            chunk = [rows[i] for i in b]
            feats = encode(tokenizer, [r[0] for r in chunk], [r[1] for r in chunk])
            starts, ends = token_targets(feats, [(r[3], r[4], r[5]) for r in chunk])
            labels = torch.tensor([float(r[2]) for r in chunk], device=device)
            has_span = torch.tensor([r[2] == 1 and r[3] >= 0 for r in chunk], device=device)
            t_start = torch.where(has_span, torch.tensor(starts, device=device), -100)
            t_end = torch.where(has_span, torch.tensor(ends, device=device), -100)
            targeted = has_span | (labels == 0)  # the null head's targets: 0 is [CLS], no answer here
            n_start = torch.where(targeted, torch.tensor(starts, device=device), -100)
            n_end = torch.where(targeted, torch.tensor(ends, device=device), -100)
            inputs = [feats[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids")]
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                outputs = [x.float() for x in model(*inputs)]
            mask = inputs[1] == 0
            logit, s_log, e_log, *null = [outputs[0]] + [x.masked_fill(mask, -1e4) for x in outputs[1:]]
            loss = bce(logit, labels)
            if listwise:
                loss = loss + listwise * _listwise_loss(logit, labels, [r[6] for r in chunk], null_bias)
            if bool(has_span.any()):
                loss = loss + 0.5 * (ce(s_log, t_start) + ce(e_log, t_end))
            if null and bool(targeted.any()):
                loss = loss + 0.5 * (ce(null[0], n_start) + ce(null[1], n_end))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
            step += 1
            if step % 25 == 0:
                log(f"step {step}/{steps} loss {loss.item():.3f} {time.perf_counter() - started:.0f}s")
    model.eval()
    return model


def _group_batches(rows: list[Row], batch: int) -> list[list[int]]:
    """Batches of whole groups (a question with its candidates), of about ``batch`` rows, groups of
    similar length together."""
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(r[6], []).append(i)
    ordered = sorted(groups.values(), key=lambda g: (max(len(rows[i][0]) + len(rows[i][1]) for i in g), g[0]))
    batches: list[list[int]] = [[]]
    for g in ordered:
        if batches[-1] and len(batches[-1]) + len(g) > batch:
            batches.append([])
        batches[-1].extend(g)
    return batches


def _listwise_loss(logit: Any, labels: Any, groups: list[int], null_bias: Any) -> Any:
    """Per group, cross-entropy over [no answer, each candidate]: the answer sentence should beat its
    group's others and a learned no-answer score; in a group with none, that score should win."""
    import torch

    losses = []
    for g in dict.fromkeys(groups):
        idx = [i for i, x in enumerate(groups) if x == g]
        scores = torch.cat([null_bias, logit[idx]])
        hits = [k + 1 for k, i in enumerate(idx) if labels[i] > 0.5]
        target = torch.tensor(hits[0] if hits else 0, device=logit.device)
        losses.append(torch.nn.functional.cross_entropy(scores[None], target[None]))
    return torch.stack(losses).mean()


_BASE: Path | None = None  # the MiniLM folder training reads (None: the installed package's)
INIT_SEED: int | None = None  # the seed of the heads' first weights (None: the run's seed)


def average(members: list[Path], out: Path) -> dict[str, Any]:
    """Write the mean of several readers' weights to ``out`` (a uniform "model soup"), and return
    its ``reader.json``. Only readers fine-tuned from the same start (MiniLM and the same
    ``--init-seed``) can be averaged: their weights stay close enough for the mean to be a reader
    too, where heads started from different random weights would not line up."""
    from safetensors.torch import load_file, save_file

    metas = [json.loads((m / "reader.json").read_text()) for m in members]
    starts = {m.get("init_seed", m.get("seed")) for m in metas}
    if len(members) < 2 or len(starts) != 1 or len({m["layers"] for m in metas}) != 1:
        raise SystemExit(f"--average needs two or more readers of one --init-seed and depth, got {sorted(starts)}")
    total: dict[str, Any] = {}
    for m in members:
        for k, v in load_file(str(m / "reader.safetensors")).items():
            total[k] = total[k] + v.float() if k in total else v.float()
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: (v / len(members)).half().contiguous() for k, v in total.items()}, str(out / "reader.safetensors"))
    meta = {
        **metas[0],
        "seed": [m["seed"] for m in metas],
        "averaged": len(members),
        "train_seconds": round(sum(m.get("train_seconds", 0.0) for m in metas), 1),
    }
    (out / "reader.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _tokenizer() -> Any:
    from transformers import AutoTokenizer

    base = _BASE
    if base is None:
        from ..embed import resolve_model
        from ..settings import DEFAULT_MODEL

        base = Path(resolve_model(DEFAULT_MODEL))
    return AutoTokenizer.from_pretrained(base, local_files_only=True)


def read_logits(model: Any, pairs: list[tuple[str, str]], batch: int = 64) -> np.ndarray:
    import torch

    tokenizer = _tokenizer()
    device = next(model.parameters()).device
    out = np.zeros(len(pairs), dtype=np.float32)
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    with torch.inference_mode():
        for at in range(0, len(order), batch):
            idx = order[at : at + batch]
            feats = encode(tokenizer, [pairs[i][0] for i in idx], [pairs[i][1] for i in idx])
            inputs = [feats[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids")]
            out[idx] = model(*inputs)[0].float().cpu().numpy()
    return out


def judge_features(best: float, second: float, cheap: float, missing: bool, stated: bool) -> list[float]:
    """The calibration's inputs for a question's best candidate (see ``calibrate``)."""
    return [best, best - second, cheap, float(missing), float(not stated)]


def read_candidates(
    records: list[dict], model: Any | None, read: int, context: tuple[int, int] = (0, 0)
) -> tuple[list[list[int]], list[np.ndarray], np.ndarray | None]:
    """Per question: the ``read`` candidates the cheap head ranks first and every candidate's cheap
    logit (``attach_cheap`` first); and the reader's logit of each chosen candidate, all questions'
    in one array (None without a model)."""
    pairs = []
    chosen: list[list[int]] = []
    cheap_all: list[np.ndarray] = []
    for r in records:
        cands = r["candidates"]
        if not cands:
            chosen.append([])
            cheap_all.append(np.zeros(0))
            continue
        logits = np.asarray([c["cheap"] for c in cands], dtype=np.float32)
        top = [int(i) for i in np.argsort(-logits, kind="stable")[:read]]
        chosen.append(top)
        cheap_all.append(logits)
        pairs += [(r["question"], segment(cands[i], context)[0]) for i in top]
    reader = read_logits(model, pairs) if model is not None and pairs else None
    return chosen, cheap_all, reader


def _scores(
    chosen: list[list[int]], cheap_all: list[np.ndarray], reader: np.ndarray | None, weight: float
) -> list[np.ndarray]:
    """Each question's ranking scores of its chosen candidates: reader logit + ``weight`` x cheap logit
    (the cheap logit alone without a reader)."""
    out, at = [], 0
    for top, logits in zip(chosen, cheap_all, strict=True):
        if reader is None:
            out.append(logits[top])
            continue
        out.append(reader[at : at + len(top)] + weight * logits[top])
        at += len(top)
    return out


def _right(record: dict, text: str) -> bool:
    return bool(record["answerable"]) and any(a.lower() in text.lower() for a in record["answers"])


def fusion_weight(
    records: list[dict], chosen: list[list[int]], cheap_all: list[np.ndarray], reader: np.ndarray
) -> float:
    """The weight of the cheap logit beside the reader's that ranks the right sentence first most often.

    The two disagree usefully: the reader reads the sentence, the cheap head knows how retrieval
    scored it and its neighbours. Fitted on the calibration questions (held-out train articles).
    """
    best, best_right = 0.0, -1
    for weight in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 1.5):
        right = 0
        for r, top, scores in zip(records, chosen, _scores(chosen, cheap_all, reader, weight), strict=True):
            if top and r["answerable"]:
                right += _right(r, r["candidates"][top[int(np.argmax(scores))]]["text"])
        if right > best_right:
            best, best_right = weight, right
    return best


def calibration_rows(
    records: list[dict],
    chosen: list[list[int]],
    cheap_all: list[np.ndarray],
    reader: np.ndarray | None,
    weight: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per question: the judge features of the chosen candidate, whether it is right, whether answerable."""
    x, right, answerable = [], [], []
    for r, top, logits, scores in zip(
        records, chosen, cheap_all, _scores(chosen, cheap_all, reader, weight), strict=True
    ):
        if not top:
            x.append(judge_features(-10.0, 0.0, -10.0, bool(r["missing"]), False))
            right.append(0)
            answerable.append(r["answerable"])
            continue
        order = np.argsort(-scores, kind="stable")
        best_i = top[order[0]]
        second = float(scores[order[1]]) if len(order) > 1 else float(scores[order[0]]) - 5.0
        c = r["candidates"][best_i]
        stated = states_type(r["kind"], c["text"])
        x.append(judge_features(float(scores[order[0]]), second, float(logits[best_i]), bool(r["missing"]), stated))
        right.append(int(_right(r, c["text"])))
        answerable.append(r["answerable"])
    return np.asarray(x, dtype=np.float32), np.asarray(right), np.asarray(answerable)


def calibrate(x: np.ndarray, right: np.ndarray, answerable: np.ndarray) -> dict[str, Any]:
    """Logistic regression from the judge features to P(the shown sentence is right), and the threshold.

    The threshold maximises the mean of answerable-answered and unanswerable-declined, keeping
    answerable-answered at 0.92 or more where it can.
    """
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=2000, random_state=SEED)
    model.fit(x, right)
    p = model.predict_proba(x)[:, 1]
    grid = np.round(np.arange(0.02, 0.98, 0.01), 2)
    best, best_value = 0.5, -1.0
    table = []
    for t in grid:
        ans = float((p[answerable] >= t).mean()) if answerable.any() else 1.0
        dec = float((p[~answerable] < t).mean()) if (~answerable).any() else 0.0
        value = (ans + dec) / 2 - (0.0 if ans >= 0.92 else 1.0)
        table.append((float(t), round(ans, 4), round(dec, 4)))
        if value > best_value:
            best, best_value = float(t), value
    return {
        "coef": model.coef_[0].tolist(),
        "intercept": float(model.intercept_[0]),
        "threshold": best,
        "table": table,
    }


def _calibrations(
    calibration: list[dict], model: Any, read: int, context: tuple[int, int], log: Any = print
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cheap scorer's calibration, and the reader's with the fusion weight it was fitted at."""
    chosen, cheap_all, reader = read_candidates(calibration, model, read, context)
    assert reader is not None
    weight = fusion_weight(calibration, chosen, cheap_all, reader)
    cal_cheap = calibrate(*calibration_rows(calibration, chosen, cheap_all, None))
    x, right, answerable = calibration_rows(calibration, chosen, cheap_all, reader, weight)
    cal_reader = calibrate(x, right, answerable)
    first = float(right[answerable].mean())
    at90 = max((dec for _, ans, dec in cal_reader["table"] if ans >= 0.9), default=0.0)
    at80 = max((dec for _, ans, dec in cal_reader["table"] if ans >= 0.8), default=0.0)
    log(
        f"calibration questions: right sentence first {first:.3f} (fusion weight {weight}); "
        f"unanswerable declined {at90:.3f} at 0.90 answered, {at80:.3f} at 0.80"
    )
    return cal_cheap, {**cal_reader, "cheap_weight": weight}


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """The split records with their cheap logits, the cheap head and the data hashes: everything
    training reads after collection (``--prepare`` writes it, ``--prepared`` reads it back)."""
    if args.prepared:
        with lzma.open(args.prepared, "rb") as f:
            return pickle.load(f)  # noqa: S301 - a file this module wrote
    du, v2 = data.load_records(args.du2017), data.load_records(args.v2)
    train, calibration = split(du, v2)
    cheap = json.loads((args.out / "cheap.json").read_text()) if args.recalibrate else fit_cheap(train)
    attach_cheap(train + calibration, cheap)
    hashes = {p.name: data.file_sha256(p) for p in args.data_files}
    return {"train": train, "calibration": calibration, "cheap": cheap, "data_sha256": hashes}


def main() -> None:
    global _BASE, SEED, INIT_SEED
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--du2017", type=Path, help="candidates collected from train-du2017.json")
    ap.add_argument("--v2", type=Path, help="candidates collected from the v2 half's articles 0-7")
    ap.add_argument("--data-files", type=Path, nargs="*", default=[], help="the SQuAD files, for their hashes")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "model")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--epochs", type=float, default=1.25)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--swap-share", type=float, default=SWAP_SHARE, help="share of questions swapped (see examples)")
    ap.add_argument("--delete-share", type=float, default=DELETE_SHARE, help="share read with the answer cut out")
    ap.add_argument("--negate-share", type=float, default=NEGATE_SHARE, help="share of questions negated")
    ap.add_argument(
        "--listwise", type=float, default=LISTWISE, help="weight of the listwise loss over each question's candidates"
    )
    ap.add_argument(
        "--antonym-share",
        type=float,
        default=ANTONYM_SHARE,
        help="share of questions with a word turned to its opposite",
    )
    ap.add_argument("--unanswerable-repeats", type=int, default=UNANSWERABLE_REPEATS)
    ap.add_argument("--negatives", type=int, default=NEGATIVES, help="best-ranked wrong sentences read per question")
    ap.add_argument(
        "--negatives-by",
        choices=("retrieval", "cheap"),
        default=NEGATIVES_BY,
        help="rank the wrong sentences by retrieval's order or by the cheap head's logit",
    )
    ap.add_argument("--read", type=int, default=6, help="candidates the reader reads per question")
    ap.add_argument(
        "--context",
        type=int,
        nargs=2,
        default=list(CONTEXT),
        metavar=("BEFORE", "AFTER"),
        help="characters of the neighbouring sentences read around each sentence (0 0: none)",
    )
    ap.add_argument(
        "--no-null-span", action="store_true", help="train without the no-answer head (as the first readers were)"
    )
    ap.add_argument(
        "--seed", type=int, default=SEED, help="seed of every random choice (another one: a rerun's spread)"
    )
    ap.add_argument(
        "--init-seed",
        type=int,
        help="seed of the heads' first weights (default: --seed); runs that share it can be --average'd",
    )
    ap.add_argument(
        "--average",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="average these readers' weights (runs of one --init-seed) into --out, then calibrate",
    )
    ap.add_argument("--base", type=Path, help="a copy of all-MiniLM-L6-v2's folder (default: the installed one)")
    ap.add_argument("--prepare", type=Path, help="write the prepared training data (.xz) here and stop")
    ap.add_argument("--prepared", type=Path, help="train from prepared data instead of --du2017/--v2")
    ap.add_argument("--limit", type=int, default=0, help="train on this many examples only (a smoke run)")
    ap.add_argument("--calibration-limit", type=int, default=0, help="calibrate on this many questions (a smoke run)")
    ap.add_argument(
        "--recalibrate",
        action="store_true",
        help="keep the reader and cheap head in --out; fit the fusion weight and calibration again",
    )
    args = ap.parse_args()
    if not args.prepared and not (args.du2017 and args.v2):
        ap.error("give --du2017 and --v2 (from qa.scorer.collect), or --prepared")
    _BASE, SEED, INIT_SEED = args.base, args.seed, args.init_seed
    context = (args.context[0], args.context[1])
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {msg}", flush=True)

    rng = random.Random(SEED)
    prepared = prepare(args)
    train, calibration, cheap = prepared["train"], prepared["calibration"], prepared["cheap"]
    if args.calibration_limit:
        calibration = rng.sample(calibration, args.calibration_limit)
    if args.prepare:
        args.prepare.parent.mkdir(parents=True, exist_ok=True)
        with lzma.open(args.prepare, "wb", preset=6) as f:
            pickle.dump(prepared, f, protocol=5)
        log(f"prepared data written to {args.prepare}")
        return
    log(f"{len(train)} training questions, {len(calibration)} calibration questions")
    if args.average:
        average(args.average, args.out)
        (args.out / "cheap.json").write_text(json.dumps(cheap, indent=1) + "\n")
    if args.recalibrate or args.average:
        from .reader import context_of, load

        meta = json.loads((args.out / "reader.json").read_text())
        model = load(args.out, args.base)
        cal_cheap, cal_reader = _calibrations(calibration, model, args.read, context_of(meta), log)
        (args.out / "calibration.json").write_text(
            json.dumps({"cheap": cal_cheap, "reader": cal_reader}, indent=1) + "\n"
        )
        meta["read"] = args.read  # what the calibration was fitted with is what the scorer reads
        (args.out / "reader.json").write_text(json.dumps(meta, indent=2) + "\n")
        log(f"recalibrated; reader threshold {cal_reader['threshold']}, cheap weight {cal_reader['cheap_weight']}")
        return
    rows = examples(
        train,
        rng,
        context,
        args.swap_share,
        args.delete_share,
        args.negate_share,
        args.unanswerable_repeats,
        args.antonym_share,
        args.negatives,
        args.negatives_by,
    )
    if args.limit:
        rows = rng.sample(rows, args.limit)
    log(f"{len(rows)} reader examples ({sum(r[2] for r in rows)} positive)")
    for q, sec, *_ in rng.sample(rows[-200:], 3):
        log(f"e.g. {q!r} / {sec[:120]!r}")
    model = train_reader(
        rows, args.layers, args.epochs, args.batch, log, args.base, not args.no_null_span, args.listwise
    )
    train_seconds = time.perf_counter() - started
    log("calibrating")
    cal_cheap, cal_reader = _calibrations(calibration, model, args.read, context, log)
    from .reader import save

    meta = {
        "seed": SEED,
        **({"init_seed": INIT_SEED} if INIT_SEED is not None else {}),
        "trained_on": "SQuAD train-du2017 articles 0-39, SQuAD v2.0 half articles 0-5",
        "calibrated_on": "SQuAD train-du2017 articles 40-43, SQuAD v2.0 half articles 6-7",
        "data_sha256": prepared["data_sha256"],
        "examples": len(rows),
        "epochs": args.epochs,
        "batch": args.batch,
        "max_tokens": MAX_TOKENS,
        "context": list(context),
        "null_span": not args.no_null_span,
        "made_unanswerable": {
            "swap_share": args.swap_share,
            "delete_share": args.delete_share,
            "negate_share": args.negate_share,
            "antonym_share": args.antonym_share,
            "unanswerable_repeats": args.unanswerable_repeats,
        },
        "negatives": [args.negatives, args.negatives_by],
        "listwise": args.listwise,
        "read": args.read,
        "train_seconds": round(train_seconds, 1),
    }
    save(model, args.out, args.layers, meta)
    (args.out / "cheap.json").write_text(json.dumps(cheap, indent=1) + "\n")
    (args.out / "calibration.json").write_text(json.dumps({"cheap": cal_cheap, "reader": cal_reader}, indent=1) + "\n")
    log(f"done; cheap threshold {cal_cheap['threshold']}, reader threshold {cal_reader['threshold']}")


if __name__ == "__main__":
    main()
