"""The ``qa`` command. The only module that reads flags and environment variables."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click

from .errors import QAError
from .settings import Settings
from .types import Answer, BuildReport, Passage, Snippet

DEFAULT_CORPUS = "corpus"


class _Group(click.Group):
    """Turns QAError into a one-line message and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except QAError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


index_option = click.option(
    "--index", "index_dir", type=click.Path(file_okay=False, path_type=Path), default="index", show_default=True,
    envvar="QA_INDEX", help="Index folder [env QA_INDEX].",
)
model_option = click.option(
    "--model", default=None, envvar="QA_MODEL",
    help="Embedding model name or path (default all-MiniLM-L6-v2, bundled) [env QA_MODEL].",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=1))


def to_data(obj: Any) -> Any:
    """Dataclasses (Answer, Passage, ...) as plain JSON-ready data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_data(x) for x in obj]
    return obj


def _open(index_dir: Path, model: str | None):  # type: ignore[no-untyped-def]
    from .assistant import Assistant

    return Assistant.open(index_dir, model=model)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="qa")
def main() -> None:
    """Answer questions from your documents with cited, verbatim snippets."""


@main.command("index")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@index_option
@model_option
@click.option("--rebuild", is_flag=True, help="Embed every file again instead of reusing unchanged ones.")
@click.option("--chunk-tokens", type=int, default=None, help="Largest chunk, in model tokens.")
@click.option("--chunk-overlap", type=int, default=None, help="Overlap between chunks, in tokens.")
@click.option("--max-file-mb", type=float, default=None, envvar="QA_MAX_FILE_MB", help="Skip larger files.")
@click.option("--wait", type=float, default=0.0, help="Seconds to wait for another build to finish.")
@json_option
def index_command(paths: tuple[Path, ...], index_dir: Path, model: str | None, rebuild: bool,
                  chunk_tokens: int | None, chunk_overlap: int | None, max_file_mb: float | None,
                  wait: float, as_json: bool) -> None:
    """Index PATHS (files or folders of .txt, .md, .pdf); default: the folders indexed last, or corpus/.

    Unchanged files are reused; changed and new files are embedded; files that are gone drop out.
    """
    from .assistant import Assistant
    from .index import read_manifest

    changes = {k: v for k, v in {"model": model, "chunk_tokens": chunk_tokens, "chunk_overlap": chunk_overlap,
                                 "max_file_mb": max_file_mb}.items() if v is not None}
    manifest = read_manifest(index_dir) if not rebuild else None
    if manifest is not None and "chunk_tokens" not in changes:
        changes.setdefault("chunk_tokens", manifest["settings"]["chunk_tokens"])
        changes.setdefault("chunk_overlap", manifest["settings"]["chunk_overlap"])
        changes.setdefault("model", manifest["model"]["name"])
    settings = Settings().but(**changes)
    roots = list(paths) or [Path(r) for r in (manifest or {}).get("roots", [])] or [Path(DEFAULT_CORPUS)]
    report = Assistant.build(roots, index_dir, settings=settings, rebuild=rebuild, progress=not as_json, wait_s=wait)
    if as_json:
        _emit_json(to_data(report))
    else:
        _print_report(report)


def _print_report(report: BuildReport) -> None:
    for f in report.files:
        if f.status == "skipped":
            click.echo(f"skipped   {f.error}")
            continue
        pages = f"{f.pages} pages, " if f.pages else ""
        click.echo(f"{f.status:<9} {f.source}: {pages}{f.chars:,} chars, {f.sentences} sentences, {f.chunks} chunks")
        for w in f.warnings:
            click.echo(f"          warning: {w}")
    counts = ", ".join(f"{report.count(s)} {s}" for s in ("indexed", "unchanged", "skipped") if report.count(s))
    click.echo(f"{counts}; {report.embedded_chunks} chunks embedded in {report.seconds:.1f}s")


@main.command("ask")
@click.argument("question")
@index_option
@model_option
@click.option("-k", "k", type=click.IntRange(1, 50), default=None, help="How many snippets (default 3).")
@json_option
def ask_command(question: str, index_dir: Path, model: str | None, k: int | None, as_json: bool) -> None:
    """Answer QUESTION (or - to read it from stdin) with cited verbatim snippets."""
    if question == "-":
        question = sys.stdin.read()
    answer = _open(index_dir, model).ask(question, k=k)
    if as_json:
        _emit_json(to_data(answer))
    else:
        click.echo(format_answer(answer))


def format_answer(answer: Answer) -> str:
    """An answer as readable text: the snippet, its citation and score; or why it abstained."""
    lines = []
    if answer.abstained:
        lines.append(f"The sources do not answer this: {answer.reason}.")
        if answer.related:
            lines.append("")
            lines.append("Related passages:")
            lines += _snippet_lines(answer.related)
        return "\n".join(lines)
    best = answer.snippets[0]
    lines.append(f"Answer (score {best.score:.2f}):")
    lines += _snippet_lines(answer.snippets[:1])
    if len(answer.snippets) > 1:
        lines.append("")
        lines.append("Supporting:")
        lines += _snippet_lines(answer.snippets[1:], start=2)
    return "\n".join(lines)


def _snippet_lines(snippets: tuple[Snippet, ...], start: int = 1) -> list[str]:
    lines = []
    for n, s in enumerate(snippets, start):
        text = " ".join(s.text.split())
        lines.append(f"  [{n}] “{text}”")
        lines.append(f"      — {s.citation}  (score {s.score:.2f})")
    return lines


@main.command("cite")
@click.argument("citation_id")
@index_option
@click.option("--context", type=click.IntRange(0, 5000), default=300, show_default=True,
              help="Characters of context either side.")
@json_option
def cite_command(citation_id: str, index_dir: Path, context: int, as_json: bool) -> None:
    """Show the passage CITATION_ID points to, in its context."""
    from .cite import resolve
    from .index import Index

    passage = resolve(Index.open(index_dir), citation_id, context)
    if as_json:
        _emit_json(to_data(passage))
    else:
        click.echo(format_passage(passage))


def format_passage(passage: Passage) -> str:
    c = passage.citation
    head = f"{c.source}" + (f", page {c.page}" if c.page is not None else "") + f", characters {c.start}-{c.end}"
    return f"{head}  [{c.id}]\n\n…{passage.before}>>>{passage.text}<<<{passage.after}…"


@main.command("sources")
@index_option
@json_option
def sources_command(index_dir: Path, as_json: bool) -> None:
    """List the indexed and skipped files with their ingest report."""
    from .index import Index, file_reports

    reports = file_reports(Index.open(index_dir).manifest)
    if as_json:
        _emit_json(to_data(reports))
    else:
        _print_report(BuildReport(tuple(reports)))


if __name__ == "__main__":
    main()
