"""The learned answer scorer with the shipped model: right sentence and phrase, or a reason to decline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from qa import Assistant
from qa.scorer import MODEL_DIR, AnswerScorer
from qa.scorer.features import is_english_script, is_junk, key_terms, question_type
from qa.serialize import answer_dict, schema

from .conftest import ROOT, shared_path

pytestmark = pytest.mark.slow
QUESTIONS = json.loads((ROOT / "tests" / "data" / "seed_questions.json").read_text(encoding="utf-8"))
SEED_TEXT = (ROOT / "corpus" / "us-japan-defense-cooperation-2024.txt").read_text(encoding="utf-8")


def test_the_scorer_ships_inside_the_package_and_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import qa

    assert MODEL_DIR.is_relative_to(Path(qa.__file__).parent)
    weights = MODEL_DIR / "reader.safetensors"
    assert weights.stat().st_size < 40_000_000
    card = json.loads((MODEL_DIR / "reader.json").read_text())
    assert card["data_sha256"] and card["seed"]
    scorer = AnswerScorer("reader")
    assert 0.0 < scorer.threshold < 1.0
    assert scorer._reader is not None


KNOWN_ANSWERS = [
    pytest.param("Which missiles does Japan produce under U.S. license?", "export Patriot", "Patriot", id="patriot"),
    pytest.param(
        "When is Prime Minister Kishida's state visit to the United States scheduled?",
        "April 10, 2024",
        "April 10",
        id="state-visit",
        marks=pytest.mark.xfail(
            strict=True, reason="right sentence; the phrase is its first date, the announcement's ('January 25')"
        ),
    ),
]


@pytest.mark.parametrize(("question", "sentence", "phrase"), KNOWN_ANSWERS)
def test_a_known_answer_gets_its_sentence_and_its_phrase(assistant: Assistant, question, sentence, phrase):
    answer = assistant.ask(question)
    assert not answer.abstained and answer.scorer.startswith("reader")
    assert sentence in answer.best.text
    assert answer.phrase is not None and phrase in answer.phrase.text
    best, phrase = answer.best.citation, answer.phrase.citation
    assert best.start <= phrase.start < phrase.end <= best.end
    assert SEED_TEXT[phrase.start : phrase.end] == answer.phrase.text
    assert assistant.cite(phrase.id).text == answer.phrase.text


def test_every_answer_and_phrase_is_verbatim_at_its_offsets(assistant: Assistant):
    for answer in assistant.ask_many([c["question"] for c in QUESTIONS["answerable"]], k=3):
        for s in answer.snippets + answer.related + ((answer.phrase,) if answer.phrase else ()):
            assert SEED_TEXT[s.citation.start : s.citation.end] == s.text


def test_a_term_the_sources_never_use_is_named_in_the_reason(assistant: Assistant):
    answer = assistant.ask("How many F-35 fighter jets has Japan ordered?")
    assert answer.abstained and answer.reason == "the sources never mention 'F-35'"
    assert answer.related and answer.missing_terms == ("F-35",)
    assert assistant.ask("What does SOSA do?").missing_terms == ()


def test_an_answer_to_a_question_naming_what_the_sources_never_mention_says_so_everywhere():
    """The answer is kept (a sentence can give the height asked about another thing), with a note in
    every output: CLI, web, JSON, batch CSV and Markdown."""
    import csv
    import io

    from qa import batch
    from qa.cli import format_answer
    from qa.serialize import answer_dict, schema
    from qa.types import Answer, Citation, Snippet
    from qa.web import answer_markdown

    text = "It is 42 metres tall and its lamp can be seen 30 kilometres out to sea."
    snippet = Snippet(text, Citation("6ade011d8b27:86-157", "lighthouse.txt", 86, 157), 0.39)
    answer = Answer("How tall is the Eiffel Tower?", (snippet,), False, confidence=0.39, missing_terms=("Eiffel",))
    note = "he sources never mention 'Eiffel': check that this answers what you asked"
    assert f"Note: T{note}." in format_answer(answer)
    assert f"**Note:** T{note}." in answer_markdown(answer)
    data = answer_dict(answer)
    jsonschema.validate(data, schema())
    assert data["missing_terms"] == ["Eiffel"]
    row = batch.record(batch.Row("1", answer.question), answer)
    stream = io.StringIO()
    batch.Writer(stream, "csv").write(row)
    assert next(csv.DictReader(io.StringIO(stream.getvalue())))["missing_terms"] == "Eiffel"
    stream = io.StringIO()
    batch.Writer(stream, "md").write(row)
    assert f"*note:* t{note}" in stream.getvalue()
    plain = Answer("q", (snippet,), False, confidence=0.9)
    assert "Note:" not in format_answer(plain) and "**Note:**" not in answer_markdown(plain)


def test_a_count_question_is_declined_when_no_passage_gives_a_number(tmp_path: Path, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "harbour.txt").write_text(
        "The harbour committee meets in the old town hall. Its members discuss the ferry timetable and the "
        "lighthouse repairs. The ferry crosses the bay to the island every morning. Fishermen sell their catch "
        "on the quay beside the committee's office.\n"
    )
    Assistant.build(corpus, tmp_path / "index", embedder=embedder)
    with Assistant.open(tmp_path / "index", embedder=embedder) as qa:
        answer = qa.ask("How many members does the harbour committee have?")
        assert answer.abstained
        assert answer.reason == "no passage states a number, which the question asks for"
        assert not qa.ask("Where does the harbour committee meet?").abstained


def test_a_weak_best_candidate_is_declined_with_its_confidence(assistant: Assistant):
    answer = assistant.ask("How long should I boil an egg to get a soft yolk?")
    assert answer.abstained
    assert answer.reason.startswith("no passage") and answer.confidence < AnswerScorer("reader").threshold


def test_a_question_in_another_script_is_declined_with_that_reason(assistant: Assistant):
    answer = assistant.ask("ما هي الصواريخ التي تنتجها اليابان؟")
    assert answer.abstained and "English" in answer.reason
    assert is_english_script("Which missiles does Japan produce?") and not is_english_script("ミサイルは何ですか")


@pytest.mark.parametrize(
    "text",
    [". . . . . . . . . . . .", "17", "iv", "— 12 —", "x = (a + b) / 2", "........ 45", "Chapter 3 .......... 17"],
)
def test_text_without_words_is_junk(text: str):
    assert is_junk(text)


def test_sentences_are_not_junk():
    assert not is_junk("The ferry crosses the bay.")
    assert not is_junk("SOSA looks to increase paths of acquisition.")


def test_question_types_and_key_terms():
    assert question_type("How many F-35 jets has Japan ordered?") == "count"
    assert question_type("When was the treaty signed?") == "time"
    assert question_type("Who leads the J-JOC?") == "person"
    assert key_terms("How many F-35 fighter jets has Japan ordered in 2024?") == ["F-35", "Japan", "2024"]


def _sample_with_pdf(tmp_path: Path, embedder, name: str) -> Assistant:  # type: ignore[no-untyped-def]
    """An assistant over the sample corpus plus one PDF of ../shared/pdfs."""
    pdf = shared_path("pdfs", name)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(pdf, corpus / pdf.name)
    shutil.copy(ROOT / "corpus" / "us-japan-defense-cooperation-2024.txt", corpus)
    Assistant.build(corpus, tmp_path / "index", embedder=embedder)
    return Assistant.open(tmp_path / "index", embedder=embedder)


def test_dot_leaders_never_answer_and_france_is_declined(tmp_path: Path, embedder):
    with _sample_with_pdf(tmp_path, embedder, "GeoTopo-komprimiert.pdf") as qa:
        answer = qa.ask("What is the capital of France?", k=5)
        assert answer.abstained
        for question in ("What is the capital of France?", "What is on page 3?", "table of contents"):
            shown = qa.ask(question, k=5)
            for s in shown.snippets + shown.related:
                assert not is_junk(s.text), s.text


def test_a_table_read_column_by_column_is_shown_without_a_phrase(tmp_path: Path, embedder, monkeypatch):
    """google-doc-document.pdf's table comes out of the PDF a column at a time (countries, then
    capitals): the capital beside "France" is Jakarta's. The block holds the answer, so it may be
    shown, but the phrase the reader picks inside it cannot be trusted, and none is highlighted,
    whatever the confidence (here also with the threshold at 0, so that it is shown)."""
    from qa.scorer import AnswerScorer
    from qa.scorer.features import is_cell_column

    with _sample_with_pdf(tmp_path, embedder, "google-doc-document.pdf") as qa:
        answer = qa.ask("What is the capital of France?")
        assert answer.abstained or answer.phrase is None, answer
        monkeypatch.setattr(AnswerScorer, "threshold", property(lambda self: 0.0))
        answer = qa.ask("What is the capital of France?")
        assert answer.best is not None and is_cell_column(answer.best.text), answer
        assert "Paris" in answer.best.text and answer.phrase is None


def test_a_phrase_leaves_out_the_markdown_marks_and_spaces_at_its_edges():
    from qa.scorer import _trimmed

    text = "Staff on the **night shift** get a bonus."
    start = text.index("**night")
    assert _trimmed(text, (start, start + len("**night shift"))) == (start + 2, start + 13)
    assert text[start + 2 : start + 13] == "night shift"
    assert _trimmed(text, (start, start + 2)) is None  # only marks: no phrase
    assert _trimmed("a `code` b", (2, 8)) == (3, 7)
    for whole, covered, phrase in [
        ("built by Thomas Hale.", "Thomas Hale.", "Thomas Hale"),
        ("in 1874, by him", "1874,", "1874"),
        ("made in the U.S.", "the U.S.", "the U.S."),
        ("sold to Acme Inc.", "Acme Inc.", "Acme Inc."),
        ("in 1874.", "1874.", "1874"),
        ("by **Hale**.", "**Hale**.", "Hale"),
    ]:
        at = whole.index(covered)
        a, b = _trimmed(whole, (at, at + len(covered)))  # type: ignore[misc]
        assert whole[a:b] == phrase


def test_what_reads_as_a_column_of_table_cells():
    from qa.scorer.features import is_cell_column

    assert is_cell_column("Country\nFrance\nSpain\nCapital\nParis\nMadrid\nCurrency\nEUR")
    wrapped = (  # a sentence wrapped over six lines of a PDF page
        "The alliance agreed in 2023 to\nstrengthen its command and\ncontrol frameworks so that\nforces"
        " of both countries can\noperate together in peace\nand in a contingency."
    )
    assert not is_cell_column(wrapped)
    assert not is_cell_column("Paris\nMadrid\nRome")  # too few lines to tell


def test_scorer_none_keeps_the_similarity_answer(assistant: Assistant):
    before = assistant.settings
    try:
        assistant.settings = before.but(scorer="none")
        answer = assistant.ask("What does SOSA do?")
        assert answer.scorer == "none" and answer.phrase is None
        assert "SOSA looks to increase paths of acquisition" in answer.best.text
        assert answer.best.score == answer.confidence  # one number, on the answer line and its own
    finally:
        assistant.settings = before


def test_every_output_has_the_one_documented_shape(assistant: Assistant):
    for question in ("What does SOSA do?", "How many F-35 fighter jets has Japan ordered?"):
        jsonschema.validate(answer_dict(assistant.ask(question)), schema())


def test_pairs_read_together_get_what_each_gets_read_alone():
    """The reader sorts pairs by length into groups; every pair's logit and phrase come back in its place."""
    from qa.scorer import Candidate

    sentences = [s.strip() + "." for s in SEED_TEXT.split(". ") if len(s) > 30][:20]
    pairs = [
        (q, Candidate(None, s, "us-japan")) for q in ("What does SOSA do?", "Who visited in 2024?") for s in sentences
    ]  # type: ignore[arg-type]
    scorer = AnswerScorer("reader")
    together = scorer._read(pairs)
    alone = [scorer._read([p])[0] for p in pairs]
    assert len(together) == len(pairs) > 32  # more than two groups
    for (a, span_a), (b, span_b) in zip(together, alone, strict=True):
        assert abs(a - b) < 1e-3 and span_a == span_b


def test_the_fusion_weight_is_the_one_that_ranks_right_sentences_first():
    """Fitted on records where the reader alone ranks a wrong sentence first and the cheap head knows better."""
    import numpy as np

    from qa.scorer.train import fusion_weight

    def record(answer: str) -> dict:  # type: ignore[type-arg]
        return {"answerable": True, "answers": [answer], "candidates": [{"text": "wrong"}, {"text": answer}]}

    records = [record("right") for _ in range(3)]
    chosen = [[0, 1]] * 3
    cheap = [np.array([0.0, 2.0])] * 3  # the cheap head prefers the right sentence by 2
    reader = np.array([1.0, 0.5] * 3)  # the reader prefers the wrong one by 0.5
    assert fusion_weight(records, chosen, cheap, reader) == 0.3  # the least weight that fixes all three
    assert fusion_weight(records, chosen, cheap, np.array([0.0, 1.0] * 3)) == 0.0  # reader right: no weight


def test_a_sentence_read_with_context_sits_verbatim_between_its_neighbours_cut_at_word_edges():
    from qa.scorer.reader import second_segment

    sentence = "It was signed in 1960."
    before, after = "The treaty binds both countries to defend each other.", "It was revised later that year."
    alone, at = second_segment("Treaty", sentence)
    assert (alone, at) == ("Treaty | It was signed in 1960.", 9)
    text, at = second_segment("Treaty", sentence, before, after, (20, 12))
    assert text[at : at + len(sentence)] == sentence
    assert text == "Treaty | defend each other. « It was signed in 1960. » It was"
    text, at = second_segment("", sentence, "", "", (20, 12))  # no neighbours: only the marks
    assert (text, at) == ("« It was signed in 1960. »", 2)


def test_the_training_only_no_answer_head_is_not_saved(tmp_path: Path):
    from safetensors.torch import load_file

    from qa.scorer.reader import build_model, load, save

    model = build_model(1, null_head=True)
    assert model.null is not None
    save(model, tmp_path, 1, {})
    assert not [k for k in load_file(str(tmp_path / "reader.safetensors")) if k.startswith("null.")]
    assert load(tmp_path).null is None


def test_candidates_carry_their_neighbouring_sentences_only_when_asked(assistant: Assistant):
    from qa.scorer import candidates

    question = "Which missiles does Japan produce under U.S. license?"
    vector = assistant.embedder.embed([question])[0]
    hits, scored = assistant.retrieve(question, vector)
    plain = candidates(assistant.index, scored, 8)
    read = candidates(assistant.index, scored, 8, with_neighbours=True)
    assert [c.text for c in plain] == [c.text for c in read]
    assert all(c.before == c.after == "" for c in plain)
    assert any(c.before for c in read) and any(c.after for c in read)
    for c in read:
        assert SEED_TEXT[: c.scored.start].rstrip().endswith(c.before)
        assert SEED_TEXT[c.scored.end :].lstrip().startswith(c.after)


def _record(question: str, sentence: str, span: tuple[int, int], answer: str, article: int = 0) -> dict:
    cand = {"text": sentence, "title": "T", "label": 1, "span": span, "before": "", "after": ""}
    other = {"text": "Something else entirely.", "title": "T", "label": 0, "span": None, "before": "", "after": ""}
    return {
        "question": question,
        "article": article,
        "answerable": True,
        "answers": [answer],
        "candidates": [cand, other],
    }


def test_made_unanswerable_questions_negate_the_first_auxiliary_and_keep_the_answer_sentence():
    import random

    from qa.scorer.train import negated

    records = [
        _record("What was built in 1960?", "A bridge was built in 1960.", (0, 8), "A bridge"),
        _record("Who can veto a bill?", "The president can veto a bill.", (0, 13), "The president"),
        _record("Which river floods?", "The Nile floods.", (4, 8), "Nile"),  # no auxiliary: left out
        _record("What is not allowed?", "Smoking is not allowed.", (0, 7), "Smoking"),  # already negative
    ]
    made = negated(records, random.Random(0), 1.0)
    assert [(q, c["text"]) for q, c in made] == [
        ("What wasn't built in 1960?", "A bridge was built in 1960."),
        ("Who can't veto a bill?", "The president can veto a bill."),
    ]


def test_cutting_the_answer_phrase_out_leaves_a_sentence_without_the_answer():
    import random

    from qa.scorer.train import deleted

    sentence = "The treaty was signed in 1960 by both governments."
    made = deleted([_record("When was the treaty signed?", sentence, (25, 29), "1960")], random.Random(0), 1.0)
    assert [c["text"] for _, c in made] == ["The treaty was signed by both governments."]
    assert made[0][1]["label"] == 0 and made[0][1]["span"] is None


def test_opposed_questions_flip_a_lower_case_word_the_answer_sentence_does_not_hold():
    import random

    from qa.scorer.train import opposed

    records = [
        _record("Who was the first king of Mercia?", "Penda was the first king of Mercia.", (0, 5), "Penda"),
        _record("How old was Penda when he died?", "Penda was 80 when he died.", (10, 12), "80"),  # "how old": kept
        _record("Where is West Point?", "West Point is in New York.", (17, 25), "New York"),  # a name: kept
        _record("What came before or after it?", "It came after the war, not before.", (8, 21), "after the war"),
    ]
    made = opposed(records, random.Random(0), 1.0)
    assert [(q, c["text"]) for q, c in made] == [
        ("Who was the last king of Mercia?", "Penda was the first king of Mercia."),
    ]


def test_listwise_batches_keep_each_question_with_its_candidates():
    import random

    from qa.scorer.train import _group_batches, examples

    records = [
        _record(f"What was built in {1900 + i}?", f"A bridge was built in {1900 + i}.", (0, 8), "A bridge")
        for i in range(40)
    ]
    rows = examples(records, random.Random(0), swap_share=0.0, negate_share=0.0)
    batches = _group_batches(rows, 8)
    assert sorted(i for b in batches for i in b) == list(range(len(rows)))
    for b in batches:
        assert len(b) <= 8
        groups = {rows[i][6] for i in b}
        assert all(sum(r[6] == g for r in rows) == sum(rows[i][6] == g for i in b) for g in groups)


def test_wrong_sentences_read_in_training_are_the_best_ranked_by_retrieval_or_by_the_cheap_head():
    import random

    from qa.scorer.train import examples

    record = _record("What was built in 1900?", "A bridge was built in 1900.", (0, 8), "A bridge")
    wrong = [
        {"text": f"Wrong sentence {k}.", "title": "T", "label": 0, "span": None, "before": "", "after": "", "cheap": c}
        for k, c in enumerate([-3.0, -2.0, 1.0, 2.0, -1.0])  # retrieval's order; the cheap head's: 3 2 4 1 0
    ]
    record["candidates"] = record["candidates"][:1] + wrong

    def read(**kw):
        rows = examples([record], random.Random(0), swap_share=0.0, negate_share=0.0, **kw)
        return [r[1].split(" | ")[-1] for r in rows if r[2] == 0]

    by_retrieval = read(negatives=2)
    assert by_retrieval[:2] == ["Wrong sentence 0.", "Wrong sentence 1."] and len(by_retrieval) == 3
    by_cheap = read(negatives=2, negatives_by="cheap")
    assert by_cheap[:2] == ["Wrong sentence 3.", "Wrong sentence 2."] and len(by_cheap) == 3
    assert by_cheap[2] in {"Wrong sentence 4.", "Wrong sentence 1.", "Wrong sentence 0."}


def test_the_listwise_loss_rewards_the_answer_over_its_question_s_others_and_no_answer_where_none():
    import torch

    from qa.scorer.train import _listwise_loss

    null = torch.zeros(1)
    logits = torch.tensor([6.0, -6.0, -6.0, -6.0])
    groups = [0, 0, 1, 1]  # question 0: answer, other; question 1 has no answer sentence
    right = _listwise_loss(logits, torch.tensor([1.0, 0.0, 0.0, 0.0]), groups, null)
    wrong = _listwise_loss(logits, torch.tensor([0.0, 1.0, 0.0, 0.0]), groups, null)
    assert float(right) < 0.01 < 5.0 < float(wrong)
    unanswerable_read_as_answered = _listwise_loss(
        torch.tensor([6.0, -6.0, 6.0, -6.0]), torch.tensor([1.0, 0, 0, 0]), groups, null
    )
    assert float(unanswerable_read_as_answered) > 2.0


def test_readers_of_one_start_average_into_one_and_others_are_refused(tmp_path):
    import json

    import torch
    from safetensors.torch import load_file, save_file

    from qa.scorer.train import average

    def reader(name, seed, init_seed, value):
        folder = tmp_path / name
        folder.mkdir()
        save_file({"span.weight": torch.full((2, 3), value).half()}, str(folder / "reader.safetensors"))
        meta = {"layers": 6, "seed": seed, "init_seed": init_seed, "train_seconds": 10.0}
        (folder / "reader.json").write_text(json.dumps(meta))
        return folder

    a, b, c = reader("a", 1, 9, 1.0), reader("b", 2, 9, 2.0), reader("c", 3, 9, 6.0)
    meta = average([a, b, c], tmp_path / "soup")
    weights = load_file(str(tmp_path / "soup" / "reader.safetensors"))["span.weight"]
    assert weights.dtype == torch.float16 and torch.equal(weights.float(), torch.full((2, 3), 3.0))
    assert meta["seed"] == [1, 2, 3] and meta["averaged"] == 3 and meta["train_seconds"] == 30.0
    assert json.loads((tmp_path / "soup" / "reader.json").read_text()) == meta
    other_start = reader("d", 4, 8, 1.0)
    with pytest.raises(SystemExit, match="one --init-seed"):
        average([a, other_start], tmp_path / "mixed")
    with pytest.raises(SystemExit, match="two or more"):
        average([a], tmp_path / "alone")
    assert not (tmp_path / "mixed").exists()


def test_the_abstention_trade_off_reads_declined_at_fixed_answered_shares_and_the_auc():
    from qa.evaluate import trade_off

    # answerable at 0.1 .. 1.0; unanswerable at 0.05, 0.15, ..., 0.45 and one at 0.95
    answerable = [round(0.1 * i, 2) for i in range(1, 11)]
    unanswerable = [0.05, 0.15, 0.25, 0.35, 0.45, 0.95]
    text = trade_off(answerable + unanswerable, [True] * 10 + [False] * 6, rates=(0.9, 0.5))
    # 0.9 answered: threshold at the 10th percentile of the answerable (0.19): 0.05 and 0.15 declined;
    # 0.5 answered: threshold 0.55: all but 0.95 declined. AUC: the share of (answerable, unanswerable)
    # pairs ordered rightly, here 10 + 9 + 8 + 7 + 6 + 1 = 41 of 60.
    assert text == f"0.333 at 0.90 answered | 0.833 at 0.50 answered; AUC {41 / 60:.3f}"
    assert trade_off([0.5], [True]) == ""


def test_the_confidence_table_counts_every_answer_even_scores_above_one():
    from qa.evaluate import reliability
    from qa.scorer.data import Question
    from qa.types import Answer, Citation, Snippet

    def answered(text: str, confidence: float) -> Answer:
        return Answer("q", (Snippet(text, Citation("x:0-1", "x", 0, 1), confidence),), False, confidence=confidence)

    gold = Question("1", "q", 0, "d", ((0, "Paris"),))
    unanswerable = Question("2", "q", 0, "d", ())
    answers = [answered("Paris is big.", 0.1), answered("Rome.", 0.9), answered("Paris.", 1.3)]
    assert reliability(answers[:2], [gold, gold]) == "0.0-0.2: 1.00 (n=1) | 0.8-1.0: 0.00 (n=1)"
    # --scorer none's similarity scores run to 1.5: the last row takes them, and says so.
    assert reliability(answers, [gold, gold, unanswerable]) == "0.0-0.2: 1.00 (n=1) | 0.8 and up: 0.00 (n=2)"


def test_scorer_evaluation_limits_each_split_and_answers_each_question_once(assistant: Assistant):
    """`qa eval --limit N` keeps the first N questions of every split, as the retrieval table does."""
    from qa.evaluate import Question, evaluate_scorers

    sosa, france = ("What does SOSA do?", ("SOSA",)), ("What is the capital of France?", ("Paris",))
    asked = [(sosa, 0), (france, 1), (sosa, 2), (france, 30), (sosa, 31), (sosa, 40)]
    questions = [Question(f"q{i}", q, gold, "d", article) for i, ((q, gold), article) in enumerate(asked)]
    vectors = assistant.embedder.embed([q.text for q in questions])
    before = assistant.settings
    results = evaluate_scorers(assistant, questions, vectors, before, ("reader",), limit=2)["scorer reader"]
    assert assistant.settings == before
    assert {name: m["questions"] for name, m in results.items()} == {"all": 2, "tune 0-23": 2, "report 24-47": 2}
    # Each split's first two: SOSA and France (declined), in both halves.
    for name in results:
        assert (results[name]["answered"], results[name]["snippet_accuracy@1"]) == (0.5, 0.5), name


def test_a_question_longer_than_the_readers_window_is_answered(assistant: Assistant):
    """Up to the 2,000-character limit: the reader cuts such a question to fit its window."""
    question = ("What does SOSA do, given the arrangement between the two defense departments " * 30)[:1999] + "?"
    answer = assistant.ask(question)
    assert len(question) == 2000 and answer.best is not None and "SOSA" in answer.best.text
    assert assistant.ask_many([question, "What does SOSA do?"])[0] == answer


def _hotpot_items() -> list[dict]:
    """Two HotpotQA-style questions (original layout) sharing one paragraph."""
    film = ["Harbour Lights is a 1952 drama film.", " It was directed by Ana Duarte."]
    duarte = ["Ana Duarte was a Portuguese film director.", " She was born in Lisbon in 1911."]
    tram = ["The Lisbon tram network opened in 1873.", " Its yellow cars climb the steep hills."]
    return [
        {
            "question": "Where was the director of Harbour Lights born?",
            "answer": "Lisbon",
            "supporting_facts": [["Harbour Lights", 1], ["Ana Duarte", 1]],
            "context": [["Harbour Lights", film], ["Ana Duarte", duarte], ["Lisbon tram", tram]],
        },
        {
            "question": "Is the Lisbon tram older than Harbour Lights?",
            "answer": "yes",
            "supporting_facts": [["Lisbon tram", 0], ["Harbour Lights", 0]],
            "context": [["Lisbon tram", tram], ["Harbour Lights", film]],
        },
    ]


def test_hotpot_supporting_sentences_load_at_their_offsets_in_either_layout(tmp_path: Path):
    from qa.evaluate import is_hotpot, load_hotpot

    items = _hotpot_items()
    hugging_face = [
        {
            **item,
            "supporting_facts": {
                "title": [t for t, _ in item["supporting_facts"]],
                "sent_id": [i for _, i in item["supporting_facts"]],
            },
            "context": {"title": [t for t, _ in item["context"]], "sentences": [s for _, s in item["context"]]},
        }
        for item in items
    ]
    loaded = []
    for name, data in (("original.json", items), ("hf.json", hugging_face)):
        (tmp_path / name).write_text(json.dumps(data))
        assert is_hotpot(tmp_path / name)
        loaded.append(load_hotpot(tmp_path / name))
    assert loaded[0] == loaded[1]
    docs, questions = loaded[0]
    assert len(docs) == 3  # the shared paragraphs are one source each
    text = {d.doc_id: d.text for d in docs}
    assert [text[d][a:b] for d, a, b in questions[0].support] == [
        "It was directed by Ana Duarte.",
        "She was born in Lisbon in 1911.",
    ]
    assert [text[d][a:b] for d, a, b in questions[1].support] == [
        "The Lisbon tram network opened in 1873.",
        "Harbour Lights is a 1952 drama film.",
    ]
    squad = ROOT / "tests" / "data" / "seed_questions.json"
    assert not is_hotpot(squad)


def test_hotpot_scores_read_what_the_snippets_show():
    from qa.evaluate import MultiHop, score_multihop
    from qa.types import Answer, Citation, Snippet

    def snip(doc: str, start: int, end: int, text: str = "...") -> Snippet:
        return Snippet(text, Citation(f"{doc}:{start}-{end}", doc, start, end), 0.5)

    bridge = MultiHop("Where was the director born?", "Lisbon", (("film", 36, 66), ("duarte", 43, 74)))
    yes_no = MultiHop("Is the tram older?", "yes", (("tram", 0, 39), ("film", 0, 36)))
    top = snip("duarte", 43, 74, "She was born in Lisbon in 1911.")
    answered = Answer(
        bridge.text, (top, snip("film", 30, 40)), False, confidence=0.8, phrase=snip("duarte", 59, 65, "Lisbon")
    )
    declined = Answer(yes_no.text, (), True, "weak", (snip("film", 0, 10), snip("duarte", 0, 20)), 0.1)
    m = score_multihop([answered, declined], [bridge, yes_no], lambda s: s.citation.source)
    # Both shown snippets of the first meet its supporting sentences (of both articles); the second
    # was declined: its related passages are read, the first meets a supporting sentence, the tram's
    # never shows. Only the first has a span answer, held by its top snippet, phrase exact.
    assert m == {
        "questions": 2,
        "answered": 0.5,
        "top_is_support": 1.0,
        "both_articles_shown": 0.5,
        "top_holds_answer": 1.0,
        "right_when_answered": 1.0,
        "phrase_f1": 1.0,
    }


def test_the_seed_sweep_reads_each_run_s_calibration_line_and_ranks_by_their_sum():
    import importlib.util

    spec = importlib.util.spec_from_file_location("scorer_seeds", ROOT / "benchmarks" / "scorer_seeds.py")
    assert spec is not None and spec.loader is not None
    seeds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seeds)
    log = (
        "[ 377.3s] calibration questions: right sentence first 0.821 (fusion weight 0.2); "
        "unanswerable declined 0.322 at 0.90 answered, 0.470 at 0.80\n[ 377.3s] done"
    )
    assert seeds.calibration_figures(log) == (0.821, 0.322)
    assert seeds.calibration_figures("[ 2.0s] 13259 training questions") is None
    figures = {"s1": (0.821, 0.322), "s5": (0.832, 0.367), "average": (0.833, 0.348), "s3": (0.826, 0.334)}
    assert seeds.ranked(figures) == ["s5", "average", "s3", "s1"]
