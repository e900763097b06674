"""Load test of the web UI on loopback: concurrent chat users and batch uploads, bounded in count.

Starts the UI over the sample corpus on a free localhost port, then for each number of users runs
that many clients at once, each asking the same questions through the `/chat` API, while batch
uploads run beside them. Checks that no request fails and that every answer equals the single-user
answer, and reports latency p50/p95 per level and the most users held with p95 under one second.

    .venv/bin/python benchmarks/load.py --users 1 2 4 8 16 --questions 10 --out results/load.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import emit, free_port, machine, percentiles

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = json.loads((ROOT / "tests/data/seed_questions.json").read_text(encoding="utf-8"))
ASKED = [c["question"] for c in QUESTIONS["answerable"]] + QUESTIONS["off_topic"]


def _reply(history: list[dict]) -> str:
    content = history[-1]["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


def run_level(
    url: str,
    users: int,
    questions: list[str],
    expected: dict[str, str],
    batch_file: Path | None,
    batches: int,
    time_limit: float,
) -> dict:
    """``users`` clients asking ``questions`` each at once (plus ``batches`` uploads)."""
    from gradio_client import Client, handle_file

    deadline = time.monotonic() + time_limit

    def user(n: int) -> tuple[list[float], int, int]:
        client = Client(url, verbose=False, analytics_enabled=False)
        latencies, failed, wrong = [], 0, 0
        for q in questions[n % len(questions) :] + questions[: n % len(questions)]:
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            try:
                history, *_ = client.predict(q, [], 3, api_name="/chat")
            except Exception:  # a failed request is what this test counts
                failed += 1
                continue
            latencies.append(time.perf_counter() - started)
            wrong += _reply(history) != expected[q]
        return latencies, failed, wrong

    def upload(_: int) -> int:
        client = Client(url, verbose=False, analytics_enabled=False)
        table, _, _ = client.predict(handle_file(str(batch_file)), "jsonl", 3, api_name="/batch")
        return len(table["data"])

    started = time.perf_counter()
    with ThreadPoolExecutor(users + batches) as pool:
        uploads = [pool.submit(upload, i) for i in range(batches if batch_file else 0)]
        results = list(pool.map(user, range(users)))
        uploaded = [u.result() for u in uploads]
    latencies = [1000 * x for r in results for x in r[0]]
    wall = time.perf_counter() - started
    p50, p95 = percentiles(latencies, 1)
    return {
        "users": users,
        "requests": len(latencies),
        "failed": sum(r[1] for r in results),
        "different_answers": sum(r[2] for r in results),
        "batch_uploads": len(uploaded),
        "batch_rows": sum(uploaded),
        "p50_ms": p50,
        "p95_ms": p95,
        "requests_per_s": round(len(latencies) / wall, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--questions", type=int, default=10, help="questions per user")
    parser.add_argument("--batches", type=int, default=1, help="batch uploads running beside each level")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per level at most")
    parser.add_argument(
        "--batch-questions", type=int, default=len(ASKED), help=f"questions per batch file (at most {len(ASKED)})"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from qa import Assistant
    from qa.web import answer_markdown, build_app, launch

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        shutil.copy(ROOT / "corpus/us-japan-defense-cooperation-2024.txt", corpus)
        Assistant.build(corpus, Path(tmp) / "index")
        assistant = Assistant.open(Path(tmp) / "index")
        questions = ASKED[: args.questions]
        expected = {q: answer_markdown(assistant.ask(q, k=3)) for q in questions}
        batch_file = Path(tmp) / "batch.txt"
        batch_file.write_text("\n".join(ASKED[: args.batch_questions]) + "\n")
        port = free_port()
        demo = launch(build_app(assistant), port=port, block=False)
        try:
            levels = [
                run_level(
                    f"http://127.0.0.1:{port}/", u, questions, expected, batch_file, args.batches, args.time_limit
                )
                for u in args.users
            ]
        finally:
            demo.close()
    held = [lv["users"] for lv in levels if lv["p95_ms"] is not None and lv["p95_ms"] < 1000 and not lv["failed"]]
    result = {"machine": machine(), "levels": levels, "max_users_with_p95_under_1s": max(held) if held else 0}
    emit(result, args.out)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
