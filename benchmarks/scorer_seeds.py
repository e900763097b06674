"""Train the reader's recipe with several seeds from one start, average them, and pick one.

What made the shipped reader (2026-12-04): seeds 1-6 of the recipe, all from ``--init-seed
20261125``, trained side by side, each calibrated; then the mean of their weights (``--average``)
calibrated too. The candidate with the highest right-sentence-first plus unanswerable
declined-at-0.90-answered on the calibration questions is named; nothing here reads a report split.

    .venv/bin/python -m qa.scorer.train --du2017 work/scorer/du2017.pkl --v2 work/scorer/v2-0-7.pkl \\
        --data-files ../shared/datasets/squad/train-du2017.json ../shared/datasets/squad/dev-v2.0.cs224n-half.json \\
        --prepare work/scorer/prepared.xz
    .venv/bin/python benchmarks/scorer_seeds.py --prepared work/scorer/prepared.xz --runs work/seeds --jobs 6

On a GPU the six ran at once in 371 s each; on 2 CPU cores give ``--jobs 1`` (about 50 min a run).
Copy the named folder's four files into ``src/qa/scorer/model/`` to ship it.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

RECIPE = ["--epochs", "1.25", "--listwise", "1.0", "--negate-share", "0.5"]
LINE = re.compile(r"right sentence first ([\d.]+).*?declined ([\d.]+) at 0\.90")


def calibration_figures(log: str) -> tuple[float, float] | None:
    """Right sentence first and declined at 0.90 answered, from a training or --average log."""
    found = LINE.findall(log)
    return (float(found[-1][0]), float(found[-1][1])) if found else None


def ranked(figures: dict[str, tuple[float, float]]) -> list[str]:
    """Candidates best first by the sum of the two figures (ties: by name)."""
    return sorted(figures, key=lambda k: (-round(sum(figures[k]), 6), k))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", type=Path, required=True, help="qa.scorer.train --prepare's file")
    ap.add_argument("--runs", type=Path, required=True, help="folder for the runs (one folder and log each)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    ap.add_argument("--init-seed", type=int, default=20261125)
    ap.add_argument("--jobs", type=int, default=1, help="runs at once")
    ap.add_argument("--base", type=Path, help="a copy of all-MiniLM-L6-v2's folder (default: the installed one)")
    ap.add_argument("--extra", default="", help="more qa.scorer.train flags, e.g. '--limit 64' for a smoke run")
    args = ap.parse_args()
    if not args.prepared.is_file():
        ap.error(f"--prepared {args.prepared}: no such file (write it with qa.scorer.train --prepare)")
    args.runs.mkdir(parents=True, exist_ok=True)
    common = ["--prepared", str(args.prepared), *(["--base", str(args.base)] if args.base else []), *args.extra.split()]
    train = [sys.executable, "-m", "qa.scorer.train", *common]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}

    pending = list(args.seeds)
    running: list[tuple[int, subprocess.Popen[bytes]]] = []
    while pending or running:
        while pending and len(running) < args.jobs:
            seed = pending.pop(0)
            cmd = [*train, *RECIPE, "--seed", str(seed), "--init-seed", str(args.init_seed)]
            with (args.runs / f"s{seed}.log").open("wb") as log:
                proc = subprocess.Popen([*cmd, "--out", str(args.runs / f"s{seed}")], stdout=log, stderr=log, env=env)
            running.append((seed, proc))
        seed, proc = running.pop(0)
        if proc.wait() != 0:
            print(f"seed {seed} failed: see {args.runs / f's{seed}.log'}", file=sys.stderr)

    done = [args.runs / f"s{s}" for s in args.seeds if (args.runs / f"s{s}" / "calibration.json").is_file()]
    if len(done) >= 2:
        with (args.runs / "average.log").open("wb") as log:
            subprocess.run(
                [*train, "--average", *map(str, done), "--out", str(args.runs / "average")],
                stdout=log,
                stderr=log,
                env=env,
                check=False,
            )
    figures = {}
    for name in [d.name for d in done] + ["average"]:
        log = args.runs / f"{name}.log"
        got = calibration_figures(log.read_text(errors="replace")) if log.is_file() else None
        if got is not None and (args.runs / name / "calibration.json").is_file():
            figures[name] = got
    if not figures:
        sys.exit(f"no run finished: see the logs in {args.runs}")
    for name in ranked(figures):
        first, declined = figures[name]
        print(f"{name}: right first {first:.3f}, declined at 0.90 answered {declined:.3f}, sum {first + declined:.3f}")
    print(f"best: {args.runs / ranked(figures)[0]}")


if __name__ == "__main__":
    main()
