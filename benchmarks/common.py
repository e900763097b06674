"""What the benchmark scripts share: timing, percentiles, the machine they ran on, free ports, output."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def percentiles(ms: Sequence[float], digits: int = 2) -> tuple[float, float] | tuple[None, None]:
    """(p50, p95) of ``ms``, linear interpolation as numpy computes them; (None, None) when empty."""
    if not len(ms):
        return None, None
    p50, p95 = np.percentile(np.asarray(ms, dtype=float), [50, 95])
    return round(float(p50), digits), round(float(p95), digits)


@contextlib.contextmanager
def timer(into: list[float]) -> Iterator[None]:
    """Append the block's wall time, in milliseconds, to ``into``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        into.append((time.perf_counter() - started) * 1000)


def cpu_flags_of_note() -> list[str]:
    """The CPU features that decide qa's int8 and bf16 paths (after any ``QA_CPU_FLAGS`` override)."""
    from qa.settings import cpu_flags

    return sorted(cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "amx_bf16"})


def machine() -> str:
    """CPU model, the features qa's precision choice reads, core count and Python version."""
    model = ""
    with contextlib.suppress(OSError, StopIteration):
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    flags = ", ".join(cpu_flags_of_note()) or "no AVX2"
    return f"{model or platform.machine()} ({flags}), {os.cpu_count()} cores, Python {platform.python_version()}"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def emit(result: dict[str, Any], out: Path | None) -> None:
    """Print the result as JSON and, given ``out``, write it there too."""
    print(json.dumps(result, indent=1))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
