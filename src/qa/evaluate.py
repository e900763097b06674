"""Open-retrieval evaluation on SQuAD v1.1 dev, and the search that fitted the default weights.

Every one of the 2,067 paragraphs is a source titled by its article; every question is asked
against the whole index. Scores: passage recall@1/5/20 (the gold paragraph is among the top k
distinct sources), snippet accuracy@1 (the top snippet contains a gold answer) and the verbatim
rate (the snippet equals the source text at its cited offsets). Weights are fitted on articles
0-23 only ("tune"); figures are reported on all 48 and on 24-47 ("report").
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .assistant import Assistant
from .build import build_index
from .embed import embedder_for
from .errors import InputError
from .extract import answer
from .settings import Settings
from .types import Document

TUNE_ARTICLES = range(0, 24)
REPORT_ARTICLES = range(24, 48)
KS = (1, 5, 20)


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answers: tuple[str, ...]
    doc_id: str
    article: int


def load_squad(path: Path) -> tuple[list[Document], list[Question]]:
    """SQuAD v1.1-style JSON -> one Document per paragraph and every question."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a readable SQuAD JSON file ({exc}); pass --data dev-v1.1.json") from None
    docs: list[Document] = []
    questions: list[Question] = []
    for a, article in enumerate(data):
        title = article["title"].replace("_", " ")
        for p, para in enumerate(article["paragraphs"]):
            text = para["context"]
            doc_id = hashlib.sha256(f"{article['title']}\0{p}\0{text}".encode()).hexdigest()[:16]
            docs.append(Document(doc_id, f"{article['title']}/{p:03d}", title, text, "txt"))
            for qa in para["qas"]:
                if qa.get("is_impossible"):
                    continue
                answers = tuple(dict.fromkeys(x["text"] for x in qa["answers"]))
                questions.append(Question(qa["id"], qa["question"], answers, doc_id, a))
    return docs, questions


def mode_settings(base: Settings, mode: str) -> Settings:
    """Settings for one retrieval mode: dense-only, lexical-only, or the tuned hybrid."""
    if mode == "dense":
        return base.but(
            fusion="cc",
            dense_weight=1.0,
            rerank_weight=0.0,
            sentence_dense_weight=1.0,
            sentence_lexical_weight=0.0,
            sentence_chunk_weight=0.0,
        )
    if mode == "lexical":
        return base.but(
            fusion="cc",
            dense_weight=0.0,
            rerank_weight=0.0,
            sentence_dense_weight=0.0,
            sentence_lexical_weight=1.0,
            sentence_chunk_weight=0.0,
        )
    return base


def prepare(
    data: Path, work: Path, settings: Settings, progress: bool = True
) -> tuple[Assistant, list[Question], np.ndarray]:
    """Build (or reuse) the SQuAD index in ``work`` and embed every question once."""
    docs, questions = load_squad(data)
    embedder = embedder_for(settings)
    tag = hashlib.sha256(json.dumps([settings.model, settings.index_fields()]).encode()).hexdigest()[:10]
    index_dir = work / f"squad-index-{tag}"
    build_index(index_dir, [], settings, embedder, documents=docs, progress=progress)
    cache = work / f"squad-questions-{tag}.npy"
    if cache.exists():
        vectors = np.load(cache)
    else:
        vectors = embedder.embed([q.text for q in questions])
        np.save(cache, vectors)
    return Assistant.open(index_dir, settings=settings, embedder=embedder), questions, vectors


def score(assistant: Assistant, questions: list[Question], vectors: np.ndarray, settings: Settings) -> dict[str, Any]:
    """Recall@k, snippet accuracy@1 and verbatim rate of ``settings`` over ``questions``."""
    index = assistant.index
    assistant.settings = settings
    row_of = {index.document(r).document.doc_id: r for r in index.document_rows()}
    hits_at = dict.fromkeys(KS, 0)
    snippet_ok = verbatim = answered = chars = 0
    started = time.perf_counter()
    for q, v in zip(questions, vectors, strict=True):
        hits, scored = assistant.retrieve(q.text, v)
        ranked = list(dict.fromkeys(int(index.chunk_docs[h.chunk]) for h in hits))
        gold = row_of[q.doc_id]
        for k in KS:
            hits_at[k] += gold in ranked[:k]
        result = answer(index, q.text, hits, scored, settings.but(abstain_below=-1.0), 1)
        if result.snippets:
            answered += 1
            top = result.snippets[0]
            doc = index.document(row_of_citation(index, top.citation.id)).document
            verbatim += doc.text[top.citation.start : top.citation.end] == top.text
            snippet_ok += any(a in top.text for a in q.answers)
            chars += len(top.text)
    n = max(1, len(questions))
    return {
        "questions": len(questions),
        **{f"recall@{k}": round(hits_at[k] / n, 4) for k in KS},
        "snippet_accuracy@1": round(snippet_ok / n, 4),
        "verbatim_rate": round(verbatim / max(1, answered), 4),
        "snippet_chars": round(chars / max(1, answered), 1),
        "ms_per_question": round(1000 * (time.perf_counter() - started) / n, 2),
    }


def row_of_citation(index: Any, citation_id: str) -> int:
    from .cite import parse_citation_id

    prefix, _, _ = parse_citation_id(citation_id)
    return index.rows_with_prefix(prefix)[0]


def split(questions: list[Question], vectors: np.ndarray, articles: range | None) -> tuple[list[Question], np.ndarray]:
    keep = [i for i, q in enumerate(questions) if articles is None or q.article in articles]
    return [questions[i] for i in keep], vectors[keep]


def evaluate(
    assistant: Assistant,
    questions: list[Question],
    vectors: np.ndarray,
    settings: Settings,
    limit: int | None = None,
    modes: tuple[str, ...] = ("dense", "lexical", "hybrid"),
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every retrieval mode on all articles, on the tune half and on the report half."""
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for mode in modes:
        results[mode] = {}
        for name, articles in (("all", None), ("tune 0-23", TUNE_ARTICLES), ("report 24-47", REPORT_ARTICLES)):
            qs, vs = split(questions, vectors, articles)
            if limit:
                qs, vs = qs[:limit], vs[:limit]
            results[mode][name] = score(assistant, qs, vs, mode_settings(settings, mode))
    return results


def grid(base: Settings) -> Iterator[Settings]:
    """Candidate weightings searched on the tune half, fusion first, then sentence choice."""
    for fusion, w in itertools.chain(
        (("cc", w) for w in (0.3, 0.4, 0.5, 0.6, 0.7)), (("rrf", w) for w in (0.4, 0.5, 0.6))
    ):
        yield base.but(fusion=fusion, dense_weight=w, rerank_weight=0.0)


def sentence_grid(base: Settings) -> Iterator[Settings]:
    for r, (d, lex, c) in itertools.product(
        (0.0, 0.3, 0.5, 0.7, 0.9), ((0.5, 0.3, 0.2), (0.6, 0.2, 0.2), (0.4, 0.4, 0.2), (0.5, 0.2, 0.3), (0.4, 0.3, 0.3))
    ):
        yield base.but(rerank_weight=r, sentence_dense_weight=d, sentence_lexical_weight=lex, sentence_chunk_weight=c)


def tune(
    assistant: Assistant,
    questions: list[Question],
    vectors: np.ndarray,
    base: Settings,
    log: Callable[[str], None],
    limit: int | None = None,
) -> Settings:
    """Fit fusion and sentence weights on the tune half; returns the best settings."""
    qs, vs = split(questions, vectors, TUNE_ARTICLES)
    if limit:
        qs, vs = qs[:limit], vs[:limit]

    def objective(m: dict[str, Any]) -> float:
        return m["recall@1"] + m["recall@5"] + m["snippet_accuracy@1"]

    best, best_value = base, -1.0
    for stage in (grid, sentence_grid):
        for candidate in stage(best):
            m = score(assistant, qs, vs, candidate)
            log(
                f"{candidate.fusion} w={candidate.dense_weight} rerank={candidate.rerank_weight} "
                f"sent=({candidate.sentence_dense_weight},{candidate.sentence_lexical_weight},"
                f"{candidate.sentence_chunk_weight}) -> {m}"
            )
            if objective(m) > best_value:
                best, best_value = candidate, objective(m)
    return best


def confidences(assistant: Assistant, texts: list[str], vectors: np.ndarray) -> np.ndarray:
    """The answer confidence of each question against ``assistant``'s index."""
    from .extract import confidence_of

    out = np.zeros(len(texts), dtype=np.float64)
    for i, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
        _, scored = assistant.retrieve(text, vector)
        out[i] = confidence_of(scored[0]) if scored else -1.0
    return out


def calibrate(answerable: list[np.ndarray], unanswerable: list[np.ndarray], slack: float = 0.005) -> dict[str, Any]:
    """The abstention threshold from confidences of answerable and unanswerable question sets.

    The objective is the mean of every set's rate (answered for answerable sets, abstained for the
    others), so each set counts the same whatever its size. Of the thresholds within ``slack`` of
    the best, the lowest is taken: declining an answerable question costs the user more.
    """
    grid = np.round(np.arange(-0.2, 1.2, 0.01), 2)

    def rates(t: float) -> list[float]:
        return [float((a >= t).mean()) for a in answerable] + [float((u < t).mean()) for u in unanswerable]

    means = np.array([np.mean(rates(t)) for t in grid])
    chosen = float(grid[np.flatnonzero(means >= means.max() - slack)[0]])
    return {
        "threshold": chosen,
        "mean_rate": round(float(np.mean(rates(chosen))), 4),
        "rates": [round(r, 4) for r in rates(chosen)],
    }


V2_REPORT_ARTICLES = range(8, 16)


def has_unanswerable(path: Path) -> bool:
    """Whether a SQuAD file marks questions ``is_impossible`` (SQuAD v2.0)."""
    import re

    return re.search(r'"is_impossible"\s*:\s*true', Path(path).read_text(encoding="utf-8")) is not None


def load_all(path: Path) -> tuple[list[Document], list[Any]]:
    """Every paragraph and every question, the unanswerable ones included (SQuAD v2.0)."""
    from .scorer import data

    try:
        return data.load(path)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a readable SQuAD JSON file ({exc})") from None


def judged(assistant: Assistant, texts: list[str], vectors: np.ndarray, group: int = 256, k: int = 1) -> list[Any]:
    """Answers to ``texts`` (already embedded), ``k`` snippets each, through the assistant's scorer."""
    from .retrieve import dense_candidates

    out: list[Any] = []
    for at in range(0, len(texts), group):
        v = vectors[at : at + group]
        dense = dense_candidates(assistant.index, v, assistant.settings)
        out += assistant._answers(assistant.index, texts[at : at + group], v, k, list(dense))
    return out


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    import re
    import string

    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def phrase_scores(prediction: str, golds: tuple[str, ...] | list[str]) -> tuple[float, float]:
    """Exact match and token F1 of ``prediction`` against the best gold answer (SQuAD's metric)."""
    from collections import Counter

    best_em = best_f1 = 0.0
    p_tokens = normalize_answer(prediction).split()
    for gold in golds:
        g_tokens = normalize_answer(gold).split()
        best_em = max(best_em, float(p_tokens == g_tokens))
        common = sum((Counter(p_tokens) & Counter(g_tokens)).values())
        if common:
            precision, recall = common / len(p_tokens), common / len(g_tokens)
            best_f1 = max(best_f1, 2 * precision * recall / (precision + recall))
    return best_em, best_f1


def score_answers(answers: list[Any], golds: list[tuple[str, ...]], started: float) -> dict[str, Any]:
    """Answer-level figures: answered rate, top-snippet accuracy (answered or not), exact phrase EM/F1."""
    n = max(1, len(answers))
    answered = [a for a in answers if not a.abstained]
    right = right_answered = em = f1 = phrases = 0.0
    for a, gold in zip(answers, golds, strict=True):
        top = a.best or (a.related[0] if a.related else None)
        ok = top is not None and any(g in top.text for g in gold)
        right += ok
        if not a.abstained:
            right_answered += ok
            shown = a.phrase.text if a.phrase is not None else top.text
            phrases += a.phrase is not None
            e, f = phrase_scores(shown, gold)
            em += e
            f1 += f
    m = max(1, len(answered))
    return {
        "questions": len(answers),
        "answered": round(len(answered) / n, 4),
        "snippet_accuracy@1": round(right / n, 4),
        "right_when_answered": round(right_answered / m, 4),
        "phrase_em": round(em / m, 4),
        "phrase_f1": round(f1 / m, 4),
        "with_phrase": round(phrases / m, 4),
        "ms_per_question": round(1000 * (time.perf_counter() - started) / n, 2),
    }


def evaluate_scorers(
    assistant: Assistant,
    questions: list[Question],
    vectors: np.ndarray,
    settings: Settings,
    scorers: tuple[str, ...],
    limit: int | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """SQuAD v1.1 with each answer scorer: answers, top-snippet accuracy and exact-phrase EM/F1.

    Every question is answered once per scorer; the splits are read from those answers. ``limit``
    keeps the first questions of each split, as ``evaluate`` does.
    """
    results: dict[str, dict[str, dict[str, Any]]] = {}
    splits = {
        name: [i for i, q in enumerate(questions) if articles is None or q.article in articles][:limit]
        for name, articles in (("all", None), ("tune 0-23", TUNE_ARTICLES), ("report 24-47", REPORT_ARTICLES))
    }
    asked = sorted(set().union(*splits.values()))
    at = {i: n for n, i in enumerate(asked)}
    for kind in scorers:
        assistant.settings = settings.but(scorer=kind)
        started = time.perf_counter()
        answers = judged(assistant, [questions[i].text for i in asked], vectors[asked])
        seconds = time.perf_counter() - started
        results[f"scorer {kind}"] = {}
        for name, keep in splits.items():
            m = score_answers([answers[at[i]] for i in keep], [questions[i].answers for i in keep], time.perf_counter())
            m["ms_per_question"] = round(1000 * seconds / max(1, len(asked)), 2)
            results[f"scorer {kind}"][name] = m
    assistant.settings = settings
    return results


def reliability(answers: list[Any], questions: list[Any]) -> str:
    """How often the top sentence was right at each confidence: "0.0-0.2: 0.05 (n=1200) | ..."."""
    edges = (0.0, 0.2, 0.4, 0.6, 0.8, float("inf"))  # the last takes scores above 1 (--scorer none)
    parts = []
    for lo, hi in itertools.pairwise(edges):
        hits = [
            q.answerable
            and (top := a.best or (a.related[0] if a.related else None)) is not None
            and any(t in top.text for _, t in q.answers)
            for a, q in zip(answers, questions, strict=True)
            if lo <= a.confidence < hi
        ]
        if hits:
            upper = f"-{hi:.1f}" if hi < 1 else ("-1.0" if max(a.confidence for a in answers) <= 1 else " and up")
            parts.append(f"{lo:.1f}{upper}: {sum(hits) / len(hits):.2f} (n={len(hits)})")
    return " | ".join(parts)


def trade_off(confidence: Any, answerable: Any, rates: tuple[float, ...] = (0.90, 0.92, 0.95)) -> str:
    """Unanswerable questions declined at fixed shares of answerable ones answered, and the AUC:
    how well confidence alone separates the two, whatever the threshold.

    "0.333 at 0.90 answered | 0.290 at 0.92 answered | ...; AUC 0.716". A scorer's own threshold
    picks one point of this curve; two scorers compare fairly only at the same answered share.
    """
    conf = np.asarray(confidence, dtype=np.float64)
    yes = np.asarray(answerable, dtype=bool)
    pos, neg = conf[yes], np.sort(conf[~yes])
    if not len(pos) or not len(neg):
        return ""
    parts = []
    for rate in rates:
        threshold = np.quantile(pos, 1 - rate)  # answering at or above it answers ``rate`` of the answerable
        parts.append(f"{float((neg < threshold).mean()):.3f} at {rate:.2f} answered")
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    auc = float((below + 0.5 * ties).sum() / (len(pos) * len(neg)))
    return " | ".join(parts) + f"; AUC {auc:.3f}"


def open_corpus(
    name: str, data: Path, docs: list[Document], questions: list[str], work: Path, settings: Settings
) -> tuple[Assistant, np.ndarray]:
    """Build (or reuse) the index of ``docs`` in ``work``, named by the data file and the settings,
    and embed ``questions``."""
    embedder = embedder_for(settings)
    tag = hashlib.sha256(json.dumps([str(data), settings.model, settings.index_fields()]).encode()).hexdigest()[:10]
    index_dir = work / f"{name}-index-{tag}"
    build_index(index_dir, [], settings, embedder, documents=docs, progress=True)
    return Assistant.open(index_dir, settings=settings, embedder=embedder), embedder.embed(questions)


def evaluate_abstention(
    data: Path, work: Path, settings: Settings, scorers: tuple[str, ...], limit: int | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """SQuAD v2.0: all paragraphs as one corpus; answerable answered and right, unanswerable declined.

    Reported on articles 8-15: the scorer's training and calibration read only articles 0-7.
    """
    docs, questions = load_all(data)
    assistant, vectors = open_corpus("squad2", data, docs, [q.text for q in questions], work, settings)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in scorers:
        assistant.settings = settings.but(scorer=kind)
        results[f"scorer {kind}"] = {}
        for name, articles in (("report 8-15", V2_REPORT_ARTICLES),):
            keep = [i for i, q in enumerate(questions) if q.article in articles]
            if limit:
                keep = keep[:limit]
            qs = [questions[i] for i in keep]
            started = time.perf_counter()
            answers = judged(assistant, [q.text for q in qs], vectors[keep])
            yes = [(a, q) for a, q in zip(answers, qs, strict=True) if q.answerable]
            no = [a for a, q in zip(answers, qs, strict=True) if not q.answerable]
            m = score_answers([a for a, _ in yes], [tuple(t for _, t in q.answers) for _, q in yes], started)
            results[f"scorer {kind}"][name] = {
                "calibration": reliability(answers, qs),
                "trade_off": trade_off([a.confidence for a in answers], [q.answerable for q in qs]),
                "answerable": len(yes),
                "unanswerable": len(no),
                "unanswerable_declined": round(sum(a.abstained for a in no) / max(1, len(no)), 4),
                "answerable_answered": m["answered"],
                "answerable_top_right": m["snippet_accuracy@1"],
                "right_when_answered": m["right_when_answered"],
                "phrase_f1": m["phrase_f1"],
            }
    assistant.close()
    return results


@dataclass(frozen=True)
class MultiHop:
    """A HotpotQA question: its answer, and the sentences that support it as (doc_id, start, end)."""

    text: str
    answer: str
    support: tuple[tuple[str, int, int], ...]


def is_hotpot(path: Path) -> bool:
    """Whether ``path`` is HotpotQA JSON (a list of questions with ``supporting_facts``), not SQuAD."""
    text = Path(path).read_text(encoding="utf-8")
    return text.lstrip().startswith("[") and '"supporting_facts"' in text


def load_hotpot(path: Path) -> tuple[list[Document], list[MultiHop]]:
    """HotpotQA (distractor setting, either the original or the Hugging Face layout) -> one Document
    per distinct paragraph, titled by its article, and every question with its supporting sentences'
    character spans in those documents."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        docs: dict[str, Document] = {}
        questions = []
        for item in data:
            context, facts = item["context"], item["supporting_facts"]
            if isinstance(context, dict):  # Hugging Face: {"title": [...], "sentences": [[...], ...]}
                context = list(zip(context["title"], context["sentences"], strict=True))
                facts = list(zip(facts["title"], facts["sent_id"], strict=True))
            spans: dict[tuple[str, int], tuple[str, int, int]] = {}
            for title, sentences in context:
                text = "".join(sentences)
                doc_id = hashlib.sha256(f"{title}\0{text}".encode()).hexdigest()[:16]
                docs.setdefault(doc_id, Document(doc_id, f"{title}/{doc_id[:6]}", title, text, "txt"))
                at = 0
                for i, sentence in enumerate(sentences):
                    lead = len(sentence) - len(sentence.lstrip())
                    spans[(title, i)] = (doc_id, at + lead, at + len(sentence.rstrip()))
                    at += len(sentence)
            support = tuple(spans[(t, i)] for t, i in facts if (t, i) in spans)
            questions.append(MultiHop(item["question"], item["answer"], support))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a readable HotpotQA JSON file ({exc})") from None
    return list(docs.values()), questions


def score_multihop(answers: list[Any], questions: list[MultiHop], doc_of: Callable[[Any], str]) -> dict[str, Any]:
    """How the shown snippets (the answer and its support, or the related passages of an abstention)
    meet each question's supporting sentences: the top one is a supporting sentence; the shown ones
    cover supporting sentences of both of its articles; for the questions answered by a span (not
    yes/no), the top one holds the answer (ignoring case), and the exact phrase's F1. ``doc_of``
    gives the doc_id of a snippet's source."""
    n = max(1, len(answers))
    top_support = both = holds = spans = f1 = phrased = right = 0.0
    for a, q in zip(answers, questions, strict=True):
        shown = a.snippets or a.related
        met = []  # per snippet shown: the supporting articles it overlaps
        for snip in shown:
            doc_id, c = doc_of(snip), snip.citation
            met.append({d for d, lo, hi in q.support if d == doc_id and c.start < hi and c.end > lo})
        top_support += bool(met and met[0])
        both += bool(met) and set().union(*met) >= {d for d, _, _ in q.support}
        if q.answer.lower() in ("yes", "no"):
            continue
        spans += 1
        ok = bool(shown) and q.answer.lower() in shown[0].text.lower()
        holds += ok
        if not a.abstained:
            phrased += 1
            right += ok
            f1 += phrase_scores(a.phrase.text if a.phrase is not None else a.best.text, (q.answer,))[1]
    return {
        "questions": len(answers),
        "answered": round(sum(not a.abstained for a in answers) / n, 4),
        "top_is_support": round(top_support / n, 4),
        "both_articles_shown": round(both / n, 4),
        "top_holds_answer": round(holds / max(1, spans), 4),
        "right_when_answered": round(right / max(1, phrased), 4),
        "phrase_f1": round(f1 / max(1, phrased), 4),
    }


def evaluate_multihop(
    data: Path, work: Path, settings: Settings, scorers: tuple[str, ...], limit: int | None = None, k: int = 3
) -> dict[str, dict[str, dict[str, Any]]]:
    """HotpotQA: every paragraph of every question as one corpus, each question asked with ``k``
    snippets; nothing in ``qa`` was trained or tuned on it, so it shows how the scorer does on
    questions unlike SQuAD's (two articles, a bridge entity between them)."""
    docs, questions = load_hotpot(data)
    questions = questions[:limit] if limit else questions
    assistant, vectors = open_corpus("hotpot", data, docs, [q.text for q in questions], work, settings)
    index = assistant.index

    def doc_of(snippet: Any) -> str:
        return str(index.document(row_of_citation(index, snippet.citation.id)).document.doc_id)

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in scorers:
        assistant.settings = settings.but(scorer=kind)
        started = time.perf_counter()
        answers = judged(assistant, [q.text for q in questions], vectors, k=k)
        m = score_multihop(answers, questions, doc_of)
        m["ms_per_question"] = round(1000 * (time.perf_counter() - started) / max(1, len(questions)), 2)
        results[f"scorer {kind}"] = {"all": m}
    assistant.close()
    return results
