"""The `qa` command through click's runner and through its real installed entry point."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from qa.cli import main

from .conftest import SEED_FILE

# `qa index` builds at the automatic precision, which depends on the CPU.
pytestmark = pytest.mark.precision


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory, embedder):  # type: ignore[no-untyped-def]
    """An index built by `qa index` itself."""
    corpus = tmp_path_factory.mktemp("cli-corpus")
    shutil.copy(SEED_FILE, corpus / SEED_FILE.name)
    (corpus / "empty.txt").write_text("")
    index_dir = tmp_path_factory.mktemp("cli-index")
    result = CliRunner().invoke(main, ["index", str(corpus), "--index", str(index_dir)])
    assert result.exit_code == 0, result.output
    assert "indexed   us-japan-defense-cooperation-2024.txt: 6,942 chars, 32 sentences" in result.output
    assert "skipped   empty.txt: file is empty" in result.output
    return index_dir


def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), input=input)


@pytest.mark.slow
def test_ask_prints_the_snippet_citation_confidence_and_exact_answer(cli_index):
    result = run("ask", "What is the PJHQ being rebranded as?", "--index", str(cli_index), "-k", "1")
    assert result.exit_code == 0
    assert "Japan Joint Operations Center (J-JOC)" in result.output
    assert "us-japan-defense-cooperation-2024.txt, chars 5774-6001" in result.output
    assert "Answer (confidence 0." in result.output and "(confidence 0." in result.output
    assert "Exact answer: “" in result.output and "Japan Joint Operations Center" in result.output.split("Exact")[1]


@pytest.mark.slow
def test_ask_json_is_the_whole_answer(cli_index):
    result = run("ask", "Who signed the MOU for the United States?", "--index", str(cli_index), "--json")
    data = json.loads(result.output)
    assert data["abstained"] is False and len(data["supporting"]) == 2
    assert "Lloyd Austin" in data["answer"] and "Lloyd Austin" in data["phrase"]["text"]
    assert set(data["citation"]) == {"id", "source", "start", "end", "page"}
    assert data["confidence"] == data["phrase"]["confidence"] and data["scorer"].startswith("reader:")


@pytest.mark.slow
def test_ask_reads_the_question_from_stdin(cli_index):
    result = run("ask", "-", "--index", str(cli_index), "--json", input="What does SOSA do?\n")
    assert json.loads(result.output)["question"] == "What does SOSA do?"


@pytest.mark.slow
def test_off_topic_question_abstains_in_plain_words(cli_index):
    result = run("ask", "What is the capital of Australia?", "--index", str(cli_index))
    assert result.exit_code == 0
    assert result.output.startswith("The sources do not answer this:")
    assert "Related passages:" in result.output


@pytest.mark.slow
def test_cite_round_trips_an_answer_citation(cli_index):
    answer = json.loads(run("ask", "What does SOSA do?", "--index", str(cli_index), "--json").output)
    cid = answer["citation"]["id"]
    passage = json.loads(run("cite", cid, "--index", str(cli_index), "--json").output)
    assert passage["text"] == answer["answer"]
    shown = run("cite", cid, "--index", str(cli_index), "--context", "20")
    assert f"[{cid}]" in shown.output and ">>>" in shown.output


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cite", "not-an-id"], "is not a citation id"),
        (["cite", "000000000000:1-5"], "not in this index"),
        (["ask", "   "], "the question is empty"),
        (["ask", "Who led\udcff?"], "the byte \\xff at character 8, which is not UTF-8 text"),
    ],
)
def test_user_mistakes_get_one_line_errors_and_exit_1(cli_index, args, message):
    result = run(*args, "--index", str(cli_index))
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", "-k", "0", "x"], "Invalid value for '-k': 0 is not in the range 1<=x<=50 (see `qa ask --help`)"),
        (
            ["index", "--chunk-tokens", "abc"],
            "Invalid value for '--chunk-tokens': 'abc' is not a valid integer (see `qa index --help`)",
        ),
        (["--frobnicate"], "No such option '--frobnicate' (see `qa --help`)"),
        (
            ["serve", "--port", "99999"],
            "Invalid value for '--port': 99999 is not in the range 1<=x<=65535 (see `qa serve --help`)",
        ),
        (["ask"], "Missing argument 'QUESTION' (see `qa ask --help`)"),
        (
            ["index", "--wait", "-5"],
            "Invalid value for '--wait': -5.0 is not in the range x>=0 (see `qa index --help`)",
        ),
        (
            ["eval", "--data", __file__, "--limit", "0"],
            "Invalid value for '--limit': 0 is not in the range x>=1 (see `qa eval --help`)",
        ),
        (
            ["eval", "--data", __file__, "--scorers", "reader,foo"],
            "Invalid value for --scorers: 'foo' is not one of reader, cheap, none (see `qa eval --help`)",
        ),
        (
            ["eval", "--data", __file__, "--modes", "dense,foo"],
            "Invalid value for --modes: 'foo' is not one of dense, lexical, hybrid (see `qa eval --help`)",
        ),
    ],
)
def test_flags_click_refuses_get_one_line_errors_and_exit_1(args, message):
    result = CliRunner().invoke(main, args, prog_name="qa")
    assert (result.exit_code, result.output) == (1, f"error: {message}\n")


def test_a_folder_that_is_not_there_is_named_with_what_to_check(tmp_path):
    result = run("index", str(tmp_path / "nowhere"), "--index", str(tmp_path / "index"))
    assert (result.exit_code, result.output) == (
        1,
        f"error: nothing to index: {tmp_path / 'nowhere'}: does not exist; check the path\n",
    )
    assert not (tmp_path / "index").exists()  # a build that fails leaves no folder it made
    (tmp_path / "empty").mkdir()
    (tmp_path / "mine").mkdir()  # a folder the user made stays, with only the lock file in it
    for index in (tmp_path / "new" / "deeper", tmp_path / "mine"):
        result = run("index", str(tmp_path / "empty"), "--index", str(index))
        assert result.exit_code == 1 and "nothing could be indexed" in result.output
    assert not (tmp_path / "new").exists() and (tmp_path / "mine").is_dir()


@pytest.mark.slow
def test_a_model_that_cannot_load_is_one_whole_line(tmp_path):
    (tmp_path / "a.txt").write_text("Owls hunt at night.")
    result = run("index", str(tmp_path), "--index", str(tmp_path / "index"), "--model", "no-such-model-here")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    line = result.output.strip()
    assert line.startswith("error: embedding model 'no-such-model-here' could not be loaded offline (")
    assert line.endswith("); give the path of a local sentence-transformers model")
    assert line.count("(") == line.count(")") and line.count("'") % 2 == 0  # not cut inside a quote


def test_missing_index_says_how_to_build_it(tmp_path):
    result = run("ask", "anything", "--index", str(tmp_path / "none"))
    assert result.exit_code == 1 and "qa index" in result.output


@pytest.mark.slow
def test_sources_lists_indexed_and_skipped_files(cli_index):
    result = run("sources", "--index", str(cli_index), "--json")
    data = {f["source"]: f for f in json.loads(result.output)}
    assert data["us-japan-defense-cooperation-2024.txt"]["chunks"] > 0
    assert data["empty.txt"]["status"] == "skipped"


@pytest.mark.slow
def test_reindexing_unchanged_corpus_embeds_nothing(cli_index):
    result = run("index", "--index", str(cli_index), "--json")
    report = json.loads(result.output)
    assert report["embedded_chunks"] == 0
    assert {f["status"] for f in report["files"]} == {"unchanged", "skipped"}


@pytest.mark.slow
def test_installed_entry_point_answers(cli_index):
    qa = Path(sys.executable).with_name("qa")
    result = subprocess.run(
        [str(qa), "ask", "Which missiles does Japan produce under U.S. license?", "--index", str(cli_index), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Patriot missiles" in json.loads(result.stdout)["answer"]
    version = subprocess.run([sys.executable, "-m", "qa", "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and "0.1.0" in version.stdout


@pytest.mark.parametrize(
    ("text", "phrase", "shown"),
    [
        ("It exports Patriot missiles, which Japan makes.", "Patriot missiles", "It exports <Patriot missiles>, which"),
        ("The chief (Ana Ruiz) spoke.", "Ana Ruiz", "The chief (<Ana Ruiz>) spoke."),
        ("Named “Falcon”  in\n2024.", "Falcon", "Named “<Falcon>” in 2024."),
        ("Falcon led it.", "Falcon", "<Falcon> led it."),
    ],
)
def test_the_highlighted_phrase_sits_in_its_sentence_with_no_space_added(text, phrase, shown):
    import re

    from qa.cli import format_answer
    from qa.types import Answer, Citation, Snippet

    at = 100 + text.index(phrase)
    sentence = Snippet(text, Citation("c1", "notes.txt", 100, 100 + len(text)), 0.9)
    answer = Answer(
        "q?",
        (sentence,),
        False,
        confidence=0.9,
        phrase=Snippet(phrase, Citation("c2", "notes.txt", at, at + len(phrase)), 0.9),
    )
    styled = format_answer(answer, color=True).splitlines()[1]
    plain = re.sub(r"\x1b\[1m\x1b\[4m(.*?)\x1b\[0m", r"<\1>", styled)
    assert shown in plain and "\x1b" not in plain
    assert format_answer(answer, color=False).splitlines()[1] == plain.replace("<", "").replace(">", "")
