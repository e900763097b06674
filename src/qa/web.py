"""The Gradio web UI: ``build_app(assistant)`` returns the Blocks; nothing is launched at import.

Every button calls the same Assistant, batch and quote functions the CLI uses; this module only
turns their results into Markdown, HTML and tables. All source text is escaped before it is shown.
"""

from __future__ import annotations

import atexit
import base64
import errno
import html
import os
import queue
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import gradio as gr

from . import batch, pages
from .assistant import MAX_QUESTION_CHARS, Assistant
from .errors import InputError, QAError
from .ingest import PAGE_SEPARATOR
from .manifest import read_manifest
from .settings import DEFAULT_CORPUS
from .types import Answer, FileReport, Passage, Snippet, unmentioned_note

QUESTION_TYPES = [".txt", ".csv", ".tsv", ".jsonl"]
SOURCE_TYPES = [".txt", ".md", ".pdf"]
SOURCE_COLUMNS = ["file", "status", "pages", "characters", "sentences", "chunks", "notes"]
BATCH_COLUMNS = ["id", "question", "answer", "citation", "confidence", "abstained", "reason / error"]
WARM_UP_EXIT_WAIT_S = 120.0  # the longest an ending process waits for the UI's warm-up
QUOTE_COLUMNS = ["match", "similarity", "source", "page", "span", "text", "citation id"]
_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~<>&$])")


def md_escape(text: str) -> str:
    """Source text made inert for Markdown and HTML, on one line."""
    flat = " ".join(text.split())
    flat = html.escape(flat, quote=False)
    flat = _MD_SPECIAL.sub(r"\\\1", flat.replace("&amp;", "\x00").replace("&lt;", "\x01").replace("&gt;", "\x02"))
    flat = flat.replace("\x00", "&amp;").replace("\x01", "&lt;").replace("\x02", "&gt;")
    return re.sub(r"^(\d+)\.", r"\1\\.", re.sub(r"^([-+])", r"\\\1", flat))


def preview(text: str, limit: int = 70) -> str:
    """The start of ``text`` on one line, cut at a word boundary."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def citation_label(n: int, s: Snippet) -> str:
    """``[n] source, p. 3 · “The start of the quote…”``: what the citation list shows."""
    c = s.citation
    page = f", p. {c.page}" if c.page is not None else ""
    return f"[{n}] {c.source}{page} · “{preview(s.text, 60)}”"


def shown_snippets(answer: Answer) -> tuple[Snippet, ...]:
    """The snippets the chat shows, in order: supporting ones that repeat the answer are left out."""
    if answer.abstained:
        return answer.related
    if not answer.snippets:
        return ()
    best = answer.snippets[0]
    said = " ".join(best.text.split()).casefold()
    kept = [best]
    for s in answer.snippets[1:]:
        text = " ".join(s.text.split()).casefold()
        overlaps = (
            s.citation.source == best.citation.source
            and s.citation.start < best.citation.end
            and best.citation.start < s.citation.end
        )
        if not (overlaps or text in said or said in text):
            kept.append(s)
    return tuple(kept)


def marker(n: int, s: Snippet) -> str:
    """A citation marker that opens its citation in the source viewer when clicked (see web.js)."""
    return f"[**[{n}]**](#qa-cite={s.citation.id})"


def answer_markdown(answer: Answer) -> str:
    """An answer as chat Markdown: numbered verbatim quotes with clickable markers and scores."""
    shown = shown_snippets(answer)
    if answer.abstained:
        reason = answer.reason[:1].upper() + answer.reason[1:]  # not str.capitalize(): it lowercases 'F-35'
        lines = [f"**Not in the sources.** {md_escape(reason)}."]
        if shown:
            # Folded, so the plain "not in the sources" stays what the user sees first.
            lines += ["", "<details><summary>Related passages (not answers)</summary>"]
            lines += _quotes(shown, 1) + ["", "</details>"]
        return "\n".join(lines)
    lines = [f"**Answer** · confidence {answer.confidence:.2f}"] + _quotes(shown[:1], 1, answer.phrase)
    if answer.phrase is not None:
        lines += ["", f"**Exact answer:** {md_escape(answer.phrase.text)}"]
    if answer.missing_terms:
        note = unmentioned_note(answer.missing_terms)
        lines += ["", f"**Note:** {md_escape(note[:1].upper() + note[1:])}."]
    if len(shown) > 1:
        lines += ["", "**Supporting**"] + _quotes(shown[1:], 2)
    return "\n".join(lines)


def _quotes(snippets: tuple[Snippet, ...], start: int, phrase: Snippet | None = None) -> list[str]:
    """Numbered quotes; the exact answer ``phrase`` (inside the first) in bold."""
    out = []
    for n, s in enumerate(snippets, start):
        c = s.citation
        page = f", p. {c.page}" if c.page is not None else ""
        text = md_escape(s.text)
        if phrase is not None and n == start:
            a, b = phrase.citation.start - c.start, phrase.citation.end - c.start
            before, inside, after = s.text[:a], s.text[a:b], s.text[b:]
            # The source's own spacing around the phrase: none is added, none is lost.
            gap_before = " " if before[-1:].isspace() else ""
            gap_after = " " if after[:1].isspace() else ""
            text = f"{md_escape(before)}{gap_before}<strong>{md_escape(inside)}</strong>{gap_after}{md_escape(after)}"
        out += [
            "",
            f"> {text} {marker(n, s)}",
            "",
            f"<sub>{md_escape(c.source + page)} · `{c.id}` · confidence {s.score:.2f}</sub>",
        ]
    return out


def answer_citations(answer: Answer) -> list[tuple[str, str]]:
    """(label, citation id) for every snippet shown with an answer, in order."""
    return [(citation_label(n, s), s.citation.id) for n, s in enumerate(shown_snippets(answer), 1)]


def passage_html(passage: Passage, page_view: str = "") -> str:
    """The source viewer: the cited page (PDFs) or text highlighted in its context, with its place and id."""
    c = passage.citation
    page = f" · page {c.page}" if c.page is not None else ""
    e = html.escape
    text = f'<div class="qa-passage">…{e(passage.before)}<mark>{e(passage.text)}</mark>{e(passage.after)}…</div>'
    if page_view:
        text = f'<details class="qa-text"><summary>Extracted text</summary>{text}</details>'
    return (
        f'<div class="qa-viewer"><div class="qa-meta"><b>{e(c.source)}</b>{page} · characters {c.start}–{c.end}'
        f'</div><div class="qa-cid">Citation id <code>{e(c.id)}</code></div>{page_view}{text}</div>'
    )


class PageViews:
    """Cited PDF pages as highlighted images, with the original file offered beside them.

    The originals are served from copies in a folder of their own (named by content hash, so a
    file changed on disk is never shown under an old citation); only that folder is opened to
    Gradio's file route, never the corpus folder.
    """

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self.folder = Path(tempfile.mkdtemp(prefix="qa-originals-")).resolve()
        atexit.register(shutil.rmtree, self.folder, True)
        self._copying = threading.Lock()
        gr.set_static_paths([self.folder])  # Gradio's file route serves this folder, inline

    def original(self, doc_id: str, source: str) -> Path | None:
        """A served copy of the indexed file ``source``, or None when it is gone or has changed."""
        copy = self.folder / doc_id / Path(source).name
        if copy.exists():
            return copy
        entry = self.assistant.manifest.files.get(source)
        path = Path(entry.path if entry is not None and entry.path else "")
        with self._copying:
            if copy.exists():
                return copy
            if not path.is_file() or not pages.same_file(path, doc_id):
                return None
            copy.parent.mkdir(parents=True, exist_ok=True)
            partial = copy.with_name(copy.name + ".part")
            shutil.copyfile(path, partial)
            partial.replace(copy)
        return copy

    def html(self, passage: Passage, stress: tuple[tuple[int, int], ...] = ()) -> str:
        """The cited page as an image with the citation (and ``stress`` spans, document offsets) marked."""
        c = passage.citation
        if c.page is None or not c.source.lower().endswith(".pdf"):
            return ""
        prefix = c.id.split(":", 1)[0]
        rows = self.assistant.index.rows_with_prefix(prefix)
        if not rows:
            return ""
        doc = self.assistant.index.document(rows[0]).document
        copy = self.original(doc.doc_id, doc.source)
        if copy is None:
            return (
                '<p class="qa-note">The original file has changed or gone since it was indexed; '
                "re-index it to see the page.</p>"
            )
        start, end = pages.page_range(doc.page_starts, len(doc.text), c.page, len(PAGE_SEPARATOR))
        spans = [(c.start, c.end), *stress]
        ranges = [(max(a, start) - start, min(b, end) - start) for a, b in spans if a < end and b > start]
        try:
            view = pages.render_page(copy, c.page, doc.text[start:end], ranges)
        except Exception as exc:  # a page pdfium cannot draw still has its text below
            return f'<p class="qa-note">This page cannot be drawn ({html.escape(str(exc))}); its text is below.</p>'
        url = "gradio_api/file=" + urllib.parse.quote(str(copy))
        note = ""
        if view.found and view.found[0] < pages.MIN_FOUND:
            note = '<p class="qa-note">The quote could not be placed on the page; see the extracted text.</p>'
        elif c.end > end:
            note = f'<p class="qa-note">The quote continues on page {c.page + 1}.</p>'
        data = base64.b64encode(view.data).decode()
        e = html.escape
        return (
            f'<div class="qa-page"><img src="data:{pages.MIME};base64,{data}" width="{view.width}" '
            f'height="{view.height}" style="width:100%;height:auto" '
            f'alt="Page {c.page} of {e(doc.source)}, the quote highlighted"></div>{note}'
            f'<div class="qa-links"><a href="{url}#page={c.page}" target="_blank" rel="noopener">'
            f"Open the PDF at page {c.page}</a> · "
            f'<a href="{url}" download="{e(Path(doc.source).name)}">Download the PDF</a></div>'
        )


def status_label(f: FileReport) -> str:
    """A file's status for the Sources table: a PDF without a text layer says so instead of 'indexed'."""
    if f.status == "indexed" and f.chars == 0:
        return "no text layer (needs OCR)" if f.source.lower().endswith(".pdf") else "empty"
    if f.status == "skipped" and "run OCR" in f.error:
        return "no text layer (needs OCR)"
    return f.status


def sources_rows(assistant: Assistant) -> list[list[Any]]:
    rows = []
    for f in assistant.sources():
        notes = "; ".join(f.warnings) if f.status != "skipped" else f.error
        rows.append([f.source, status_label(f), f.pages or "", f.chars, f.sentences, f.chunks, notes])
    return rows


def table_html(headers: list[str], rows: Any) -> str:
    """Rows (lists, or a Dataframe's value) as an HTML table; every cell escaped and labelled for phones."""
    if hasattr(rows, "values"):  # pandas, as a Dataframe hands its value to a listener
        rows = rows.values.tolist()
    rows = [r for r in rows or [] if any(v not in (None, "") for v in r)]
    if not rows:
        return '<p class="qa-empty">Nothing here yet.</p>'
    e = html.escape

    def cell(value: Any) -> str:
        if value is None or value != value:  # None or NaN
            return ""
        return e(f"{value:.3f}" if isinstance(value, float) else str(value))

    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td data-label="{e(h)}">{cell(v)}</td>' for h, v in zip(headers, r, strict=False)) + "</tr>"
        for r in rows
    )
    return f'<div class="qa-table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def header_markdown(assistant: Assistant, ready: bool) -> str:
    counts = assistant.manifest.counts
    state = "**Ready.**" if ready else "**Loading the model…** (questions can be asked in a moment)"
    return (
        "## qa\nAnswers are sentences copied from your sources, each with its citation. "
        f"{counts['documents']} document(s), {counts['chunks']} passages indexed. {state}"
    )


def _fail(exc: QAError) -> gr.Error:
    return gr.Error(str(exc), print_exception=False)


def build_app(assistant: Assistant) -> gr.Blocks:
    """The whole UI over one Assistant (chat, citation lookup, batch, sources)."""

    views = PageViews(assistant)
    ready = threading.Event()

    def warm() -> None:
        """Load the model and touch the index now, so the first question is answered at once."""
        try:
            assistant.ask("What is this about?", k=1)
            import pypdfium2  # noqa: F401  (the first cited page should not pay for the import)
        except Exception:  # an empty index or a missing extra: the question itself will say what is wrong
            pass
        finally:
            ready.set()

    threading.Thread(target=warm, name="qa-warm-up", daemon=True).start()
    # A process that ends while the warm-up is still inside the model aborts ("terminate called
    # without an active exception"): on exit, let the warm-up finish first.
    atexit.register(ready.wait, WARM_UP_EXIT_WAIT_S)

    def viewer_html(citation_id: str) -> str:
        passage = assistant.cite(citation_id)
        return passage_html(passage, views.html(passage))

    def ask(question: str, history: list[dict[str, Any]] | None, k: float) -> tuple[Any, Any, str, str]:
        with assistant.reading():  # the answer and its first passage from one generation
            try:
                answer = assistant.ask(question, k=int(k))
            except QAError as exc:
                raise _fail(exc) from None
            choices = answer_citations(answer)
            # A declined answer's passages are only related: none is opened as if it were the answer.
            first = choices[0][1] if choices and not answer.abstained else None
            viewer = passage_html(assistant.cite(first)) if first else (NOT_ANSWERED_VIEW if choices else "")
        history = list(history or []) + [
            {"role": "user", "content": md_escape(answer.question)},  # shown as typed, never as markup
            {"role": "assistant", "content": answer_markdown(answer)},
        ]
        label = CITES_LABEL if not answer.abstained else "Related passages (the sources do not answer this)"
        return history, gr.update(choices=choices, value=first, label=label), viewer, ""

    def show(citation_id: str | None) -> str:
        if not citation_id:
            return ""
        try:
            return viewer_html(citation_id)
        except QAError as exc:
            raise _fail(exc) from None

    def show_page(citation_id: str | None) -> Any:
        """The viewer again with the cited page drawn, for PDF citations (others stay as they are)."""
        if not citation_id or not citation_id.strip():
            return gr.update()
        try:
            passage = assistant.cite(citation_id)
        except QAError:
            return gr.update()
        page = views.html(passage)
        return passage_html(passage, page) if page else gr.update()

    def open_marker(request: str) -> tuple[Any, str]:
        """A clicked citation marker: ``id|nonce`` (the nonce makes a second click on it count)."""
        citation_id = request.split("|", 1)[0]
        return gr.update(value=citation_id), show(citation_id)

    def clear() -> tuple[list[Any], Any, str, str]:
        return [], gr.update(choices=[], value=None), "", ""

    def readiness() -> Iterator[tuple[str, Any]]:
        yield header_markdown(assistant, ready.is_set()), gr.update(interactive=ready.is_set())
        if not ready.is_set():
            ready.wait()
            yield header_markdown(assistant, True), gr.update(interactive=True)

    def header() -> str:
        return header_markdown(assistant, ready.is_set())

    def find(quote: str) -> list[list[Any]]:
        try:
            matches = assistant.find_quote(quote)
        except QAError as exc:
            raise _fail(exc) from None
        if not matches:
            gr.Info("Not found in the sources: no exact, normalised or close match.")
        return [
            [
                m.kind,
                round(m.similarity, 3),
                m.citation.source,
                m.citation.page or "",
                f"{m.citation.start}-{m.citation.end}",
                m.text,
                m.citation.id,
            ]
            for m in matches
        ]

    def run_batch(file: str | None, fmt: str, k: float) -> Iterator[tuple[list[list[Any]], Any, str]]:
        if not file:
            raise gr.Error("Upload a question file first (.txt, .csv, .tsv or .jsonl).", print_exception=False)
        try:
            rows = list(batch.read_rows(Path(file).read_bytes(), batch.input_format(file, None), Path(file).name))
        except QAError as exc:
            raise _fail(exc) from None
        out = Path(tempfile.mkdtemp(prefix="qa-batch-")) / f"answers.{fmt}"
        records: queue.Queue[dict[str, Any] | None] = queue.Queue()
        result: dict[str, Any] = {}

        def work() -> None:
            try:
                with out.open("w", encoding="utf-8", newline="") as stream:
                    result["summary"] = batch.run(
                        assistant, rows, batch.Writer(stream, fmt), k=int(k), on_row=lambda rec, _s: records.put(rec)
                    )
            except Exception as exc:  # reported to the user below; the worker must always finish
                result["error"] = exc
            finally:
                records.put(None)

        threading.Thread(target=work, daemon=True).start()
        table: list[list[Any]] = []
        while (rec := records.get()) is not None:
            table.append(_batch_row(rec))
            if records.empty():
                yield table, None, f"{len(table)} of {len(rows)} answered…"
        if "error" in result:
            raise gr.Error(f"The batch stopped: {result['error']}", print_exception=False)
        yield table, str(out), result["summary"].line()

    def add(files: list[str] | None, progress: gr.Progress = gr.Progress()) -> tuple[Any, str, Any]:  # noqa: B008
        if not files:
            raise gr.Error("Choose one or more .txt, .md or .pdf files to add.", print_exception=False)
        try:
            report = assistant.add(files, on_progress=lambda stage, done, total: progress((done, total), desc=stage))
        except QAError as exc:
            raise _fail(exc) from None
        skipped = [f.error for f in report.files if f.status == "skipped"]
        why = "; ".join(skipped[:5]) + (f"; and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        return _sources_update(
            f"Indexed {report.count('indexed')} new or changed file(s); {len(skipped)} skipped"
            + (f": {md_escape(why)}." if skipped else ".")
        )

    def remove(source: str | None) -> tuple[Any, str, Any]:
        if not source:  # none picked, or the confirmation was cancelled
            return _sources_update("Nothing removed: pick a source, then confirm.")
        try:
            line = assistant.remove(source).line()
        except QAError as exc:
            raise _fail(exc) from None
        return _sources_update(md_escape(line[:1].upper() + line[1:]) + ".")

    def _sources_update(message: str) -> tuple[Any, str, Any]:
        names = [f.source for f in assistant.sources()]
        return sources_rows(assistant), message, gr.update(choices=names, value=None)

    def refresh() -> tuple[Any, str, Any]:
        return _sources_update("")

    # No calls home: analytics off for this app, without touching the process environment.
    with gr.Blocks(title="qa · cited answers from your documents", analytics_enabled=False) as demo:
        heading = gr.Markdown(header_markdown(assistant, False), elem_id="header")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=280):
                        chat = gr.Chatbot(
                            label="Conversation",
                            show_label=False,
                            height=520,
                            elem_id="chat",
                            autoscroll=False,  # web.js brings the new question and its answer into view
                            placeholder="Ask about the sources; every answer is a quoted, cited sentence.",
                        )
                        with gr.Row(elem_id="ask-row"):
                            question = gr.Textbox(
                                show_label=False,
                                placeholder="Ask a question…",
                                scale=6,
                                min_width=160,
                                elem_id="question",
                                # Well above the question limit: a longer paste reaches the app whole
                                # and gets its message, instead of being cut silently by the browser.
                                max_length=10 * MAX_QUESTION_CHARS,
                            )
                            ask_button = gr.Button(
                                "Ask", variant="primary", scale=1, min_width=64, elem_id="ask", interactive=False
                            )
                            clear_button = gr.Button("Clear", scale=1, min_width=64, elem_id="clear")
                        k = gr.Slider(1, 10, value=assistant.settings.snippets, step=1, label="Snippets per answer")
                    with gr.Column(scale=2, min_width=280):
                        cites = gr.Radio(label=CITES_LABEL, choices=[], elem_id="citations")
                        viewer = gr.HTML(elem_id="viewer")
                        marker_pick = gr.Textbox(visible="hidden", elem_id="cite-pick")
                scroll = "() => window.qaShowLastQuestion && window.qaShowLastQuestion()"
                for asked in (
                    ask_button.click(
                        ask, [question, chat, k], [chat, cites, viewer, question], api_name="chat", concurrency_limit=4
                    ),
                    question.submit(
                        ask,
                        [question, chat, k],
                        [chat, cites, viewer, question],
                        api_visibility="private",
                        concurrency_limit=4,
                    ),
                ):
                    asked.then(None, js=scroll).then(show_page, cites, viewer, api_visibility="private")
                cites.input(show, cites, viewer, api_visibility="private")
                marker_pick.change(open_marker, marker_pick, [cites, viewer], api_visibility="private")
                clear_button.click(clear, None, [chat, cites, viewer, question], api_visibility="private")
                chat.clear(clear, None, [chat, cites, viewer, question], api_visibility="private")
                demo.load(readiness, None, [heading, ask_button], api_visibility="private", concurrency_limit=None)
            with gr.Tab("Citation lookup", id="lookup"):
                with gr.Row():
                    with gr.Column():
                        cid = gr.Textbox(label="Citation id", placeholder="4f8f1c73a273:2291-2461", elem_id="cid")
                        cid_button = gr.Button("Show passage", elem_id="cite")
                        cid_view = gr.HTML()
                    with gr.Column():
                        quote = gr.Textbox(
                            label="Quote",
                            lines=4,
                            placeholder="Paste text to find where it comes from",
                            elem_id="quote",
                        )
                        quote_button = gr.Button("Find sources", elem_id="find")
                quote_table = gr.Dataframe(headers=QUOTE_COLUMNS, interactive=False, visible="hidden")
                quote_view = gr.HTML(table_html(QUOTE_COLUMNS, []), elem_id="quote-table")
                quote_table.change(
                    lambda t: table_html(QUOTE_COLUMNS, t), quote_table, quote_view, api_visibility="private"
                )
                cid_button.click(show, cid, cid_view, api_name="cite")
                quote_button.click(find, quote, quote_table, api_name="quote")
            with gr.Tab("Batch", id="batch"):
                with gr.Row():
                    qfile = gr.File(
                        label="Question file (.txt, .csv, .tsv, .jsonl)",
                        file_types=QUESTION_TYPES,
                        elem_id="batch-file",
                    )
                    with gr.Column():
                        fmt = gr.Dropdown(list(batch.OUTPUT_FORMATS), value="csv", label="Answer file format")
                        bk = gr.Slider(1, 10, value=assistant.settings.snippets, step=1, label="Snippets per answer")
                        run = gr.Button("Answer all", variant="primary")
                status = gr.Markdown(elem_id="batch-status")
                table = gr.Dataframe(headers=BATCH_COLUMNS, interactive=False, visible="hidden")
                table_view = gr.HTML(table_html(BATCH_COLUMNS, []), elem_id="batch-table")
                table.change(lambda t: table_html(BATCH_COLUMNS, t), table, table_view, api_visibility="private")
                result = gr.File(label="Answers")
                run.click(run_batch, [qfile, fmt, bk], [table, result, status], api_name="batch", concurrency_limit=2)
            with gr.Tab("Sources", id="sources"):
                # The Dataframes carry the API's tables; people see the same rows as HTML tables that
                # wrap long cells and turn into cards on a phone (the Dataframe widens the page there).
                sources = gr.Dataframe(
                    value=sources_rows(assistant), headers=SOURCE_COLUMNS, interactive=False, visible="hidden"
                )
                sources_view = gr.HTML(table_html(SOURCE_COLUMNS, sources_rows(assistant)), elem_id="sources-table")
                sources.change(lambda t: table_html(SOURCE_COLUMNS, t), sources, sources_view, api_visibility="private")
                note = gr.Markdown()
                with gr.Row():
                    uploads = gr.File(
                        label="Add documents", file_count="multiple", file_types=SOURCE_TYPES, elem_id="add-files"
                    )
                    with gr.Column():
                        add_button = gr.Button("Add and index", variant="primary")
                        # Any source the index has now, not only those the page was built with: an API
                        # client removes a file added after start (``remove`` refuses a name it lacks).
                        pick = gr.Dropdown(
                            [f.source for f in assistant.sources()],
                            label="Source to remove",
                            elem_id="remove-pick",
                            allow_custom_value=True,
                        )
                        remove_button = gr.Button("Remove from index", variant="stop")
                add_button.click(add, uploads, [sources, note, pick], api_name="upload", concurrency_id="index").then(
                    header, None, heading, api_visibility="private"
                )
                remove_button.click(
                    remove, pick, [sources, note, pick], api_name="remove", concurrency_id="index", js=CONFIRM_REMOVE
                ).then(header, None, heading, api_visibility="private")
                demo.load(refresh, None, [sources, note, pick], api_visibility="private")

        def list_sources() -> list[list[Any]]:
            return sources_rows(assistant)

        gr.api(list_sources, api_name="sources")  # type: ignore[attr-defined]  # exported, though not in __all__
    return cast(gr.Blocks, demo)


def _batch_row(rec: dict[str, Any]) -> list[Any]:
    c = rec.get("citation") or {}
    return [
        rec["id"],
        rec["question"],
        rec.get("answer") or "",
        c.get("id", ""),
        rec.get("confidence"),
        rec.get("abstained"),
        rec.get("error") or rec.get("reason") or "",
    ]


CITES_LABEL = "Citations in the last answer"
# The viewer under a declined answer: its related passages are listed, none is opened.
NOT_ANSWERED_VIEW = (
    '<div class="qa-viewer"><div class="qa-meta">The sources do not answer this question.</div>'
    "<div>Its related passages are listed above: pick one to see it in its source.</div></div>"
)
# Runs in the browser before the call: a cancelled confirmation sends no source, and nothing happens.
CONFIRM_REMOVE = (
    "(source) => (source && confirm('Remove ' + source + ' from the index? A file added here is also "
    "deleted from the corpus folder.')) ? source : null"
)


def ready_assistant(
    index_dir: Path,
    corpus: Path | None = None,
    *,
    update: bool = False,
    say: Callable[[str], None] | None = None,
) -> Assistant:
    """Open the index to serve; build it from ``corpus`` (default corpus/) only when there is none yet.

    An existing index is never rebuilt from another folder or with other settings: with
    ``update`` it is brought up to date from its own folders with its own settings, otherwise a
    stale one is served as it is and ``say`` is told which files changed.
    """
    say = say or (lambda message: None)
    manifest = read_manifest(index_dir)
    if manifest is None:
        Assistant.build(corpus or Path(DEFAULT_CORPUS), index_dir, progress=True, wait_s=600)
        return Assistant.open(index_dir)
    if corpus is not None and os.path.abspath(corpus) not in manifest.roots:
        say(
            f"note: {index_dir} was built from {', '.join(manifest.roots) or 'documents in memory'}; "
            f"--corpus {corpus} is not indexed into it (run `qa index {corpus} --index {index_dir}` for that)"
        )
    if update:
        Assistant.build(None, index_dir, progress=True, wait_s=600)
    assistant = Assistant.open(index_dir)
    changed = [] if update else assistant.changed()
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        say(
            f"note: {len(changed)} file(s) changed since {index_dir} was built ({shown}); serving it as it is; "
            f"run `qa index --index {index_dir}` or `qa serve --update` to update it"
        )
    return assistant


_BIND_ERRORS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)
ASSETS = Path(__file__).resolve().parent / "assets"  # packaged, so a wheel install has them too


def check_host(host: str) -> None:
    """InputError naming ``host`` when this machine cannot listen there (Gradio would only say it
    found no free port)."""
    hint = "use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError):
        raise InputError(f"--host {host!r} is not an address or a name this machine can resolve; {hint}") from None
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(address)  # port 0: any free one, only to learn whether the address is ours
        except OSError as exc:
            if exc.errno != errno.EADDRNOTAVAIL:
                return  # anything else (a permission) Gradio's own bind reports with its port
            raise InputError(f"--host {host!r} is no address of this machine's network interfaces; {hint}") from None


def launch(
    demo: gr.Blocks,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    auth: tuple[str, str] | None = None,
    share: bool = False,
    block: bool = True,
    max_file_mb: float = 50.0,
) -> gr.Blocks:
    """Start ``demo`` on ``host``:``port`` (localhost by default; no share link unless asked)."""
    check_host(host)
    css = [ASSETS / "style.css"] if (ASSETS / "style.css").exists() else None
    script = Path(__file__).with_name("web.js").read_text(encoding="utf-8")
    demo.queue(default_concurrency_limit=2)
    # `kill` (SIGTERM) ends a blocking server as Ctrl-C does: through Python's exit, so that the
    # clean-up registered with atexit runs (the temporary copies of the sources shown).
    main = threading.current_thread() is threading.main_thread()
    if block and main and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        demo.launch(
            server_name=host,
            server_port=port,
            auth=auth,
            share=share,
            css_paths=css,
            js=script,
            prevent_thread_lock=not block,
            max_file_size=f"{max(1, round(max_file_mb * 1000))}kb",
            quiet=not block,
            footer_links=["api"],
            theme=gr.themes.Soft(),
        )
    except OSError as exc:  # Gradio: "Cannot find empty port in range ..."; the OS: cannot bind the address
        if "port" not in str(exc).lower() and getattr(exc, "errno", None) not in _BIND_ERRORS:
            raise
        where = f"port {port}" if port else "a free port from 7860 to 7959"
        raise InputError(
            f"cannot listen on {host} at {where} ({' '.join(str(exc).split('. ')[0].split())}); "
            "pick another port with --port (or QA_PORT), or stop what is using it"
        ) from None
    return demo
