"""Cold start: each `qa` command as a new user types it, in a fresh process, wall time p50 over runs.

    .venv/bin/python benchmarks/cold_start.py                       # ONNX (after) vs QA_NO_ONNX=1 (torch)
    .venv/bin/python benchmarks/cold_start.py --before-src ../main/src   # another checkout's code as "before"

Builds the sample corpus into a scratch index once (``qa index``, which also writes the ONNX
exports), then times ``qa --help``, ``qa ask``, ``qa sources``, ``qa cite``, ``qa quote`` and
``qa remove`` (on a fresh copy of corpus and index each run). "Before" is either the same code with
``QA_NO_ONNX=1`` (questions through torch) or, with ``--before-src``, another source tree (for
instance a checkout of main) on ``PYTHONPATH``. Before and after alternate run by run, so machine
load hits both alike; the load average is recorded at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import emit, machine

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "corpus" / "us-japan-defense-cooperation-2024.txt"
QUESTION = "What does SOSA do?"


def run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "qa", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before-src", type=Path, default=None, help="source tree of the code to compare against")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "cold_start.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="qa-cold-"))
    try:
        (work / "corpus").mkdir()
        shutil.copy(SEED, work / "corpus" / SEED.name)
        (work / "corpus" / "extra.txt").write_text("The harbour opened in 1901. Ferries leave every hour.\n")
        after = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "XDG_STATE_HOME": str(work / "state")}
        after.pop("QA_NO_ONNX", None)
        after.pop("QA_INDEX", None)
        if args.before_src is not None:
            before = {**after, "PYTHONPATH": str(args.before_src.resolve())}
        else:
            before = {**after, "QA_NO_ONNX": "1"}
        seconds, built = run(["index", "corpus", "--index", "index"], after, work)
        if built.returncode != 0:
            sys.exit(f"qa index failed: {built.stderr[-500:]}")
        print(f"index built in {seconds:.1f}s", file=sys.stderr)
        _, answer = run(["ask", QUESTION, "--index", "index", "--json"], after, work)
        shown = json.loads(answer.stdout)
        citation = (shown["citation"] or shown["supporting"][0]["citation"])["id"]
        commands = {
            "qa --help": ["--help"],
            f'qa ask "{QUESTION}"': ["ask", QUESTION, "--index", "index"],
            "qa sources": ["sources", "--index", "index"],
            "qa cite ID": ["cite", citation, "--index", "index"],
            'qa quote "…"': ["quote", "Patriot missiles", "--index", "index"],
            "qa remove SOURCE": ["remove", "extra.txt", "--index", "copy/index"],
        }
        load_start = os.getloadavg()
        times: dict[str, dict[str, list[float]]] = {name: {"before": [], "after": []} for name in commands}
        for n in range(args.runs):
            for name, argv in commands.items():
                for side, env in (("before", before), ("after", after)):
                    if name.startswith("qa remove"):
                        _fresh_copy(work)
                    seconds, done = run(argv, env, work)
                    if done.returncode != 0:
                        sys.exit(f"{name} ({side}) failed: {done.stderr[-500:]}")
                    times[name][side].append(seconds)
            print(f"run {n + 1}/{args.runs} done", file=sys.stderr)
        result = {
            "machine": machine(),
            "load_average": {"start": load_start, "end": os.getloadavg()},
            "before": str(args.before_src) if args.before_src else "same code with QA_NO_ONNX=1 (torch)",
            "runs": args.runs,
            "p50_s": {name: {k: round(statistics.median(v), 2) for k, v in s.items()} for name, s in times.items()},
            "all_s": {name: {k: [round(x, 2) for x in v] for k, v in s.items()} for name, s in times.items()},
        }
        emit(result, args.out)
        print("\n| command | p50 before (s) | p50 after (s) |\n| --- | --- | --- |")
        for name, p in result["p50_s"].items():
            print(f"| `{name}` | {p['before']:.2f} | {p['after']:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fresh_copy(work: Path) -> None:
    """A copy of the corpus and index for `qa remove` to change, with the copy's corpus as its root."""
    copy = work / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(work / "corpus", copy / "corpus")
    shutil.copytree(work / "index", copy / "index")
    gen = copy / "index" / (copy / "index" / "CURRENT").read_text().strip()
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["roots"] = [str((copy / "corpus").resolve())]
    for entry in manifest["files"].values():
        entry["path"] = str((copy / "corpus" / Path(entry["path"]).name).resolve())
    (gen / "manifest.json").write_text(json.dumps(manifest))


if __name__ == "__main__":
    main()
