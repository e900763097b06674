"""End to end in headless Chromium: ask, see the cited snippet, open a citation, screenshot."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import free_port

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

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def page_url(seed_index, embedder):  # type: ignore[no-untyped-def]
    from qa import Assistant
    from qa.web import build_app, launch

    port = free_port()
    demo = launch(build_app(Assistant.open(seed_index, embedder=embedder)), port=port, block=False)
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


def test_ask_shows_cited_snippet_and_opens_the_citation(browser, page_url):
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(page_url, wait_until="networkidle")
    page.locator("#question textarea").fill("Which missiles does Japan produce under U.S. license?")
    page.locator("#ask").click()
    reply = page.locator("#chat .message.bot, #chat [data-testid='bot']").last
    reply.wait_for(timeout=30_000)
    page.wait_for_function(
        "() => document.querySelector('#chat') && document.querySelector('#chat').innerText.includes('Patriot')",
        timeout=30_000,
    )
    chat_text = page.locator("#chat").inner_text()
    assert "Patriot missiles, which Japan produces under U.S. license" in chat_text
    assert "us-japan-defense-cooperation-2024.txt" in chat_text
    # The first citation opens in the source viewer; choosing the second shows its passage instead.
    page.locator("#viewer mark").wait_for(timeout=15_000)
    assert "The revision was promptly" in page.locator("#viewer mark").inner_text()
    page.locator("#citations label").nth(1).click()
    page.wait_for_function(
        "() => !document.querySelector('#viewer mark').innerText.startsWith('The revision')", timeout=15_000
    )
    assert page.locator("#viewer .qa-cid code").inner_text().count(":") == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)
    page.locator("#question textarea").fill("What is the capital of Australia?")
    page.locator("#ask").click()
    page.wait_for_function(
        "() => document.querySelector('#chat').innerText.includes('Not in the sources')", timeout=30_000
    )
    page.wait_for_timeout(1500)  # let the source viewer finish its update before the picture
    page.screenshot(path=str(ARTIFACTS / "abstain.png"), full_page=True)
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
