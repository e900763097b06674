"""The ``qa`` command. The only module that reads flags and environment variables."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from .errors import InputError, QAError
from .settings import Settings
from .types import Answer, BuildReport, Passage, Snippet

DEFAULT_CORPUS = "corpus"
# Control characters (C0 but tab and newline, DEL, C1) and the bidirectional overrides that can
# reorder or hide text: sources are shown with these escaped, never sent to the terminal.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_IN_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_IN_CSV = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # keeps \r\n


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def visible(text: str, one_line: bool = False) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``), so source text cannot
    drive the terminal. ``one_line`` escapes tabs and newlines too."""
    return (_UNSAFE_IN_LINE if one_line else _UNSAFE).sub(_escape, text)


def echo(text: str = "", err: bool = False, one_line: bool = False) -> None:
    """Print through ``visible``: what every printer of this command uses."""
    click.echo(visible(text, one_line), err=err)


class _VisibleStream:
    """Batch answers on standard output, escaped like ``visible`` (CSV's ``\\r\\n`` kept)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(_UNSAFE_IN_CSV.sub(_escape, text))

    def flush(self) -> None:
        self._stream.flush()


class _Group(click.Group):
    """Turns QAError into a one-line message and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except QAError as exc:
            click.echo(f"error: {visible(str(exc), one_line=True)}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


index_option = click.option(
    "--index",
    "index_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="index",
    show_default=True,
    envvar="QA_INDEX",
    help="Index folder [env QA_INDEX].",
)
model_option = click.option(
    "--model",
    default=None,
    envvar="QA_MODEL",
    help="Embedding model name or path (default all-MiniLM-L6-v2, bundled) [env QA_MODEL].",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


def _emit_json(data: Any) -> None:
    # JSON escapes C0 controls itself; DEL, C1 and the overrides are escaped as \\uXXXX, still the same JSON.
    text = json.dumps(data, ensure_ascii=False, indent=1)
    click.echo(_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


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
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "int8"]),
    default=None,
    envvar="QA_PRECISION",
    help="Encoder precision (default auto: int8 where the CPU has VNNI, else bf16 where native, else fp32) "
    "[env QA_PRECISION].",
)
@click.option("--chunk-tokens", type=int, default=None, help="Largest chunk, in model tokens.")
@click.option("--chunk-overlap", type=int, default=None, help="Overlap between chunks, in tokens.")
@click.option("--max-file-mb", type=float, default=None, envvar="QA_MAX_FILE_MB", help="Skip larger files.")
@click.option(
    "--dense-index",
    type=click.Choice(["auto", "flat", "hnsw"]),
    default="auto",
    show_default=True,
    help="FAISS index: exact (flat) up to 200k chunks, then HNSW, unless set.",
)
@click.option(
    "--follow-links/--no-follow-links",
    default=None,
    help="Follow links that lead outside the indexed folders (default: only those inside them; kept from last time).",
)
@click.option("--wait", type=float, default=0.0, help="Seconds to wait for another build to finish.")
@json_option
def index_command(
    paths: tuple[Path, ...],
    index_dir: Path,
    model: str | None,
    precision: str | None,
    rebuild: bool,
    chunk_tokens: int | None,
    chunk_overlap: int | None,
    max_file_mb: float | None,
    dense_index: str,
    follow_links: bool | None,
    wait: float,
    as_json: bool,
) -> None:
    """Index PATHS (files or folders of .txt, .md, .pdf); default: the folders indexed last, or corpus/.

    Unchanged files are reused; changed and new files are embedded; files that are gone drop out.
    """
    from .assistant import Assistant
    from .index import read_manifest

    changes = {
        k: v
        for k, v in {
            "model": model,
            "precision": precision,
            "chunk_tokens": chunk_tokens,
            "chunk_overlap": chunk_overlap,
            "max_file_mb": max_file_mb,
            "follow_links": follow_links,
        }.items()
        if v is not None
    }
    manifest = read_manifest(index_dir) if not rebuild else None
    if manifest is not None:
        # Keep what the index was built with unless a flag changes it.
        changes.setdefault("chunk_tokens", manifest["settings"]["chunk_tokens"])
        changes.setdefault("chunk_overlap", manifest["settings"]["chunk_overlap"])
        changes.setdefault("model", manifest["model"]["name"])
        changes.setdefault("precision", manifest["model"].get("precision", "fp32"))
        changes.setdefault("follow_links", manifest.get("follow_links", False))
    settings = Settings().but(dense_index=dense_index, **changes)
    roots = list(paths) or [Path(r) for r in (manifest or {}).get("roots", [])] or [Path(DEFAULT_CORPUS)]
    report = Assistant.build(roots, index_dir, settings=settings, rebuild=rebuild, progress=not as_json, wait_s=wait)
    if as_json:
        _emit_json(to_data(report))
    else:
        _print_report(report)


def _print_report(report: BuildReport) -> None:
    for f in report.files:
        if f.status == "skipped":
            echo(f"skipped   {f.error}", one_line=True)
            continue
        pages = f"{f.pages} pages, " if f.pages else ""
        echo(
            f"{f.status:<9} {f.source}: {pages}{f.chars:,} chars, {f.sentences} sentences, {f.chunks} chunks",
            one_line=True,
        )
        for w in f.warnings:
            echo(f"          warning: {w}", one_line=True)
    counts = ", ".join(f"{report.count(s)} {s}" for s in ("indexed", "unchanged", "skipped") if report.count(s))
    echo(f"{counts}; {report.embedded_chunks} chunks embedded in {report.seconds:.1f}s")


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
        echo(format_answer(answer))


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
@click.option(
    "--context", type=click.IntRange(0, 5000), default=300, show_default=True, help="Characters of context either side."
)
@json_option
def cite_command(citation_id: str, index_dir: Path, context: int, as_json: bool) -> None:
    """Show the passage CITATION_ID points to, in its context."""
    from .cite import resolve
    from .index import Index

    passage = resolve(Index.open(index_dir), citation_id, context)
    if as_json:
        _emit_json(to_data(passage))
    else:
        echo(format_passage(passage))


def format_passage(passage: Passage) -> str:
    c = passage.citation
    head = f"{c.source}" + (f", page {c.page}" if c.page is not None else "") + f", characters {c.start}-{c.end}"
    return f"{head}  [{c.id}]\n\n…{passage.before}>>>{passage.text}<<<{passage.after}…"


@main.command("batch")
@click.argument("questions", type=click.Path(allow_dash=True, path_type=str))
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(allow_dash=True, path_type=str),
    help="Answer file: .jsonl, .csv or .md (or - for standard output).",
)
@click.option(
    "--format",
    "out_format",
    type=click.Choice(["jsonl", "csv", "md"]),
    default=None,
    help="Answer format (default: from the output's extension).",
)
@click.option(
    "--input-format",
    "in_format",
    type=click.Choice(["txt", "csv", "tsv", "jsonl"]),
    default=None,
    help="Question format (default: from the extension; txt for stdin).",
)
@click.option("--resume", is_flag=True, help="Skip ids already in the output file and append the rest.")
@click.option("-k", "k", type=click.IntRange(1, 50), default=None, help="Snippets per answer (default 3).")
@index_option
@model_option
def batch_command(
    questions: str,
    output: str,
    out_format: str | None,
    in_format: str | None,
    resume: bool,
    k: int | None,
    index_dir: Path,
    model: str | None,
) -> None:
    """Answer every question in QUESTIONS (.txt, .csv, .tsv, .jsonl, or - for stdin) into a file."""
    from . import batch

    fin, fout = batch.input_format(questions, in_format), batch.output_format(output, out_format)
    if questions == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            data = Path(questions).read_bytes()
        except OSError as exc:
            raise InputError(f"{questions}: cannot read the question file ({exc.strerror})") from None
    rows = list(batch.read_rows(data, fin, questions))
    skip: set[str] = set()
    if resume and output != "-":
        skip = batch.done_ids(Path(output), fout)
    assistant = _open(index_dir, model)
    assistant.embedder.embed(["load the model before the clock starts"])
    # Closed in the finally below; a with-block would also close sys.stdout.
    append = resume and Path(output).exists() and Path(output).stat().st_size > 0
    stream = (
        _VisibleStream(sys.stdout)
        if output == "-"
        else open(output, "a" if append else "w", encoding="utf-8", newline="")  # noqa: SIM115
    )
    bar = _progress(len(rows) - len(skip & {r.id for r in rows}), output != "-")
    try:
        summary = batch.run(
            assistant,
            rows,
            batch.Writer(stream, fout, append=append),
            k=k,
            skip=skip,
            on_row=lambda rec, s: bar.update(1) if bar is not None else None,
        )
    except KeyboardInterrupt:
        echo(f"interrupted: the rows answered so far are in {output}; run again with --resume", err=True)
        raise
    finally:
        if bar is not None:
            bar.close()
        if isinstance(stream, io.TextIOBase):
            stream.close()
    echo(summary.line(), err=True)


def _progress(total: int, show: bool):  # type: ignore[no-untyped-def]
    if not show or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="question", file=sys.stderr, dynamic_ncols=True)


@main.command("quote")
@click.argument("text", required=False)
@click.option(
    "--file",
    "from_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Read the quote from a file.",
)
@index_option
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
@json_option
def quote_command(text: str | None, from_file: Path | None, index_dir: Path, limit: int, as_json: bool) -> None:
    """Find every place TEXT (or --file, or - for stdin) comes from: exact, normalised, then close matches."""
    from .index import Index
    from .quote import find_quote

    if from_file is not None:
        text = from_file.read_text(encoding="utf-8", errors="replace")
    elif text is None or text == "-":
        text = sys.stdin.read()
    matches = find_quote(Index.open(index_dir), text, limit)
    if as_json:
        _emit_json(to_data(matches))
        return
    if not matches:
        echo("Not found in the sources: no exact, normalised or close match.")
    for n, m in enumerate(matches, 1):
        echo(f"[{n}] {m.kind} ({m.similarity:.0%}): “{' '.join(m.text.split())}”")
        echo(f"    — {m.citation}")


@main.command("serve")
@index_option
@click.option(
    "--corpus",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_CORPUS,
    show_default=True,
    help="Folder to index first when the index is missing or stale.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="QA_HOST",
    help="Address to listen on (127.0.0.1 keeps it on this machine).",
)
@click.option("--port", type=int, default=None, envvar="QA_PORT", help="Port (default: first free from 7860).")
@click.option(
    "--auth", default=None, envvar="QA_AUTH", metavar="USER:PASSWORD", help="Require this login [env QA_AUTH]."
)
@click.option("--share", is_flag=True, help="Ask Gradio for a public share link (needs internet).")
def serve_command(index_dir: Path, corpus: Path, host: str, port: int | None, auth: str | None, share: bool) -> None:
    """Start the web UI (chat, citation lookup, batch, sources) on localhost."""
    from .web import build_app, launch, ready_assistant

    login = None
    if auth:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise InputError("--auth must look like USER:PASSWORD, both parts non-empty")
        login = (user, password)
    assistant = ready_assistant(index_dir, corpus)
    echo(f"serving {index_dir} on http://{host}:{port or 7860} (Ctrl-C to stop)", err=True)
    launch(
        build_app(assistant), host=host, port=port, auth=login, share=share, max_file_mb=assistant.settings.max_file_mb
    )


@main.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@index_option
@json_option
def add_command(files: tuple[Path, ...], index_dir: Path, as_json: bool) -> None:
    """Copy FILES into the corpus folder (under safe names) and index them."""
    from .assistant import Assistant

    report = Assistant.open(index_dir).add(list(files))
    _emit_json(to_data(report)) if as_json else _print_report(report)


@main.command("remove")
@click.argument("source")
@index_option
@json_option
def remove_command(source: str, index_dir: Path, as_json: bool) -> None:
    """Delete SOURCE (as listed by `qa sources`) from the corpus folder and the index."""
    from .assistant import Assistant

    report = Assistant.open(index_dir).remove(source)
    _emit_json(to_data(report)) if as_json else _print_report(report)


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


@main.command("eval")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default="../shared/datasets/squad/dev-v1.1.json",
    show_default=True,
    help="SQuAD v1.1 dev JSON.",
)
@click.option(
    "--work",
    type=click.Path(file_okay=False, path_type=Path),
    default="results",
    show_default=True,
    help="Folder for the evaluation index and results.",
)
@model_option
@click.option("--chunk-tokens", type=int, default=None, help="Largest chunk, in model tokens.")
@click.option(
    "--precision", type=click.Choice(["auto", "fp32", "bf16", "int8"]), default=None, help="Encoder precision."
)
@click.option("--tune", "do_tune", is_flag=True, help="Search fusion and sentence weights on articles 0-23 first.")
@click.option("--limit", type=int, default=None, help="Use only the first N questions of each split (quick runs).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write results JSON.")
def eval_command(
    data: Path,
    work: Path,
    model: str | None,
    chunk_tokens: int | None,
    precision: str | None,
    do_tune: bool,
    limit: int | None,
    out: Path | None,
) -> None:
    """Open retrieval on SQuAD v1.1 dev: dense, lexical and hybrid side by side."""
    from . import evaluate

    changes = {
        k: v for k, v in {"model": model, "chunk_tokens": chunk_tokens, "precision": precision}.items() if v is not None
    }
    settings = Settings().but(**changes)
    work.mkdir(parents=True, exist_ok=True)
    assistant, questions, vectors = evaluate.prepare(data, work, settings)
    if do_tune:
        settings = evaluate.tune(assistant, questions, vectors, settings, lambda m: click.echo(m, err=True), limit)
        click.echo(f"best on articles 0-23: {settings}")
    results = evaluate.evaluate(assistant, questions, vectors, settings, limit)
    click.echo(format_eval(results))
    if out is not None:
        out.write_text(json.dumps({"settings": dataclasses.asdict(settings), "results": results}, indent=1))


def format_eval(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    keys = ["recall@1", "recall@5", "recall@20", "snippet_accuracy@1", "verbatim_rate", "snippet_chars"]
    lines = [f"{'mode':<8} {'split':<13} {'n':>6} " + " ".join(f"{k:>18}" for k in keys)]
    for mode, splits in results.items():
        for name, m in splits.items():
            lines.append(f"{mode:<8} {name:<13} {m['questions']:>6} " + " ".join(f"{m[k]:>18}" for k in keys))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
