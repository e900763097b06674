"""Question files in, answer files out.

Input: ``.txt`` (one question per line), ``.csv``/``.tsv`` (a ``question`` column; ``id``,
``answer`` and any other columns are carried through), ``.jsonl`` (``{"id", "question", ...}``) or
standard input. Output: ``.jsonl``, ``.csv`` or ``.md``. Questions are embedded and searched in
batches; each row is written and flushed as soon as it is answered, so an interrupted run leaves a
valid partial file that ``resume`` continues.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .assistant import Assistant, clean_question
from .errors import InputError, QAError
from .serialize import answer_dict, empty_dict
from .settings import BATCH_INPUT_FORMATS, BATCH_OUTPUT_FORMATS
from .types import Answer, unmentioned_note

INPUT_FORMATS = BATCH_INPUT_FORMATS
OUTPUT_FORMATS = BATCH_OUTPUT_FORMATS
BATCH = 64


@dataclass(frozen=True)
class Row:
    """One question from a file: its id, text, gold answers and the columns carried through."""

    id: str
    question: str
    gold: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class Summary:
    """Counts of a batch run; accuracy only over rows that carry gold answers."""

    rows: int = 0
    answered: int = 0
    abstained: int = 0
    errors: int = 0
    skipped: int = 0
    with_gold: int = 0
    correct: int = 0
    seconds: float = 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.with_gold if self.with_gold else None

    @property
    def per_second(self) -> float:
        done = self.answered + self.abstained
        return done / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        acc = f", accuracy {self.accuracy:.1%} on {self.with_gold} with answers" if self.accuracy is not None else ""
        skipped = f", {self.skipped} already done" if self.skipped else ""
        return (
            f"{self.rows} questions: {self.answered} answered, {self.abstained} abstained, "
            f"{self.errors} errors{skipped}{acc}; {self.per_second:.1f} questions/s"
        )


def input_format(name: str, given: str | None) -> str:
    """The question format: given, else from the extension (txt for standard input)."""
    return _format(name, given, INPUT_FORMATS, "txt", "question", "--input-format")


def output_format(name: str, given: str | None) -> str:
    """The answer format: given, else from the extension (jsonl for standard output)."""
    return _format(name, given, OUTPUT_FORMATS, "jsonl", "answer", "--format")


def _format(name: str, given: str | None, allowed: tuple[str, ...], default: str, what: str, flag: str) -> str:
    fmt = given or (default if name == "-" else Path(name).suffix.lower().lstrip("."))
    if fmt not in allowed:
        raise InputError(
            f"{name}: cannot tell the {what} format from {fmt!r}; use {flag} with one of {', '.join(allowed)}"
        )
    return fmt


def read_rows(data: bytes, fmt: str, name: str = "questions") -> Iterator[Row]:
    """Rows of a question file; a bad line becomes a Row with ``error`` set.

    A question without an id takes its line (or row) number. Ids must differ: the answer file and
    ``--resume`` know questions by id, so a file that gives two questions one id is refused
    (InputError) before any is answered; so is a file with no question at all.
    """
    label = "standard input" if name == "-" else name
    head = data[:8192]
    if b"\x00" in head or head.decode("utf-8", errors="replace").count("\ufffd") > len(head) / 20:
        raise InputError(f"{label}: is not UTF-8 text (a binary file, or another encoding); save it as UTF-8")
    if fmt == "txt":
        rows = _txt_rows(data)
    elif fmt in ("csv", "tsv"):
        rows = _table_rows(data, "\t" if fmt == "tsv" else ",", name)
    else:
        rows = _jsonl_rows(data)
    seen: set[str] = set()
    asked = False  # a row other than a blank line: a question, or a line that cannot be one
    for row in rows:
        asked = asked or not (row.error or "").endswith(" is empty")
        if row.id in seen:
            raise InputError(
                f"{label}: two questions have the id {row.id!r} (one without an id takes its line number); "
                "give each question its own id"
            )
        seen.add(row.id)
        yield row
    if not asked:
        raise InputError(f"{label}: holds no questions; give one per line (or row)")


def _lines(data: bytes) -> Iterator[tuple[int, str | None]]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for n, raw in enumerate(data.splitlines(), 1):
        try:
            yield n, raw.decode("utf-8")
        except UnicodeDecodeError:
            yield n, None


def _txt_rows(data: bytes) -> Iterator[Row]:
    for n, line in _lines(data):
        if line is None:
            yield Row(str(n), "", error=f"line {n} is not valid UTF-8")
        elif line.strip():
            yield _checked(Row(str(n), line))
        else:
            yield Row(str(n), "", error=f"line {n} is empty")


def _checked(row: Row) -> Row:
    """The row with its question cleaned, or with the reason it cannot be asked."""
    try:
        return Row(row.id, clean_question(row.question), row.gold, row.extra)
    except InputError as exc:
        return Row(row.id, row.question[:200], row.gold, row.extra, error=str(exc))


def _table_rows(data: bytes, delimiter: str, name: str) -> Iterator[Row]:
    text = data.decode("utf-8-sig", errors="replace")
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = {c.strip().lower(): c for c in reader.fieldnames or []}
    if "question" not in columns:
        found = ", ".join(reader.fieldnames or []) or "none"
        other = next((d for d in ";\t," if d != delimiter and any(d in c for c in reader.fieldnames or [])), None)
        hint = {
            ";": "the header looks separated by ';': save the file with commas (.csv) or tabs (.tsv)",
            ",": "the header looks separated by commas: name the file .csv",
            "\t": "the header looks separated by tabs: name the file .tsv",
        }.get(other or "", "")
        raise InputError(
            f"{name}: no 'question' column (found: {found}); " + (hint or "add a header row with a question column")
        )
    first = reader.line_num + 1
    for n, record in enumerate(reader, 1):
        lines, first = (first, reader.line_num), reader.line_num + 1
        question = record.get(columns["question"]) or ""
        rid = (record.get(columns["id"]) or "").strip() if "id" in columns else ""
        gold = record.get(columns["answer"]) if "answer" in columns else None
        extra = {k: v for k, v in record.items() if k not in (columns.get("question"), columns.get("id"))}
        row = Row(rid or str(n), question, (gold.strip(),) if gold and gold.strip() else (), extra)
        swallowed = _swallowed(record, delimiter)
        if swallowed:
            # A quote opened and not closed where its field ends takes in the rows after it: refused
            # with the lines it took, not read as one long question.
            yield Row(
                rid or str(n),
                " ".join(question.split())[:200],
                error=(
                    f"row {n} (lines {lines[0]}-{lines[1]}) has a quote in its {swallowed!r} field that is not "
                    "closed where the field ends, so it took in the lines after it; close the quote or remove it"
                ),
            )
            continue
        if None in record:
            extra.pop(None, None)
            yield Row(
                row.id,
                question[:200],
                row.gold,
                extra,
                error=f"row {n} has more fields than the header; put quotes around text with commas",
            )
        elif "\ufffd" in question:
            yield Row(row.id, question[:200], row.gold, extra, error=f"row {n} is not valid UTF-8")
        elif not question.strip():
            yield Row(row.id, "", row.gold, extra, error=f"row {n} has an empty question")
        else:
            yield _checked(row)


def _swallowed(record: dict[Any, Any], delimiter: str) -> str:
    """The column whose value runs over a line break into text that has the delimiter (rows read into
    one field past a quote that was never closed), or ""."""
    for key, value in record.items():
        if isinstance(value, str) and "\n" in value.strip() and delimiter in value.strip().split("\n", 1)[1]:
            return str(key)
    return ""


def _jsonl_rows(data: bytes) -> Iterator[Row]:
    for n, line in _lines(data):
        if line is None:
            yield Row(str(n), "", error=f"line {n} is not valid UTF-8")
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            yield Row(str(n), "", error=f"line {n} is not valid JSON ({exc})")
            continue
        if not isinstance(record, dict):
            yield Row(str(n), "", error=f'line {n} is not a JSON object; write {{"question": "..."}}')
            continue
        rid = str(record.get("id", n))
        question = record.get("question")
        gold = record.get("answers", record.get("answer"))
        golds = tuple(str(g) for g in gold) if isinstance(gold, list) else ((str(gold),) if gold else ())
        extra = {k: v for k, v in record.items() if k not in ("id", "question")}
        if not isinstance(question, str) or not question.strip():
            yield Row(rid, "", golds, extra, error=f"line {n} has no question")
        else:
            yield _checked(Row(rid, question, golds, extra))


def done_ids(path: Path, fmt: str) -> set[str]:
    """Ids already answered in an existing output file (for --resume); trims a torn last line."""
    if not path.exists() or path.stat().st_size == 0:
        return set()
    if fmt == "md":
        raise InputError(f"{path}: --resume needs a .jsonl or .csv answer file, not Markdown")
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        # The run was killed mid-row: drop the torn row so appending keeps the file valid.
        data = data[: data.rfind(b"\n") + 1]
        path.write_bytes(data)
    text = data.decode("utf-8", errors="replace")
    if fmt == "jsonl":
        ids = set()
        for line in text.splitlines():
            try:
                ids.add(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                continue
        return ids
    return {r["id"] for r in csv.DictReader(io.StringIO(text, newline="")) if r.get("id")}


def is_correct(answer: Answer, gold: tuple[str, ...]) -> bool:
    """A gold answer appears in the answer snippet (case and white space ignored)."""
    if answer.abstained or not answer.snippets:
        return False
    text = " ".join(answer.snippets[0].text.lower().split())
    return any(" ".join(g.lower().split()) in text for g in gold if g.strip())


def record(row: Row, answer: Answer | None) -> dict[str, Any]:
    """One output row: the answer in its one JSON shape, with the row's id, error and gold columns."""
    out: dict[str, Any] = {"id": row.id}
    if answer is None:
        out.update(empty_dict(row.question), error=row.error)
    else:
        out.update(answer_dict(answer), error="")
    if row.gold:
        out["gold"] = list(row.gold)
        out["correct"] = bool(answer is not None and is_correct(answer, row.gold))
    for k, v in row.extra.items():
        out.setdefault(k, v)
    return out


class Writer:
    """Writes answer records in one format, flushing each, so a partial file is always valid."""

    CSV_FIELDS = [
        "id",
        "question",
        "answer",
        "phrase",
        "citation_id",
        "source",
        "page",
        "start",
        "end",
        "confidence",
        "abstained",
        "reason",
        "supporting",
        "missing_terms",
        "error",
        "correct",
    ]

    def __init__(self, stream: IO[str], fmt: str, append: bool = False) -> None:
        self.stream, self.fmt = stream, fmt
        self._csv: csv.DictWriter[str] | None = None
        self._header_done = append
        self._n = 0

    def write(self, rec: dict[str, Any]) -> None:
        self._n += 1
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(rec, ensure_ascii=False) + "\n")
        elif self.fmt == "csv":
            self._write_csv(rec)
        else:
            self.stream.write(_markdown(rec, self._n, first=not self._header_done))
            self._header_done = True
        self.stream.flush()

    def _write_csv(self, rec: dict[str, Any]) -> None:
        extra = [k for k in rec if k not in self.CSV_FIELDS and k not in ("citation", "gold", "scorer")]
        if self._csv is None:
            self._csv = csv.DictWriter(
                self.stream, fieldnames=self.CSV_FIELDS + extra + ["gold"], extrasaction="ignore"
            )
            if not self._header_done:
                self._csv.writeheader()
        c = rec.get("citation") or {}
        flat = {
            **{k: v for k, v in rec.items() if k not in ("citation", "supporting", "gold", "phrase")},
            "phrase": (rec.get("phrase") or {}).get("text"),
            "citation_id": c.get("id"),
            "source": c.get("source"),
            "page": c.get("page"),
            "start": c.get("start"),
            "end": c.get("end"),
            "supporting": " | ".join(f"{s['text']} [{s['citation']['id']}]" for s in rec["supporting"]),
            "gold": " | ".join(rec.get("gold", [])),
            "missing_terms": " | ".join(rec.get("missing_terms") or []),
        }
        self._csv.writerow(flat)

    def finish(self, summary: Summary) -> None:
        if self.fmt == "md":
            self.stream.write(f"\n---\n\n**Summary:** {summary.line()}\n")
            self.stream.flush()


def _markdown(rec: dict[str, Any], n: int, first: bool) -> str:
    head = "# Answers\n\n" if first else ""
    lines = [f"## {n}. {rec['question'] or '(no question)'}", "", f"*id:* `{rec['id']}`", ""]
    if rec["error"]:
        lines += [f"**Error:** {rec['error']}", ""]
    elif rec["abstained"]:
        lines += [f"**Not in the sources:** {rec['reason']}.", ""]
        if rec["supporting"]:
            lines += ["Related passages:", ""] + [_md_quote(s) for s in rec["supporting"]]
    else:
        lines += [_md_quote({"text": rec["answer"], "citation": rec["citation"], "confidence": rec["confidence"]})]
        if rec.get("phrase"):
            lines += [f"*exact answer:* {rec['phrase']['text']}", ""]
        if rec.get("missing_terms"):
            lines += [f"*note:* {unmentioned_note(rec['missing_terms'])}", ""]
        if rec["supporting"]:
            lines += ["Supporting:", ""] + [_md_quote(s) for s in rec["supporting"]]
    if "correct" in rec:
        lines += [f"*gold:* {' / '.join(rec['gold'])} — {'correct' if rec['correct'] else 'not found'}", ""]
    return head + "\n".join(lines) + "\n"


def _md_quote(s: dict[str, Any]) -> str:
    c = s["citation"]
    page = f", p. {c['page']}" if c["page"] is not None else ""
    text = " ".join(str(s["text"]).split())
    where = f"{c['source']}{page}, chars {c['start']}-{c['end']} `[{c['id']}]`"
    return f"> {text}\n>\n> — {where} (confidence {s['confidence']:.2f})\n"


def run(
    assistant: Assistant,
    rows: Iterable[Row],
    writer: Writer,
    *,
    k: int | None = None,
    skip: set[str] | None = None,
    batch: int = BATCH,
    on_row: Callable[[dict[str, Any], Summary], None] | None = None,
) -> Summary:
    """Answer ``rows`` in batches, writing each record as it is made; returns the counts."""
    summary = Summary()
    started = time.perf_counter()
    pending: list[Row] = []

    def flush() -> None:
        good = [r for r in pending if not r.error]
        try:
            answers = iter(assistant.ask_many([r.question for r in good], k=k)) if good else iter(())
        except QAError:
            answers = None
        for r in pending:
            if r.error:
                ans = None
            elif answers is None:  # the batch failed as a whole: ask one by one to find the bad one
                try:
                    ans = assistant.ask(r.question, k=k)
                except QAError as exc:
                    r, ans = Row(r.id, r.question, r.gold, r.extra, str(exc)), None
            else:
                ans = next(answers)
            _count(summary, r, ans)
            rec = record(r, ans)
            writer.write(rec)
            summary.seconds = time.perf_counter() - started
            if on_row is not None:
                on_row(rec, summary)
        pending.clear()

    for row in rows:
        if skip and row.id in skip:
            summary.skipped += 1
            continue
        pending.append(row)
        if len(pending) >= batch:
            flush()
    flush()
    summary.seconds = time.perf_counter() - started
    writer.finish(summary)
    return summary


def _count(summary: Summary, row: Row, answer: Answer | None) -> None:
    summary.rows += 1
    if answer is None:
        summary.errors += 1
    elif answer.abstained:
        summary.abstained += 1
    else:
        summary.answered += 1
    if row.gold and not row.error:
        summary.with_gold += 1
        summary.correct += bool(answer is not None and is_correct(answer, row.gold))
