"""The web UI's API, through gradio_client against a real server on a free port."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from qa import Assistant

from .conftest import SEED_FILE, HashEmbedder, free_port, shared_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, embedder):  # type: ignore[no-untyped-def]
    """A UI server over its own copy of the sample corpus (uploads and removals change it)."""
    from qa.web import build_app, launch

    corpus = tmp_path_factory.mktemp("web-corpus")
    shutil.copy(SEED_FILE, corpus / SEED_FILE.name)
    index_dir = tmp_path_factory.mktemp("web-index")
    Assistant.build(corpus, index_dir, embedder=embedder)
    assistant = Assistant.open(index_dir, embedder=embedder)
    port = free_port()
    demo = launch(build_app(assistant), port=port, block=False)
    yield {"url": f"http://127.0.0.1:{port}/", "corpus": corpus, "assistant": assistant}
    demo.close()


@pytest.fixture(scope="module")
def client(server):  # type: ignore[no-untyped-def]
    from gradio_client import Client

    return Client(server["url"], verbose=False, analytics_enabled=False)


def text_of(message: dict) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if isinstance(block, dict))


def test_chat_answers_with_a_cited_snippet_and_opens_it_in_the_viewer(client):
    history, citations, viewer, box = client.predict(
        "Which missiles does Japan produce under U.S. license?", [], 3, api_name="/chat"
    )
    reply = text_of(history[-1])
    assert history[-1]["role"] == "assistant" and box == ""
    assert "Patriot missiles" in reply and "which Japan produces under U.S. license" in reply
    assert "[1]" in reply and "us\\-japan" not in reply and "us-japan-defense-cooperation-2024.txt" in reply
    assert "<mark>The revision was promptly put into practice" in viewer
    assert "Citation id <code>" in viewer


def test_follow_up_questions_are_new_questions_in_the_same_chat(client):
    history, *_ = client.predict("What does SOSA do?", [], 3, api_name="/chat")
    history, *_ = client.predict("What is the PJHQ being rebranded as?", history, 3, api_name="/chat")
    assert len(history) == 4
    assert "Japan Joint Operations Center" in text_of(history[-1])


def test_off_topic_chat_says_not_in_the_sources_with_related_passages(client):
    history, picked, viewer, _ = client.predict("What is the capital of Australia?", [], 3, api_name="/chat")
    reply = text_of(history[-1])
    assert reply.startswith("**Not in the sources.**") and "Related passages" in reply
    # No related passage is opened as if it answered: the viewer says so until one is picked.
    assert picked["value"] is None and picked["label"] == "Related passages (the sources do not answer this)"
    assert "The sources do not answer this question." in viewer and "<mark>" not in viewer
    history, picked, viewer, _ = client.predict("What does SOSA do?", [], 3, api_name="/chat")
    assert picked["value"] and picked["label"] == "Citations in the last answer" and "<mark>" in viewer


def test_a_declined_answer_names_the_missing_terms_as_the_user_wrote_them():
    from qa.types import Answer
    from qa.web import answer_markdown

    reply = answer_markdown(Answer("q", (), True, "the sources never mention 'F-35', 'SOSA'"))
    assert reply.startswith("**Not in the sources.** The sources never mention 'F-35', 'SOSA'.")


def test_empty_question_is_a_clear_error_not_a_trace(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="the question is empty"):
        client.predict("   ", [], 3, api_name="/chat")


def test_citation_and_quote_lookup(client, server):
    answer = server["assistant"].ask("Who signed the MOU for the United States?")
    viewer = client.predict(answer.best.citation.id, api_name="/cite")
    assert "Lloyd Austin" in viewer and "<mark>" in viewer
    table = client.predict("japan produces under\nU.S. license", api_name="/quote")
    assert table["data"][0][0] == "normalized" and table["data"][0][6].count(":") == 1
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="is not a citation id"):
        client.predict("../../etc/passwd", api_name="/cite")


def test_batch_upload_gives_a_table_and_a_results_file(client, tmp_path):
    from gradio_client import handle_file

    questions = tmp_path / "questions.txt"
    questions.write_text("What does SOSA do?\nWhat is the capital of Australia?\n")
    table, result_file, status = client.predict(handle_file(str(questions)), "jsonl", 2, api_name="/batch")
    assert [row[1] for row in table["data"]] == ["What does SOSA do?", "What is the capital of Australia?"]
    rows = [json.loads(line) for line in Path(result_file).read_text().splitlines()]
    assert rows[0]["citation"]["id"] and rows[1]["abstained"] is True
    assert status.startswith("2 questions: 1 answered, 1 abstained")


def test_uploaded_document_is_indexed_escaped_and_removable(client, server, tmp_path):
    from gradio_client import handle_file

    doc = tmp_path / "crafted notes.md"
    doc.write_text("# Crafted\n\nThe <script>alert('x')</script> Okapi Foundation funds zebra research in Kenya.\n")
    table, note, _ = client.predict([handle_file(str(doc))], api_name="/upload")
    assert "crafted notes.md" in [row[0] for row in table["data"]]
    assert (server["corpus"] / "crafted notes.md").exists()
    history, *_ = client.predict("What does the Okapi Foundation fund?", [], 1, api_name="/chat")
    reply = text_of(history[-1])
    assert "zebra research" in reply and "<script>" not in reply and "&lt;script&gt;" in reply
    # Another client, started after the upload, removes it too: the source list is the index's now,
    # not the one the page was built with.
    from gradio_client import Client

    other = Client(server["url"], verbose=False, analytics_enabled=False)
    table, note, _ = other.predict("crafted notes.md", api_name="/remove")
    assert "crafted notes.md" not in [row[0] for row in table["data"]]
    assert not (server["corpus"] / "crafted notes.md").exists()
    with pytest.raises(Exception, match="is not a source"):
        other.predict("crafted notes.md", api_name="/remove")


def test_unsupported_upload_is_refused_clearly(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / "tool.sh"
    bad.write_text("rm -rf /")
    with pytest.raises(AppError, match="Invalid file type|unsupported type"):
        client.predict([handle_file(str(bad))], api_name="/upload")


def test_an_upload_that_cannot_be_read_says_why_and_leaves_no_copy(client, server, tmp_path):
    from gradio_client import handle_file

    noise = tmp_path / "noise.txt"
    noise.write_bytes(bytes(range(256)) * 8)
    table, note, _ = client.predict([handle_file(str(noise))], api_name="/upload")
    assert note == "Indexed 0 new or changed file(s); 1 skipped: " + (
        "noise.txt: looks like a binary file, not text; remove it or give it the right extension; "
        "not added (its copy was removed again)."
    )
    assert "noise.txt" not in [row[0] for row in table["data"]] and not (server["corpus"] / "noise.txt").exists()


def test_the_question_is_shown_as_typed_not_as_markup(client):
    history, *_ = client.predict("Is <img src=x> **bold** about SOSA?", [], 1, api_name="/chat")
    shown = text_of(history[-2])
    assert "<img" not in shown and "&lt;img src=x&gt;" in shown and "\\*\\*bold\\*\\*" in shown


def test_sources_endpoint_lists_the_ingest_report(client):
    rows = client.predict(api_name="/sources")
    assert any(r[0] == "us-japan-defense-cooperation-2024.txt" and r[5] > 0 for r in rows)


def test_password_protection_refuses_clients_without_the_login(server):
    from gradio_client import Client

    from qa.web import build_app, launch

    port = free_port()
    demo = launch(build_app(server["assistant"]), port=port, block=False, auth=("reader", "s3cret"))
    try:
        with pytest.raises(Exception, match="(?i)auth|login|401|403"):
            Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False)
        client = Client(f"http://127.0.0.1:{port}/", auth=("reader", "s3cret"), verbose=False, analytics_enabled=False)
        history, *_ = client.predict("What does SOSA do?", [], 1, api_name="/chat")
        assert "SOSA" in text_of(history[-1])
    finally:
        demo.close()


def listening_hosts(port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The local addresses of the sockets listening on ``port``, from the kernel's tables."""
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for table in ("tcp", "tcp6"):
        path = Path("/proc/net") / table
        for line in path.read_text().splitlines()[1:] if path.exists() else []:
            local, state = line.split()[1], line.split()[3]
            host, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(host)  # each 32-bit word is in host (little-endian) order
                found.append(ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))))
    return found


def test_server_listens_on_localhost_only_by_default(server):
    """The fixture launched with launch()'s default host: the kernel shows only loopback listeners."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp to read listening sockets from")
    hosts = listening_hosts(int(server["url"].rsplit(":", 1)[1].strip("/")))
    assert hosts and all(h.is_loopback for h in hosts), hosts


def test_a_port_in_use_is_one_clear_error(server):
    from qa.errors import InputError
    from qa.web import build_app, launch

    port = int(server["url"].rsplit(":", 1)[1].strip("/"))  # the fixture's server holds it
    with pytest.raises(InputError, match=f"cannot listen on 127.0.0.1 at port {port} .*pick another port"):
        launch(build_app(server["assistant"]), port=port, block=False)


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("999.1.1.1", "is not an address or a name this machine can resolve"),
        ("192.0.2.1", "is no address of this machine's network interfaces"),  # TEST-NET-1: never assigned
    ],
)
def test_a_host_this_machine_cannot_listen_on_is_named(host, says):
    from qa.errors import InputError
    from qa.web import check_host

    with pytest.raises(InputError, match=f"--host '{re.escape(host)}' {re.escape(says)}; use 127.0.0.1"):
        check_host(host)
    check_host("127.0.0.1")  # the default passes


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--port", "99999"], "is not a port from 1 to 65535"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_the_ui_script_refuses_a_bad_port_or_flag_before_loading_anything(args, says, tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "QA_PORT": "", "XDG_STATE_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "ui/app.py", "--index", str(tmp_path / "none"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr


def test_uploads_over_the_size_limit_are_refused(server, tmp_path):
    from gradio_client import Client, handle_file

    from qa.web import build_app, launch

    port = free_port()
    demo = launch(build_app(server["assistant"]), port=port, block=False, max_file_mb=0.01)
    try:
        big = tmp_path / "big.txt"
        big.write_text("Words about tides and harbours. " * 2000)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False)
        with pytest.raises(Exception, match="(?i)maximum file size|too large|413"):
            client.predict([handle_file(str(big))], api_name="/upload")
        assert not (server["corpus"] / "big.txt").exists()
    finally:
        demo.close()


def snippet(text: str, start: int, end: int, source: str = "a.txt", score: float = 0.5):  # type: ignore[no-untyped-def]
    from qa.types import Citation, Snippet

    return Snippet(text, Citation(f"0123456789ab:{start}-{end}", source, start, end), score)


def test_supporting_snippets_never_repeat_the_answer():
    from qa.types import Answer
    from qa.web import answer_citations, answer_markdown

    best = snippet("The fleet sailed at dawn.", 0, 25, score=0.9)
    answer = Answer(
        "When did the fleet sail?",
        (
            best,
            snippet("The fleet sailed at dawn.", 0, 25, "b.txt"),  # the same words from another file
            snippet("sailed at dawn", 4, 18),  # a part of the answer
            snippet("It sailed at dawn. Rain fell.", 10, 40),  # overlaps the answer's span
            snippet("Rain fell all day.", 100, 118),
        ),
        abstained=False,
    )
    shown = answer_markdown(answer)
    assert shown.count("The fleet sailed at dawn.") == 1 and "Rain fell all day." in shown
    assert [cid for _, cid in answer_citations(answer)] == ["0123456789ab:0-25", "0123456789ab:100-118"]


def test_citation_list_shows_a_preview_and_markers_link_to_their_citation():
    from qa.types import Answer
    from qa.web import answer_citations, answer_markdown

    long = "Patriot missiles, which Japan produces under U.S. license, were sent to replenish stocks in 2024."
    answer = Answer("q", (snippet(long, 1010, 1108),), abstained=False)
    ((label, cid),) = answer_citations(answer)
    assert label.startswith("[1] a.txt · “Patriot missiles, which Japan produces under U.S.") and label.endswith("…”")
    assert "chars" not in label and cid == "0123456789ab:1010-1108"
    assert "[**[1]**](#qa-cite=0123456789ab:1010-1108)" in answer_markdown(answer)


def test_the_exact_phrase_is_bold_inside_its_sentence_with_the_sources_own_spacing():
    from qa.types import Answer
    from qa.web import answer_markdown

    text = "Japan exports Patriot missiles, which it makes under license."
    phrase = snippet("Patriot missiles", 114, 130)
    answer = Answer("q", (snippet(text, 100, 100 + len(text)),), abstained=False, phrase=phrase)
    shown = answer_markdown(answer)
    assert "Japan exports <strong>Patriot missiles</strong>, which it makes under license." in shown
    assert "**Exact answer:** Patriot missiles" in shown


def test_an_image_only_pdf_is_listed_as_needing_ocr_not_as_indexed(tmp_path):
    from qa.web import SOURCE_COLUMNS, sources_rows, table_html

    from .conftest import build_fake

    scan = shared_path("pdfs", "grayscale-image.pdf")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(scan, corpus / scan.name)
    shutil.copy(SEED_FILE, corpus / SEED_FILE.name)
    build_fake(corpus, tmp_path / "index")
    rows = {r[0]: r for r in sources_rows(Assistant.open(tmp_path / "index", embedder=HashEmbedder()))}
    assert rows["grayscale-image.pdf"][1] == "no text layer (needs OCR)" and rows[SEED_FILE.name][1] == "indexed"
    table = table_html(SOURCE_COLUMNS, list(rows.values()))
    assert "image-only PDF? run OCR on it first)</td>" in table


def test_tables_escape_their_cells():
    from qa.web import table_html

    table = table_html(["a", "b"], [["<script>x</script>", 0.12345], ["", None]])
    assert "&lt;script&gt;" in table and "<script>" not in table and ">0.123<" in table
    assert table.count("<tr>") == 2  # the header and one row: empty rows are left out


@pytest.mark.slow
def test_a_process_that_ends_during_the_warm_up_exits_cleanly(seed_index: Path) -> None:
    """The UI warms the model up on a thread; a process that ends while it is still inside the
    model used to abort ("terminate called without an active exception", exit 134)."""
    import subprocess
    import sys

    script = "import sys\nfrom qa import Assistant\nfrom qa.web import build_app\n"
    script += "build_app(Assistant.open(sys.argv[1]))\n"
    done = subprocess.run(
        [sys.executable, "-c", script, str(seed_index)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terminate called" not in done.stderr


@pytest.mark.slow
def test_a_server_stopped_with_sigterm_removes_its_copies_of_the_sources(seed_index: Path, tmp_path: Path) -> None:
    """`kill PID` ends `qa serve` as Ctrl-C does: the temporary copies of the sources it shows go."""
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    port, temp = free_port(), tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "qa", "serve", "--index", str(seed_index), "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.5)
        assert [p for p in temp.iterdir() if p.name.startswith("qa-originals-")]
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 128 + signal.SIGTERM
        assert not any(p.name.startswith("qa-originals-") for p in temp.iterdir())
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
