"""End to end in headless Chromium: ask, see the cited snippet and page, fit every tab, screenshot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, SEED_FILE, SHARED, free_port, shared_path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
PDF_TEXT = "crazyones-pdfa.pdf"  # one page of text, ligatures and curly quotes
PDF_IMAGE = "grayscale-image.pdf"  # a scan: no text layer
TABS = ["Chat", "Citation lookup", "Batch", "Sources"]
WIDTHS = [1366, 420]
BOT = "#chat .message-row.bot-row, #chat [data-testid='bot']"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The sample document, plus a text PDF and an image-only PDF when ../shared is there."""
    folder = tmp_path_factory.mktemp("browser-corpus")
    shutil.copy(SEED_FILE, folder / SEED_FILE.name)
    for name in (PDF_TEXT, PDF_IMAGE):
        if (SHARED / "pdfs" / name).exists():
            shutil.copy(SHARED / "pdfs" / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def index_dir(corpus, tmp_path_factory, embedder):  # type: ignore[no-untyped-def]
    from qa import Assistant

    folder = tmp_path_factory.mktemp("browser-index")
    Assistant.build(corpus, folder, embedder=embedder)
    return folder


@pytest.fixture(scope="module")
def page_url(index_dir, embedder):  # type: ignore[no-untyped-def]
    from qa import Assistant
    from qa.web import build_app, launch

    port = free_port()
    demo = launch(build_app(Assistant.open(index_dir, embedder=embedder)), port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def open_page(browser, url: str, width: int = 1366):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(url, wait_until="networkidle")
    page.locator("#header", has_text="Ready.").wait_for(timeout=60_000)
    return page


def ask(page, question: str, expect: str) -> None:  # type: ignore[no-untyped-def]
    page.locator("#question textarea").fill(question)
    page.locator("#ask").click()
    page.wait_for_function(
        "([q, e]) => { const c = document.querySelector('#chat'); return c && c.innerText.includes(q)"
        " && c.innerText.includes(e); }",
        arg=[question, expect],
        timeout=30_000,
    )


def viewer_id(page) -> str:  # type: ignore[no-untyped-def]
    return page.locator("#viewer .qa-cid code").inner_text()


def test_ask_shows_cited_snippet_and_opens_the_citation(browser, page_url):
    page = open_page(browser, page_url)
    ask(page, "Which missiles does Japan produce under U.S. license?", "Patriot")
    chat_text = page.locator("#chat").inner_text()
    assert "Patriot missiles, which Japan produces under U.S. license" in chat_text
    assert "us-japan-defense-cooperation-2024.txt" in chat_text
    # The first citation opens in the source viewer; choosing the second shows its passage instead.
    page.locator("#viewer mark").wait_for(timeout=15_000)
    assert "The revision was promptly" in page.locator("#viewer mark").inner_text()
    labels = page.locator("#citations label")
    assert "chars " not in labels.first.inner_text() and "“" in labels.first.inner_text()
    labels.nth(1).click()
    page.wait_for_function(
        "() => !document.querySelector('#viewer mark').innerText.startsWith('The revision')", timeout=15_000
    )
    assert viewer_id(page).count(":") == 1
    page.close()


def test_remove_asks_for_confirmation_and_does_nothing_when_cancelled(browser, tmp_path, embedder):
    from qa import Assistant
    from qa.web import build_app, launch

    from .conftest import SEED_FILE

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SEED_FILE, corpus / "seed.txt")
    (corpus / "owls.txt").write_text("Owls hunt at night.\n")
    Assistant.build(corpus, tmp_path / "index", embedder=embedder)
    assistant = Assistant.open(tmp_path / "index", embedder=embedder)
    port = free_port()
    demo = launch(build_app(assistant), port=port, block=False)
    try:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
        page.get_by_role("tab", name="Sources").click()
        page.get_by_label("Source to remove").click()
        page.get_by_role("option", name="owls.txt").click()
        dialogs: list[str] = []

        def answer(dialog, accept: bool) -> None:  # type: ignore[no-untyped-def]
            dialogs.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        page.once("dialog", lambda d: answer(d, False))
        page.get_by_role("button", name="Remove from index").click()
        page.get_by_text("Nothing removed").wait_for(timeout=15_000)
        assert "owls.txt" in assistant.manifest.files and "Remove owls.txt from the index?" in dialogs[0]
        page.get_by_label("Source to remove").click()
        page.get_by_role("option", name="owls.txt").click()
        page.once("dialog", lambda d: answer(d, True))
        page.get_by_role("button", name="Remove from index").click()
        page.get_by_text("Removed owls.txt from the index").wait_for(timeout=60_000)
        assert "owls.txt" not in assistant.manifest.files and (corpus / "owls.txt").exists()
        page.close()
    finally:
        demo.close()


def test_the_new_question_and_its_answer_stay_in_view(browser, page_url):
    page = open_page(browser, page_url)
    ask(page, "What does SOSA do?", "SOSA")
    ask(page, "Who signed the MOU for the United States?", "Austin")
    ask(page, "What is the PJHQ being rebranded as?", "Joint Operations Center")
    page.wait_for_timeout(500)
    chat = page.locator("#chat").bounding_box()
    last_question = page.locator("#chat .user-row, #chat [data-testid='user']").last
    answer = page.locator(BOT).last.locator("blockquote").first
    assert "PJHQ" in last_question.inner_text() and "Japan Joint Operations Center" in answer.inner_text()
    for item in (last_question.bounding_box(), answer.bounding_box()):
        assert chat["y"] <= item["y"] and item["y"] + item["height"] <= chat["y"] + chat["height"]
    page.close()


def test_citation_markers_open_their_citation_and_clear_empties_the_side_panel(browser, page_url):
    page = open_page(browser, page_url)
    ask(page, "Which missiles does Japan produce under U.S. license?", "Patriot")
    page.locator("#viewer .qa-cid code").wait_for(timeout=15_000)
    first = viewer_id(page)
    markers = page.locator("#chat a[href*='#qa-cite=']")
    assert markers.count() >= 2
    second = markers.nth(1).get_attribute("href").split("#qa-cite=")[1]
    assert second != first
    markers.nth(1).click()
    page.wait_for_function(f"() => document.querySelector('#viewer code').innerText === '{second}'", timeout=15_000)
    assert page.url.rstrip("/") + "/" == page_url  # the link was not followed
    markers.nth(0).click()
    page.wait_for_function(f"() => document.querySelector('#viewer code').innerText === '{first}'", timeout=15_000)
    page.locator("#clear").click()
    page.wait_for_function("() => !document.querySelector('#viewer .qa-viewer')", timeout=15_000)
    assert page.locator("#citations input").count() == 0
    assert "Patriot" not in page.locator("#chat").inner_text()
    page.close()


def test_a_pdf_citation_shows_the_page_with_the_quote_highlighted_and_the_original(browser, page_url):
    shared_path("pdfs", PDF_TEXT)
    page = open_page(browser, page_url)
    ask(page, "Who are the crazy ones?", PDF_TEXT)
    image = page.locator("#viewer .qa-page img")
    image.wait_for(timeout=15_000)
    assert image.get_attribute("src").startswith("data:image/webp;base64,")
    assert image.evaluate("img => img.complete && img.naturalWidth") > 500
    link = page.locator("#viewer a", has_text="Open the PDF at page 1")
    href = link.get_attribute("href")
    assert href.endswith("#page=1")
    response = page.request.get(page_url + href.split("#")[0])
    assert response.ok and response.body() == (SHARED / "pdfs" / PDF_TEXT).read_bytes()
    assert "inline" in response.headers.get("content-disposition", "")
    page.close()


def overflow(page) -> int:  # type: ignore[no-untyped-def]
    """How many pixels the page is wider than the window (0 when it fits)."""
    return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")


@pytest.mark.parametrize("width", WIDTHS)
def test_every_tab_fits_the_window_and_is_photographed(browser, page_url, tmp_path, width):
    page = open_page(browser, page_url, width)
    ARTIFACTS.mkdir(exist_ok=True)
    pdf = (SHARED / "pdfs" / PDF_TEXT).exists()
    if pdf:
        ask(page, "Who are the crazy ones?", PDF_TEXT)
        page.locator("#viewer .qa-page img").wait_for(timeout=15_000)
    else:
        ask(page, "Which missiles does Japan produce under U.S. license?", "Patriot")
    page.wait_for_timeout(800)
    problems = {}
    for tab in TABS:
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(400)
        if tab == "Batch":
            questions = tmp_path / "questions.txt"
            questions.write_text("What does SOSA do?\nWhat is the capital of Australia?\n")
            page.locator("#batch-file input[type=file]").set_input_files(str(questions))
            page.get_by_role("button", name="Answer all").click()
            page.locator("#batch-status", has_text="2 questions").wait_for(timeout=30_000)
            page.wait_for_timeout(500)
        if tab == "Sources" and pdf:
            page.wait_for_function(
                "() => document.querySelector('#sources-table').innerText.includes('no text layer (needs OCR)')",
                timeout=10_000,
            )
        if overflow(page) > 0:
            problems[tab] = overflow(page)
        page.screenshot(path=str(ARTIFACTS / f"{tab.lower().replace(' ', '-')}-{width}.png"), full_page=True)
    page.close()
    assert problems == {}, f"tabs wider than {width} px (by px): {problems}"


def test_header_counts_follow_add_and_remove(browser, page_url, tmp_path):
    import re

    page = open_page(browser, page_url)

    def documents() -> int:
        return int(re.search(r"(\d+) document", page.locator("#header").inner_text()).group(1))

    before = documents()
    note = tmp_path / "okapi notes.md"
    note.write_text("# Okapi\n\nThe Okapi Foundation funds zebra research in Kenya.\n")
    page.get_by_role("tab", name="Sources").click()
    page.locator("#add-files input[type=file]").set_input_files(str(note))
    page.get_by_role("button", name="Add and index").click()
    page.locator("#header", has_text=f"{before + 1} document(s)").wait_for(timeout=60_000)
    page.locator("#remove-pick input").fill("okapi notes.md")
    page.keyboard.press("Enter")
    page.once("dialog", lambda dialog: dialog.accept())  # the confirmation
    page.get_by_role("button", name="Remove from index").click()
    page.locator("#header", has_text=f"{before} document(s)").wait_for(timeout=60_000)
    page.close()


@pytest.mark.slow
def test_a_fresh_server_says_ready_then_answers_the_first_question_at_once(browser, corpus, index_dir):
    """Readiness is real: the model loads at start, and once the page says so the first answer comes
    at once. The bound is loose (this runs beside two other test processes on two cores, where it
    once took 1.8 s against a bound of 1 s): it catches a first answer that takes seconds; speed is
    what the benchmarks measure (`benchmarks/cold_start.py`, `benchmarks/query_speed.py`)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen(
        [sys.executable, "-m", "qa", "serve", "--index", str(index_dir), "--corpus", str(corpus), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        deadline = time.monotonic() + 120
        while True:
            try:
                page.goto(url, wait_until="networkidle")
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        page.locator("#header", has_text="Ready.").wait_for(timeout=120_000)
        assert page.locator("#ask").is_enabled()
        page.locator("#question textarea").fill("Which missiles does Japan produce under U.S. license?")
        started = time.monotonic()
        page.locator("#ask").click()
        page.wait_for_function(
            "() => document.querySelector('#chat').innerText.includes('Patriot')", timeout=30_000, polling=20
        )
        seconds = time.monotonic() - started
        page.close()
        assert seconds <= 5.0, f"first answer took {seconds:.2f} s after the page said ready"
    finally:
        server.terminate()
        server.wait(timeout=30)
