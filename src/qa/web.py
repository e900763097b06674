"""The Gradio web UI: ``build_app(assistant)`` returns the Blocks; nothing is launched at import.

Every button calls the same Assistant, batch and quote functions the CLI uses; this module only
turns their results into Markdown, HTML and tables. All source text is escaped before it is shown.
"""

from __future__ import annotations

import html
import os
import queue
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import gradio as gr

from . import batch
from .assistant import Assistant
from .errors import QAError
from .manifest import read_manifest
from .settings import DEFAULT_CORPUS
from .types import Answer, Passage, Snippet

QUESTION_TYPES = [".txt", ".csv", ".tsv", ".jsonl"]
SOURCE_TYPES = [".txt", ".md", ".pdf"]
SOURCE_COLUMNS = ["file", "status", "pages", "characters", "sentences", "chunks", "notes"]
BATCH_COLUMNS = ["id", "question", "answer", "citation", "score", "abstained", "reason / error"]
QUOTE_COLUMNS = ["match", "similarity", "source", "page", "span", "text", "citation id"]
_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~<>&$])")


def md_escape(text: str) -> str:
    """Source text made inert for Markdown and HTML, on one line."""
    flat = " ".join(text.split())
    flat = html.escape(flat, quote=False)
    flat = _MD_SPECIAL.sub(r"\\\1", flat.replace("&amp;", "\x00").replace("&lt;", "\x01").replace("&gt;", "\x02"))
    flat = flat.replace("\x00", "&amp;").replace("\x01", "&lt;").replace("\x02", "&gt;")
    return re.sub(r"^(\d+)\.", r"\1\\.", re.sub(r"^([-+])", r"\\\1", flat))


def citation_label(n: int, s: Snippet) -> str:
    c = s.citation
    page = f", p. {c.page}" if c.page is not None else ""
    return f"[{n}] {c.source}{page}, chars {c.start}-{c.end}"


def answer_markdown(answer: Answer) -> str:
    """An answer as chat Markdown: numbered verbatim quotes with their citations and scores."""
    if answer.abstained:
        lines = [f"**Not in the sources.** {md_escape(answer.reason.capitalize())}."]
        if answer.related:
            # Folded, so the plain "not in the sources" stays what the user sees first.
            lines += ["", "<details><summary>Related passages (not answers)</summary>"]
            lines += _quotes(answer.related, 1) + ["", "</details>"]
        return "\n".join(lines)
    lines = [f"**Answer** · score {answer.snippets[0].score:.2f}"] + _quotes(answer.snippets[:1], 1)
    if len(answer.snippets) > 1:
        lines += ["", "**Supporting**"] + _quotes(answer.snippets[1:], 2)
    return "\n".join(lines)


def _quotes(snippets: tuple[Snippet, ...], start: int) -> list[str]:
    out = []
    for n, s in enumerate(snippets, start):
        out += [
            "",
            f"> {md_escape(s.text)} **[{n}]**",
            "",
            f"<sub>[{n}] {md_escape(citation_label(n, s)[len(f'[{n}] ') :])} · "
            f"`{s.citation.id}` · score {s.score:.2f}</sub>",
        ]
    return out


def answer_citations(answer: Answer) -> list[tuple[str, str]]:
    """(label, citation id) for every snippet shown with an answer, in order."""
    shown = answer.related if answer.abstained else answer.snippets
    return [(citation_label(n, s), s.citation.id) for n, s in enumerate(shown, 1)]


def passage_html(passage: Passage) -> str:
    """The source viewer: the cited text highlighted inside its context, with its place and id."""
    c = passage.citation
    page = f" · page {c.page}" if c.page is not None else ""
    e = html.escape
    return (
        f'<div class="qa-viewer"><div class="qa-meta"><b>{e(c.source)}</b>{page} · characters {c.start}–{c.end}'
        f'</div><div class="qa-cid">Citation id <code>{e(c.id)}</code></div>'
        f'<div class="qa-passage">…{e(passage.before)}<mark>{e(passage.text)}</mark>{e(passage.after)}…</div></div>'
    )


def sources_rows(assistant: Assistant) -> list[list[Any]]:
    rows = []
    for f in assistant.sources():
        notes = "; ".join(f.warnings) if f.status != "skipped" else f.error
        rows.append([f.source, f.status, f.pages or "", f.chars, f.sentences, f.chunks, notes])
    return rows


def _fail(exc: QAError) -> gr.Error:
    return gr.Error(str(exc), print_exception=False)


def build_app(assistant: Assistant) -> gr.Blocks:
    """The whole UI over one Assistant (chat, citation lookup, batch, sources)."""

    def ask(question: str, history: list[dict[str, Any]] | None, k: float) -> tuple[Any, Any, str, str]:
        with assistant.reading():  # the answer and its first passage from one generation
            try:
                answer = assistant.ask(question, k=int(k))
            except QAError as exc:
                raise _fail(exc) from None
            choices = answer_citations(answer)
            first = choices[0][1] if choices else None
            viewer = passage_html(assistant.cite(first)) if first else ""
        history = list(history or []) + [
            {"role": "user", "content": answer.question},
            {"role": "assistant", "content": answer_markdown(answer)},
        ]
        return history, gr.update(choices=choices, value=first), viewer, ""

    def show(citation_id: str | None) -> str:
        if not citation_id:
            return ""
        try:
            return passage_html(assistant.cite(citation_id))
        except QAError as exc:
            raise _fail(exc) from None

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
        return _sources_update(
            f"Indexed {report.count('indexed')} new or changed file(s); {report.count('skipped')} skipped."
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

    counts = assistant.manifest.counts
    # No calls home: analytics off for this app, without touching the process environment.
    with gr.Blocks(title="qa · cited answers from your documents", analytics_enabled=False) as demo:
        gr.Markdown(
            f"## qa\nAnswers are sentences copied from your sources, each with its citation. "
            f"{counts['documents']} document(s), {counts['chunks']} passages indexed.",
            elem_id="header",
        )
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        chat = gr.Chatbot(
                            label="Conversation",
                            height=520,
                            elem_id="chat",
                            placeholder="Ask about the sources; every answer is a quoted, cited sentence.",
                        )
                        with gr.Row():
                            question = gr.Textbox(
                                show_label=False,
                                placeholder="Ask a question…",
                                scale=6,
                                elem_id="question",
                                max_length=2000,
                            )
                            ask_button = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                        k = gr.Slider(1, 10, value=assistant.settings.snippets, step=1, label="Snippets per answer")
                    with gr.Column(scale=2):
                        cites = gr.Radio(label="Citations in the last answer", choices=[], elem_id="citations")
                        viewer = gr.HTML(elem_id="viewer")
                ask_button.click(
                    ask, [question, chat, k], [chat, cites, viewer, question], api_name="chat", concurrency_limit=4
                )
                question.submit(
                    ask,
                    [question, chat, k],
                    [chat, cites, viewer, question],
                    api_visibility="private",
                    concurrency_limit=4,
                )
                cites.change(show, cites, viewer, api_visibility="private")
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
                quote_table = gr.Dataframe(headers=QUOTE_COLUMNS, interactive=False, wrap=True)
                cid_button.click(show, cid, cid_view, api_name="cite")
                quote_button.click(find, quote, quote_table, api_name="quote")
            with gr.Tab("Batch", id="batch"):
                with gr.Row():
                    qfile = gr.File(label="Question file (.txt, .csv, .tsv, .jsonl)", file_types=QUESTION_TYPES)
                    with gr.Column():
                        fmt = gr.Dropdown(["jsonl", "csv", "md"], value="csv", label="Answer file format")
                        bk = gr.Slider(1, 10, value=assistant.settings.snippets, step=1, label="Snippets per answer")
                        run = gr.Button("Answer all", variant="primary")
                status = gr.Markdown()
                table = gr.Dataframe(headers=BATCH_COLUMNS, interactive=False, wrap=True)
                result = gr.File(label="Answers")
                run.click(run_batch, [qfile, fmt, bk], [table, result, status], api_name="batch", concurrency_limit=2)
            with gr.Tab("Sources", id="sources"):
                sources = gr.Dataframe(
                    value=sources_rows(assistant), headers=SOURCE_COLUMNS, interactive=False, wrap=True
                )
                note = gr.Markdown()
                with gr.Row():
                    uploads = gr.File(label="Add documents", file_count="multiple", file_types=SOURCE_TYPES)
                    with gr.Column():
                        add_button = gr.Button("Add and index", variant="primary")
                        pick = gr.Dropdown([f.source for f in assistant.sources()], label="Source to remove")
                        remove_button = gr.Button("Remove from index", variant="stop")
                add_button.click(add, uploads, [sources, note, pick], api_name="upload", concurrency_id="index")
                remove_button.click(
                    remove,
                    pick,
                    [sources, note, pick],
                    api_name="remove",
                    concurrency_id="index",
                    js=CONFIRM_REMOVE,
                )
                demo.load(refresh, None, [sources, note, pick], api_name=False)

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
        rec.get("score"),
        rec.get("abstained"),
        rec.get("error") or rec.get("reason") or "",
    ]


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


ASSETS = Path(__file__).resolve().parent / "assets"  # packaged, so a wheel install has them too


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
    css = [ASSETS / "style.css"] if (ASSETS / "style.css").exists() else None
    demo.queue(default_concurrency_limit=2)
    demo.launch(
        server_name=host,
        server_port=port,
        auth=auth,
        share=share,
        css_paths=css,
        prevent_thread_lock=not block,
        max_file_size=f"{max(1, round(max_file_mb * 1000))}kb",
        quiet=not block,
        footer_links=["api"],
        theme=gr.themes.Soft(),
    )
    return demo
