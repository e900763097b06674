"""Batch question files: every input and output format, resume, bad lines, citations that resolve."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from qa import batch
from qa.cli import main

QUESTIONS = [
    "Which missiles does Japan produce under U.S. license?",
    "What is the capital of Australia?",
    "Who signed the MOU for the United States?",
]


def run(*args: str, input: str | bytes | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), input=input)


@pytest.fixture
def files(tmp_path):
    txt = tmp_path / "q.txt"
    txt.write_text("\n".join(QUESTIONS) + "\n")
    table = tmp_path / "q.csv"
    with table.open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["id", "question", "answer", "team"])
        w.writerow(["a1", QUESTIONS[0], "Patriot missiles", "red"])
        w.writerow(["a2", QUESTIONS[1], "Canberra", "blue"])
        w.writerow(["a3", QUESTIONS[2], "Lloyd Austin", "red"])
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text("\n".join(json.dumps({"id": f"j{i}", "question": q}) for i, q in enumerate(QUESTIONS)) + "\n")
    return {"txt": txt, "csv": table, "jsonl": jsonl}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["txt", "csv", "jsonl"])
def test_each_input_format_gives_one_cited_row_per_question(seed_index, files, tmp_path, fmt):
    out = tmp_path / "answers.jsonl"
    result = run("batch", str(files[fmt]), "-o", str(out), "--index", str(seed_index))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["question"] for r in rows] == QUESTIONS
    assert [r["abstained"] for r in rows] == [False, True, False]
    assert "Lloyd Austin" in rows[2]["answer"] and rows[2]["citation"]["source"].endswith(".txt")
    assert rows[1]["reason"] and rows[1]["supporting"]


@pytest.mark.slow
def test_csv_columns_carry_through_and_gold_answers_give_accuracy(seed_index, files, tmp_path):
    out = tmp_path / "answers.jsonl"
    result = run("batch", str(files["csv"]), "-o", str(out), "--index", str(seed_index))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a1", "a2", "a3"]
    assert [r["team"] for r in rows] == ["red", "blue", "red"]
    assert [r["correct"] for r in rows] == [True, False, True]
    assert "accuracy 66.7% on 3 with answers" in result.output


@pytest.mark.slow
def test_stdin_questions_to_csv_output(seed_index, tmp_path):
    out = tmp_path / "answers.csv"
    result = run("batch", "-", "-o", str(out), "--index", str(seed_index), input="\n".join(QUESTIONS))
    assert result.exit_code == 0
    rows = list(csv.DictReader(out.open(newline="")))
    assert [r["question"] for r in rows] == QUESTIONS
    assert rows[0]["citation_id"] and rows[0]["abstained"] == "False"


@pytest.mark.slow
def test_markdown_report_shows_every_citation(seed_index, files, tmp_path):
    out = tmp_path / "answers.md"
    run("batch", str(files["txt"]), "-o", str(out), "--index", str(seed_index))
    report = out.read_text()
    assert report.startswith("# Answers")
    assert "**Not in the sources:**" in report and "**Summary:** 3 questions" in report
    jsonl = tmp_path / "a.jsonl"
    run("batch", str(files["txt"]), "-o", str(jsonl), "--index", str(seed_index))
    for row in map(json.loads, jsonl.read_text().splitlines()):
        for s in ([{"citation": row["citation"]}] if row["citation"] else []) + row["supporting"]:
            assert f"[{s['citation']['id']}]" in report


@pytest.mark.slow
def test_every_citation_in_a_batch_resolves_to_the_same_text(seed_index, assistant, files, tmp_path):
    out = tmp_path / "answers.jsonl"
    run("batch", str(files["txt"]), "-o", str(out), "--index", str(seed_index), "-k", "4")
    checked = 0
    for row in map(json.loads, out.read_text().splitlines()):
        pairs = [(row["answer"], row["citation"])] if row["citation"] else []
        pairs += [(s["text"], s["citation"]) for s in row["supporting"]]
        for text, citation in pairs:
            cited = json.loads(run("cite", citation["id"], "--index", str(seed_index), "--json").output)
            assert cited["text"] == text == assistant.cite(citation["id"]).text
            checked += 1
    assert checked >= 8


@pytest.mark.slow
def test_bad_lines_are_reported_in_their_rows_and_the_run_goes_on(seed_index, tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"What does SOSA do?\n   \n\xff\xfe broken bytes\n" + b"why " * 1000 + b"\nWho signed the MOU?\n")
    out = tmp_path / "answers.jsonl"
    result = run("batch", str(path), "-o", str(out), "--index", str(seed_index))
    assert result.exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["error"] for r in rows] == [
        "",
        "line 2 is empty",
        "line 3 is not valid UTF-8",
        "the question is 3,999 characters long; the limit is 2,000: ask a shorter one",
        "",
    ]
    assert rows[0]["answer"] and rows[4]["answer"]
    assert "3 errors" in result.output


@pytest.mark.slow
def test_resume_skips_answered_ids_and_repairs_a_torn_last_row(seed_index, files, tmp_path):
    out = tmp_path / "answers.jsonl"
    run("batch", str(files["jsonl"]), "-o", str(out), "--index", str(seed_index))
    lines = out.read_text().splitlines()
    out.write_text(lines[0] + "\n" + lines[1][:40])  # as if killed while writing the second row
    result = run("batch", str(files["jsonl"]), "-o", str(out), "--index", str(seed_index), "--resume")
    assert "1 already done" in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["j0", "j1", "j2"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "then"), [("a.jsonl", "run again with --resume"), ("a.md", "run again to answer them all")]
)
def test_an_interrupted_batch_says_once_how_to_go_on_in_its_format(
    seed_index, files, tmp_path, monkeypatch, name, then
):
    """Ctrl-C mid-run: the rows so far stay, and the one line says what to do; --resume only where
    it works (it reads .jsonl and .csv back, not Markdown)."""
    answered = []

    def interrupted(assistant, rows, writer, **kwargs):  # type: ignore[no-untyped-def]
        answered.append(rows[0].id)
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "run", interrupted)
    result = run("batch", str(files["txt"]), "-o", str(tmp_path / name), "--index", str(seed_index))
    assert answered == ["1"] and result.exit_code == 130
    assert result.output == f"interrupted: the rows answered so far are in {tmp_path / name}; {then}\n"


@pytest.mark.slow
def test_csv_without_a_question_column_is_a_clear_error(seed_index, tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("id,text\n1,hello\n")
    result = run("batch", str(path), "-o", str(tmp_path / "a.jsonl"), "--index", str(seed_index))
    assert result.exit_code == 1 and "no 'question' column (found: id, text)" in result.output


@pytest.mark.slow
def test_unknown_extension_asks_for_a_format(seed_index, tmp_path):
    path = tmp_path / "q.docx"
    path.write_text("x")
    result = run("batch", str(path), "-o", str(tmp_path / "a.jsonl"), "--index", str(seed_index))
    assert result.exit_code == 1 and "--input-format" in result.output


@pytest.mark.slow
def test_batch_run_answers_like_ask(assistant):
    rows = list(batch.read_rows("\n".join(QUESTIONS).encode(), "txt"))
    stream = io.StringIO()
    summary = batch.run(assistant, rows, batch.Writer(stream, "jsonl"), batch=2)
    assert summary.answered == 2 and summary.abstained == 1
    got = [json.loads(line)["answer"] for line in stream.getvalue().splitlines()]
    want = [a.snippets[0].text if a.snippets else None for a in map(assistant.ask, QUESTIONS)]
    assert got == want


def test_a_quote_never_closed_is_reported_with_the_lines_it_took_not_read_as_one_question():
    data = b'id,question\n1,Who led it?\nq2,"What is 42 metres tall?\n3,How far did it fly?\n4,What was the budget?\n'
    rows = list(batch.read_rows(data, "csv"))
    assert [r.id for r in rows] == ["1", "q2"] and not rows[0].error
    assert rows[1].error == (
        "row 2 (lines 3-5) has a quote in its 'question' field that is not closed where the field ends, "
        "so it took in the lines after it; close the quote or remove it"
    )
    # a question quoted over two lines is still one question
    rows = list(batch.read_rows(b'id,question\n1,"Who led\nthe project?"\n2,Where?\n', "csv"))
    assert [(r.question, r.error) for r in rows] == [("Who led the project?", ""), ("Where?", "")]


def test_csv_row_with_an_unquoted_comma_is_reported_not_cut():
    rows = list(batch.read_rows(b"id,question\n1,What is X, really?\n2,What does SOSA do?\n", "csv"))
    assert rows[0].error == "row 1 has more fields than the header; put quotes around text with commas"
    assert None not in rows[0].extra and rows[1].error == "" and rows[1].question == "What does SOSA do?"


def test_the_question_file_is_never_overwritten_by_the_answers(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": QUESTIONS[0]}) + "\n")
    before = path.read_bytes()
    (tmp_path / "link.jsonl").symlink_to(path)
    for output in (path, tmp_path / "." / "q.jsonl", tmp_path / "link.jsonl"):
        result = run("batch", str(path), "-o", str(output), "--index", str(tmp_path / "no-index"))
        assert result.exit_code == 1, result.output
        assert (
            result.output.strip()
            == f"error: {output}: this is the question file; write the answers to another file (-o)"
        )
    assert path.read_bytes() == before


def test_an_answer_file_that_cannot_be_written_is_a_one_line_error(tmp_path, files):
    missing = tmp_path / "no-such-folder" / "a.jsonl"
    result = run("batch", str(files["txt"]), "-o", str(missing), "--index", str(tmp_path / "no-index"))
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert f"no folder {missing.parent}" in result.output and not missing.parent.exists()
    result = run("batch", str(files["txt"]), "-o", str(tmp_path), "--format", "jsonl", "--index", str(tmp_path))
    assert result.exit_code == 1 and "is a folder" in result.output


def test_two_questions_with_one_id_are_refused_before_any_is_answered(tmp_path):
    """A question without an id takes its line number, which may be another question's id: --resume
    would then skip a question never answered, so the file is refused."""
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": "2", "question": QUESTIONS[0]}) + "\n" + json.dumps({"question": QUESTIONS[1]}))
    out = tmp_path / "a.jsonl"
    result = run("batch", str(path), "-o", str(out), "--index", str(tmp_path / "no-index"))
    assert result.exit_code == 1 and "two questions have the id '2'" in result.output and not out.exists()
    with pytest.raises(batch.InputError, match="id 'a1'"):
        list(batch.read_rows(b"id,question\na1,Who?\na1,What?\n", "csv", "q.csv"))
    assert [r.id for r in batch.read_rows(b"id,question\na1,Who?\n,What?\n", "csv")] == ["a1", "2"]


@pytest.mark.parametrize(
    ("name", "data"),
    [("q.txt", b""), ("q.txt", b"\n  \n\n"), ("q.csv", b"id,question\n"), ("q.jsonl", b"\n\n"), ("-", b"")],
)
def test_a_question_file_without_questions_is_refused(tmp_path, name, data):
    out = tmp_path / "a.jsonl"
    if name == "-":
        result = run("batch", "-", "-o", str(out), "--index", str(tmp_path), input=data)
        label = "standard input"
    else:
        (tmp_path / name).write_bytes(data)
        label = str(tmp_path / name)
        result = run("batch", label, "-o", str(out), "--index", str(tmp_path))
    assert (result.exit_code, result.output) == (1, f"error: {label}: holds no questions; give one per line (or row)\n")
    assert not out.exists()


@pytest.mark.parametrize(
    ("data", "fmt", "hint"),
    [
        (b"Question;ID\nWhat?;1\n", "csv", "separated by ';': save the file with commas (.csv) or tabs (.tsv)"),
        (b"question,id\nWhat?,1\n", "tsv", "separated by commas: name the file .csv"),
        (b"id\tquestion\n1\tWhat?\n", "csv", "separated by tabs: name the file .tsv"),
        (b"id,text\n1,hi\n", "csv", "add a header row with a question column"),
    ],
)
def test_a_header_without_a_question_column_says_what_to_fix(data, fmt, hint):
    with pytest.raises(batch.InputError, match="no 'question' column") as caught:
        list(batch.read_rows(data, fmt, f"q.{fmt}"))
    assert str(caught.value).endswith(hint)


def test_a_jsonl_line_that_is_not_an_object_says_what_to_write():
    rows = list(batch.read_rows(b'{"question": "Who?"}\n[1, 2]\n{broken\n', "jsonl"))
    assert rows[1].error == 'line 2 is not a JSON object; write {"question": "..."}'
    assert rows[2].error.startswith("line 3 is not valid JSON (")


@pytest.mark.parametrize("data", [bytes(range(256)) * 12, "id,question\n1,What?\n".encode("utf-16")])
def test_a_question_file_that_is_not_utf8_text_is_one_error_not_a_row_each(data):
    with pytest.raises(batch.InputError) as caught:
        list(batch.read_rows(data, "csv", "q.csv"))
    assert str(caught.value) == "q.csv: is not UTF-8 text (a binary file, or another encoding); save it as UTF-8"
