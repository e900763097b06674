"""The ``qa`` command. The only module that reads flags and environment variables."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import IO, Any, cast

import click

from .errors import InputError, QAError
from .serialize import answer_dict, empty_dict
from .settings import (
    BATCH_INPUT_FORMATS,
    BATCH_OUTPUT_FORMATS,
    DEFAULT_INDEX,
    DENSE_INDEXES,
    PRECISIONS,
    SCORERS,
    Settings,
)
from .types import NOT_ADDED, Answer, BuildReport, Passage, Snippet, unmentioned_note

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
        return int(self._stream.write(_UNSAFE_IN_CSV.sub(_escape, text)))

    def flush(self) -> None:
        self._stream.flush()


class _Group(click.Group):
    """Turns QAError, and a flag or argument click refuses, into a one-line message and exit status
    1, never a traceback or a usage screen."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            _usage_error(exc, ctx)
            raise  # not reached: _usage_error exits

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            _usage_error(exc, ctx)
        except QAError as exc:
            click.echo(f"error: {visible(str(exc), one_line=True)}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


def _usage_error(exc: click.UsageError, ctx: click.Context) -> None:
    """One line for a refused flag or argument, naming the command's help; `qa` alone shows the help."""
    from click.exceptions import NoArgsIsHelpError

    if isinstance(exc, NoArgsIsHelpError):
        raise exc
    where = (exc.ctx or ctx).command_path
    message = exc.format_message().rstrip(".")
    click.echo(f"error: {visible(message, one_line=True)} (see `{where} --help`)", err=True)
    ctx.exit(1)


def state_file() -> Path:
    """Where the CLI remembers the index folder built last: ``$XDG_STATE_HOME/qa/last-index``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "qa" / "last-index"


def last_index() -> Path | None:
    """The index folder built last, when it still holds an index."""
    try:
        path = Path(state_file().read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    return path if path.is_absolute() and (path / "CURRENT").is_file() else None


def remember_index(index_dir: Path) -> None:
    """Record ``index_dir`` as the index built last (best effort: a read-only home only loses the memory)."""
    path = state_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".last-index.{os.getpid()}")
        tmp.write_text(str(index_dir.resolve()) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass


def _default_index(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path:
    """The one rule for the index folder: --index, then QA_INDEX, then the one built last, then index/."""
    if value is not None:
        return value
    return last_index() or Path(DEFAULT_INDEX)


index_option = click.option(
    "--index",
    "index_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    callback=_default_index,
    envvar="QA_INDEX",
    help="Index folder [env QA_INDEX; default: the one built last, else index/].",
)
model_option = click.option(
    "--model",
    default=None,
    envvar="QA_MODEL",
    help="Embedding model name or path (default all-MiniLM-L6-v2, bundled) [env QA_MODEL].",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
scorer_option = click.option(
    "--scorer",
    type=click.Choice(SCORERS),
    default=None,
    envvar="QA_SCORER",
    help="Answer scorer: reader (default), cheap, or none (similarity only) [env QA_SCORER].",
)


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


def _open(index_dir: Path, model: str | None, scorer: str | None = None, answers: bool = False) -> Any:
    """The assistant, questions through ONNX unless QA_NO_ONNX=1; for commands that ``answers``,
    says once on stderr when the slower torch path is taken."""
    from .assistant import Assistant

    onnx = os.environ.get("QA_NO_ONNX", "") in ("", "0")
    settings = Settings(scorer=scorer) if scorer is not None else None
    assistant = Assistant.open(index_dir, model=model, settings=settings, onnx=onnx)
    if answers:
        for note in assistant.notes:
            echo(f"note: {note}", err=True, one_line=True)
    return assistant


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
    type=click.Choice(PRECISIONS),
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
    type=click.Choice(DENSE_INDEXES),
    default=None,
    help="FAISS index: exact (flat) up to 200k chunks, then HNSW, unless set (default auto).",
)
@click.option(
    "--follow-links/--no-follow-links",
    default=None,
    help="Follow links that lead outside the indexed folders (default: only those inside them; kept from last time).",
)
@click.option("--wait", type=click.FloatRange(min=0), default=0.0, help="Seconds to wait for another build to finish.")
@click.option(
    "--backend",
    type=click.Choice(["embedded", "qdrant"]),
    default=None,
    help="Where vectors and search live: the index folder (default) or Qdrant (kept from the last build).",
)
@click.option("--qdrant-path", type=click.Path(file_okay=False), default=None, help="Qdrant in this process, in DIR.")
@click.option("--qdrant-url", default=None, envvar="QA_QDRANT_URL", help="A Qdrant server [env QA_QDRANT_URL].")
@click.option("--collection", default=None, help="Qdrant collection name (default qa).")
@click.option("--workers", type=int, default=None, help="Parse and embed on a local Ray cluster of N workers.")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS", help="Parse and embed on this Ray cluster.")
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
    dense_index: str | None,
    follow_links: bool | None,
    wait: float,
    backend: str | None,
    qdrant_path: str | None,
    qdrant_url: str | None,
    collection: str | None,
    workers: int | None,
    ray_address: str | None,
    as_json: bool,
) -> None:
    """Index PATHS (files or folders of .txt, .md, .pdf); default: the folders indexed last, or corpus/.

    Unchanged files are reused; changed and new files are embedded; files that are gone drop out.
    Settings not given keep what the index was built with (also with --rebuild).
    """
    from .assistant import Assistant
    from .manifest import read_manifest

    settings = Assistant.build_settings(
        index_dir,
        model=model,
        precision=precision,
        chunk_tokens=chunk_tokens,
        chunk_overlap=chunk_overlap,
        max_file_mb=max_file_mb,
        dense_index=dense_index,
        follow_links=follow_links,
    )
    try:
        manifest = read_manifest(index_dir)
    except QAError:
        manifest = None  # damaged: Assistant.build says what to do
    _refuse_other_folders(index_dir, paths, manifest)
    previous = dict(manifest.backend) if manifest is not None and manifest.backend else None
    roots = list(paths) or None
    store = _backend(backend, qdrant_path, qdrant_url, collection, previous, manifest is not None)
    runner = _runner(settings, workers, ray_address)
    try:
        report = Assistant.build(
            roots,
            index_dir,
            settings=settings,
            rebuild=rebuild,
            progress=not as_json,
            wait_s=wait,
            backend=store,
            runner=runner,
        )
    finally:
        if runner is not None:
            runner.close()
    remember_index(index_dir)
    if as_json:
        _emit_json(to_data(report))
    else:
        _print_report(report)


def _refuse_other_folders(index_dir: Path, paths: tuple[Path, ...], manifest: Any) -> None:
    """Refuse to index other folders into the index built last when no --index or QA_INDEX named it.

    The remembered index may be another collection's, built from elsewhere: indexing these folders
    there would silently replace what it holds.
    """
    from click.core import ParameterSource

    source = click.get_current_context().get_parameter_source("index_dir")
    if source != ParameterSource.DEFAULT or index_dir == Path(DEFAULT_INDEX):
        return
    if not paths or manifest is None or not manifest.roots:
        return
    wanted = sorted({os.path.abspath(p) for p in paths})
    if wanted != sorted(manifest.roots):
        raise InputError(
            f"{index_dir}, the index built last, holds {', '.join(manifest.roots)}: to index "
            f"{', '.join(wanted)}, name a folder for it with --index DIR (or --index {index_dir} "
            "to make that index hold exactly these folders)"
        )


def _backend(
    name: str | None, path: str | None, url: str | None, collection: str | None, previous: Any, exists: bool
) -> Any:
    """The index's backend from the flags, else the one it was built with (None: the folder)."""
    from .backends import Backend

    if name is None and (path or collection or (url and not exists)):
        name = "qdrant" if path or collection or url else None
    if name is None:
        return Backend.from_manifest(previous, url) if previous else None
    if name == "embedded":
        return None
    if path is None and url is None and previous:
        path, url = previous.get("path"), previous.get("url")
    return Backend(path, url, collection or (previous or {}).get("collection") or "qa")


def _runner(settings: Settings, workers: int | None, address: str | None) -> Any:
    """A Ray runner for ``--workers``/``--ray``, or None for a build in this process."""
    if workers is None and address is None:
        return None
    if workers is not None and workers < 1:
        raise InputError(f"--workers ({workers}) must be at least 1")
    import functools

    from .embed import embedder_for
    from .raybuild import RayRunner

    return RayRunner(functools.partial(embedder_for, settings), workers or 2, address)


def _print_report(report: BuildReport, built: bool = True) -> None:
    for f in report.files:
        if f.status == "skipped":
            echo(f"skipped   {f.error}", one_line=True)
            continue
        if f.status == "removed":
            echo(f"removed   {f.source}: {'; '.join(f.warnings)}", one_line=True)
            continue
        pages = f"{_count(f.pages, 'page')}, " if f.pages else ""
        echo(
            f"{f.status:<9} {f.source}: {pages}{_count(f.chars, 'char')}, {_count(f.sentences, 'sentence')}, "
            f"{_count(f.chunks, 'chunk')}",
            one_line=True,
        )
        for w in f.warnings:
            echo(f"          warning: {w}", one_line=True)
    statuses = ("indexed", "unchanged", "skipped", "removed")
    counts = ", ".join(f"{report.count(s)} {s}" for s in statuses if report.count(s)) or "no files"
    embedded = _count(report.embedded_chunks, "chunk")
    echo(f"{counts}; {embedded} embedded in {report.seconds:.1f}s" if built else counts)


def _count(n: int, word: str) -> str:
    """A count with its word, plural unless one: 1 page, 2 pages, 6,942 chars."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


@main.command("ask")
@click.argument("question")
@index_option
@model_option
@click.option("-k", "k", type=click.IntRange(1, 50), default=None, help="How many snippets (default 3).")
@scorer_option
@json_option
def ask_command(
    question: str, index_dir: Path, model: str | None, k: int | None, scorer: str | None, as_json: bool
) -> None:
    """Answer QUESTION (or - to read it from stdin) with cited verbatim snippets."""
    if question == "-":
        question = sys.stdin.read()
    answer = _open(index_dir, model, scorer, answers=True).ask(question, k=k)
    if as_json:
        _emit_json(answer_dict(answer))
    else:
        click.echo(format_answer(answer, color=sys.stdout.isatty()))


@main.command("chat")
@index_option
@model_option
@click.option("-k", "k", type=click.IntRange(1, 50), default=None, help="How many snippets (default 3).")
@scorer_option
@click.option("--json", "as_json", is_flag=True, help="Print each answer as one line of JSON.")
def chat_command(index_dir: Path, model: str | None, k: int | None, scorer: str | None, as_json: bool) -> None:
    """Answer questions one after another: the model loads once, then a prompt.

    Reads a question a line from standard input when it is not a terminal; ends at end of input
    (Ctrl-D).
    """
    assistant = _open(index_dir, model, scorer, answers=True)
    tty = sys.stdin.isatty()
    if tty:
        with contextlib.suppress(ImportError):  # line editing and history for input(), where available
            import readline  # noqa: F401
        echo(f"Ask about the sources in {index_dir} (Ctrl-D to end).", err=True)
    while True:
        try:
            line = input("? ") if tty else sys.stdin.readline()
        except EOFError:
            break
        if not tty and not line:
            break
        question = line.strip()
        if not question:
            continue
        try:
            answer = assistant.ask(question, k=k)
        except InputError as exc:
            echo(f"error: {exc}", err=True, one_line=True)
            if as_json:  # a line for every question, so that a reader of the lines stays in step
                from .assistant import undecodable_shown

                _emit_json_line({**empty_dict(undecodable_shown(question[:200])), "error": str(exc)})
                sys.stdout.flush()
            continue
        if as_json:
            _emit_json_line(answer_dict(answer))
        else:
            click.echo(format_answer(answer, color=sys.stdout.isatty()) + "\n")
        sys.stdout.flush()
    if tty:
        click.echo("", err=True)


def _emit_json_line(data: Any) -> None:
    text = json.dumps(data, ensure_ascii=False)
    click.echo(_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def format_answer(answer: Answer, color: bool = False) -> str:
    """An answer as readable text: the sentence, its citation and confidence, and the exact answer
    phrase (marked in bold inside the sentence when ``color``); or why it abstained."""
    lines = []
    if answer.abstained:
        lines.append(visible(f"The sources do not answer this: {answer.reason}.", one_line=True))
        if answer.related:
            lines.append("")
            lines.append("Related passages:")
            lines += _snippet_lines(answer.related)
        return "\n".join(lines)
    lines.append(f"Answer (confidence {answer.confidence:.2f}):")
    lines += _snippet_lines(answer.snippets[:1], phrase=answer.phrase, color=color)
    if answer.phrase is not None:
        phrase = visible(" ".join(answer.phrase.text.split()), one_line=True)
        lines.append(f"      Exact answer: “{phrase}” [{answer.phrase.citation.id}]")
    if answer.missing_terms:
        note = unmentioned_note(answer.missing_terms)
        lines.append(visible(f"      Note: {note[:1].upper() + note[1:]}.", one_line=True))
    if len(answer.snippets) > 1:
        lines.append("")
        lines.append("Supporting:")
        lines += _snippet_lines(answer.snippets[1:], start=2)
    return "\n".join(lines)


def _shown(part: str) -> str:
    return visible(" ".join(part.split()), one_line=True)


def _snippet_lines(
    snippets: tuple[Snippet, ...], start: int = 1, phrase: Snippet | None = None, color: bool = False
) -> list[str]:
    """Numbered quotes with their citations; source text escaped (``visible``) before any styling."""
    lines = []
    for n, s in enumerate(snippets, start):
        text = _shown(s.text)
        if phrase is not None and color and n == start:
            # Styled in place: the characters between the parts are the source's own (white space
            # runs made one space, as everywhere in a quote), none added at the phrase's edges.
            a, b = phrase.citation.start - s.citation.start, phrase.citation.end - s.citation.start
            flat = re.sub(r"\s+", " ", s.text)
            cut = len(re.sub(r"\s+", " ", s.text[:a])), len(re.sub(r"\s+", " ", s.text[:b]))
            head, mid, tail = flat[: cut[0]].lstrip(), flat[cut[0] : cut[1]], flat[cut[1] :].rstrip()
            text = "".join(
                (
                    visible(head, one_line=True),
                    click.style(visible(mid, one_line=True), bold=True, underline=True),
                    visible(tail, one_line=True),
                )
            )
        lines.append(f"  [{n}] “{text}”")
        lines.append(visible(f"      — {s.citation}  (confidence {s.score:.2f})", one_line=True))
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
    passage = _open(index_dir, None).cite(citation_id, context)
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
    type=click.Choice(BATCH_OUTPUT_FORMATS),
    default=None,
    help="Answer format (default: from the output's extension).",
)
@click.option(
    "--input-format",
    "in_format",
    type=click.Choice(BATCH_INPUT_FORMATS),
    default=None,
    help="Question format (default: from the extension; txt for stdin).",
)
@click.option("--resume", is_flag=True, help="Skip ids already in the output file and append the rest.")
@click.option("-k", "k", type=click.IntRange(1, 50), default=None, help="Snippets per answer (default 3).")
@index_option
@model_option
@scorer_option
def batch_command(
    questions: str,
    output: str,
    out_format: str | None,
    in_format: str | None,
    resume: bool,
    k: int | None,
    index_dir: Path,
    model: str | None,
    scorer: str | None,
) -> None:
    """Answer every question in QUESTIONS (.txt, .csv, .tsv, .jsonl, or - for stdin) into a file."""
    from . import batch

    fin, fout = batch.input_format(questions, in_format), batch.output_format(output, out_format)
    if output != "-":
        _check_answer_file(Path(output), questions)
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
    assistant = _open(index_dir, model, scorer, answers=True)
    assistant.embedder.embed(["load the model before the clock starts"])
    # Closed in the finally below; a with-block would also close sys.stdout.
    append = resume and Path(output).exists() and Path(output).stat().st_size > 0
    try:
        stream = (
            _VisibleStream(sys.stdout)
            if output == "-"
            else open(output, "a" if append else "w", encoding="utf-8", newline="")  # noqa: SIM115
        )
    except OSError as exc:
        raise InputError(f"{output}: cannot write the answer file ({exc.strerror})") from None
    bar = _progress(len(rows) - len(skip & {r.id for r in rows}), output != "-")
    try:
        summary = batch.run(
            assistant,
            rows,
            batch.Writer(cast(IO[str], stream), fout, append=append),
            k=k,
            skip=skip,
            on_row=lambda rec, s: bar.update(1) if bar is not None else None,
        )
    except KeyboardInterrupt:
        if output == "-":
            raise
        then = "run again to answer them all" if fout == "md" else "run again with --resume"  # it reads .jsonl, .csv
        echo(f"interrupted: the rows answered so far are in {output}; {then}", err=True)
        sys.exit(130)  # said why already: not main's plain "interrupted" as well
    finally:
        if bar is not None:
            bar.close()
        if isinstance(stream, io.TextIOBase):
            stream.close()
    echo(summary.line(), err=True)


def _check_answer_file(output: Path, questions: str) -> None:
    """Refuse an answer file that would overwrite the question file or cannot be written, before any work."""
    if questions != "-" and output.exists() and os.path.exists(questions) and os.path.samefile(output, questions):
        raise InputError(f"{output}: this is the question file; write the answers to another file (-o)")
    if output.is_dir():
        raise InputError(f"{output}: is a folder; give the answer file's name (-o FILE)")
    if not output.parent.is_dir():
        raise InputError(f"{output}: cannot write the answer file (no folder {output.parent}); create it first")


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
    if from_file is not None:
        text = from_file.read_text(encoding="utf-8", errors="replace")
    elif text is None or text == "-":
        text = sys.stdin.read()
    matches = _open(index_dir, None).find_quote(text, limit)
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
    default=None,
    help="Folder to index first when there is no index yet (default corpus/).",
)
@click.option(
    "--update",
    is_flag=True,
    help="Update the index from the folders it was built from, with its own settings, before serving.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="QA_HOST",
    help="Address to listen on (127.0.0.1 keeps it on this machine).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    envvar="QA_PORT",
    help="Port (default: first free from 7860) [env QA_PORT].",
)
@click.option(
    "--auth", default=None, envvar="QA_AUTH", metavar="USER:PASSWORD", help="Require this login [env QA_AUTH]."
)
@click.option("--share", is_flag=True, help="Ask Gradio for a public share link (needs internet).")
def serve_command(
    index_dir: Path, corpus: Path | None, update: bool, host: str, port: int | None, auth: str | None, share: bool
) -> None:
    """Start the web UI (chat, citation lookup, batch, sources) on localhost.

    An existing index is served as it is: a stale one is reported, and updated only with --update.
    """
    from .web import build_app, launch, ready_assistant

    login = None
    if auth:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise InputError("--auth must look like USER:PASSWORD, both parts non-empty")
        login = (user, password)
    assistant = ready_assistant(index_dir, corpus, update=update, say=lambda m: echo(m, err=True))
    echo(f"starting the UI for {index_dir} on http://{host}:{port or 7860} (Ctrl-C to stop)", err=True)
    launch(
        build_app(assistant), host=host, port=port, auth=login, share=share, max_file_mb=assistant.settings.max_file_mb
    )


@main.command("add")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@index_option
@json_option
def add_command(files: tuple[Path, ...], index_dir: Path, as_json: bool) -> None:
    """Index FILES: files outside the corpus folder are copied into it (under safe names) first."""
    progress = AddProgress(len(files))
    try:
        report = _open(index_dir, None).add(list(files), on_progress=progress)
    finally:
        progress.close()
    remember_index(index_dir)
    _emit_json(to_data(report)) if as_json else _print_report(report)
    failed = [f.source for f in report.files if f.status == "skipped" and f.error.endswith(NOT_ADDED)]
    if failed:  # after the report, so that it says why: scripts see the exit status
        echo(f"error: {len(failed)} of the {len(files)} files given could not be added (see above)", err=True)
        sys.exit(1)


class AddProgress:
    """Progress of a build inside ``qa add``, shown as ``qa index`` shows its own: a bar per stage on
    a terminal, else a plain line every 15 seconds; it starts with the reading, so a long PDF's
    parsing is not silent."""

    def __init__(self, files: int) -> None:
        from .build import _bar

        self._make = _bar
        self._stage, self._done = "reading", 0
        self._bar = _bar(files, "reading", "file", True)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            self.close()
            self._stage, self._done = stage, 0
            self._bar = self._make(total, stage, "chunk" if stage == "embedding" else "file", True)
        if self._bar is None:
            return
        self._bar.total = total
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@main.command("remove")
@click.argument("source")
@index_option
@click.option(
    "--delete-file", is_flag=True, help="Also delete the file from disk (files `qa add` copied in always are)."
)
@json_option
def remove_command(source: str, index_dir: Path, delete_file: bool, as_json: bool) -> None:
    """Take SOURCE (as listed by `qa sources`, or its file's path) out of the index; your own file
    stays where it is."""
    removal = _open(index_dir, None).remove(source, delete_file=delete_file)
    remember_index(index_dir)
    if as_json:
        _emit_json(to_data(removal))
    else:
        click.echo(removal.line())


@main.command("sources")
@index_option
@json_option
def sources_command(index_dir: Path, as_json: bool) -> None:
    """List the indexed and skipped files with their ingest report."""
    reports = _open(index_dir, None).sources()
    if as_json:
        _emit_json(to_data(reports))
    else:
        _print_report(BuildReport(tuple(reports)), built=False)


@main.command("eval")
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default="../shared/datasets/squad/dev-v1.1.json",
    show_default=True,
    help="SQuAD v1.1 dev JSON; a SQuAD v2.0 file (abstention) or HotpotQA JSON (two-article questions).",
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
@click.option("--precision", type=click.Choice(PRECISIONS), default=None, help="Encoder precision.")
@click.option("--tune", "do_tune", is_flag=True, help="Search fusion and sentence weights on articles 0-23 first.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Use only the first N questions of each split (quick runs).",
)
@click.option(
    "--scorers",
    default="reader,cheap,none",
    show_default=True,
    help="Answer scorers to compare (comma-separated: reader, cheap, none; empty for retrieval only).",
)
@click.option(
    "--modes",
    default="dense,lexical,hybrid",
    show_default=True,
    help="Retrieval modes to compare on SQuAD v1.1 (comma-separated; empty for none).",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write results JSON.")
def eval_command(
    data: Path,
    work: Path,
    model: str | None,
    chunk_tokens: int | None,
    precision: str | None,
    do_tune: bool,
    limit: int | None,
    scorers: str,
    modes: str,
    out: Path | None,
) -> None:
    """Open retrieval and answers on SQuAD: v1.1 dev (retrieval modes and answer scorers side by side)
    or, for a SQuAD v2.0 file, abstention (unanswerable declined, answerable answered and right, and
    declined at fixed answered shares with the AUC), or for HotpotQA, whether the snippets shown are
    its supporting sentences, from both of its articles."""
    from . import evaluate

    changes = {
        k: v for k, v in {"model": model, "chunk_tokens": chunk_tokens, "precision": precision}.items() if v is not None
    }
    settings = Settings().but(**changes)
    kinds = tuple(k for k in (x.strip() for x in scorers.split(",")) if k)
    for kind in kinds:
        if kind not in SCORERS:
            raise click.BadParameter(f"{kind!r} is not one of {', '.join(SCORERS)}", param_hint="--scorers")
    wanted = tuple(m for m in (x.strip() for x in modes.split(",")) if m)
    for mode in wanted:
        if mode not in ("dense", "lexical", "hybrid"):
            raise click.BadParameter(f"{mode!r} is not one of dense, lexical, hybrid", param_hint="--modes")
    work.mkdir(parents=True, exist_ok=True)
    if evaluate.is_hotpot(data):
        results = evaluate.evaluate_multihop(data, work, settings, kinds or ("reader",), limit)
    elif evaluate.has_unanswerable(data):
        results = evaluate.evaluate_abstention(data, work, settings, kinds or ("reader",), limit)
    else:
        assistant, questions, vectors = evaluate.prepare(data, work, settings)
        if do_tune:
            settings = evaluate.tune(assistant, questions, vectors, settings, lambda m: click.echo(m, err=True), limit)
            click.echo(f"best on articles 0-23: {settings}")
        results = evaluate.evaluate(assistant, questions, vectors, settings.but(scorer="none"), limit, wanted)
        results |= evaluate.evaluate_scorers(assistant, questions, vectors, settings, kinds, limit)
    click.echo(format_eval(results))
    if out is not None:
        out.write_text(json.dumps({"settings": dataclasses.asdict(settings), "results": results}, indent=1))


def format_eval(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """One table per kind of result: each row a mode and split, each column a measure."""
    lines: list[str] = []
    keys: list[str] = []
    notes: list[str] = []
    for mode, splits in results.items():
        for name, m in splits.items():
            if "calibration" in m:
                notes.append(f"{mode} {name}: share right by confidence: {m['calibration']}")
            if m.get("trade_off"):
                notes.append(f"{mode} {name}: unanswerable declined {m['trade_off']}")
            row_keys = [k for k in m if k not in ("questions", "calibration", "trade_off")]
            if row_keys != keys:
                keys = row_keys
                lines += ["", f"{'mode':<14} {'split':<13} " + " ".join(f"{k:>22}" for k in keys)]
            lines.append(f"{mode:<14} {name:<13} " + " ".join(f"{m[k]!s:>22}" for k in keys))
    return "\n".join(lines + ([""] + notes if notes else [])).strip("\n")


if __name__ == "__main__":
    main()
