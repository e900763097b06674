"""Time and peak memory of indexing one long line of text without punctuation.

Writes a file of --mb megabytes on a single line (words of the sample corpus, no punctuation: the
worst case for sentence splitting), then, each in a fresh process, reads and chunks it with the
model's tokenizer (``--stage chunk``) and/or runs the whole ``qa index`` on it (``--stage index``),
and reports wall time and the process's peak resident memory (ru_maxrss).

    .venv/bin/python benchmarks/long_line.py --mb 20 --stage chunk index --out results/long_line.json
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import emit, machine

ROOT = Path(__file__).resolve().parents[1]

CHUNK_ONLY = """
import sys, time
from pathlib import Path
from qa.chunk import chunk_document, split_sentences
from qa.embed import SentenceTransformerEmbedder
from qa.ingest import SourceFile, read_document

tokenizer = SentenceTransformerEmbedder().tokenizer
path = Path(sys.argv[1])
started = time.perf_counter()
doc, _ = read_document(SourceFile(path, path.name), 10**9)
spans = split_sentences(doc)
split_s = time.perf_counter() - started
sentences, chunks = chunk_document(doc, tokenizer, 200, 32, True, spans)
print(split_s, time.perf_counter() - started, len(sentences), len(chunks), max(b - a for a, b in spans))
"""


def one_line(megabytes: float) -> str:
    words = re.findall(r"[A-Za-z]+", (ROOT / "corpus/us-japan-defense-cooperation-2024.txt").read_text())
    out, size, i = [], 0, 0
    while size < megabytes * 1e6:
        word = words[i % len(words)]
        out.append(word)
        size += len(word) + 1
        i += 7
    return " ".join(out)


def child(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB, and stdout of a child process (one at a time, so ru_maxrss is its own)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        print("warning: peak RSS not above an earlier child's; run one stage per invocation", file=sys.stderr)
    sys.stderr.write(done.stderr)
    return seconds, peak / 1024, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--stage", nargs="+", choices=["chunk", "index"], default=["chunk"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result: dict = {"machine": machine(), "megabytes": args.mb}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        path = corpus / "long-line.txt"
        path.write_text(one_line(args.mb))
        result["characters"] = path.stat().st_size
        if "chunk" in args.stage:
            seconds, peak, out = child([sys.executable, "-c", CHUNK_ONLY, str(path)])
            split_s, total_s, sentences, chunks, longest = out.split()
            result["read_and_chunk"] = {
                "seconds": round(seconds, 1),
                "split_seconds": round(float(split_s), 1),
                "read_split_chunk_seconds": round(float(total_s), 1),
                "peak_rss_mb": round(peak),
                "sentences": int(sentences),
                "chunks": int(chunks),
                "longest_sentence_chars": int(longest),
            }
        if "index" in args.stage:
            index = Path(tmp) / "index"
            seconds, peak, _ = child([sys.executable, "-m", "qa", "index", str(corpus), "--index", str(index)])
            result["qa_index"] = {"seconds": round(seconds, 1), "peak_rss_mb": round(peak)}
    emit(result, args.out)


if __name__ == "__main__":
    main()
