"""What the benchmark scripts share: the machine they ran on, and how results are written."""

from __future__ import annotations

import contextlib
import json
import os
import platform
from pathlib import Path


def machine() -> str:
    """CPU model, core count and Python version, for every result file."""
    model = ""
    with contextlib.suppress(OSError, StopIteration):
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return f"{model or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def emit(result: dict, out: Path | None) -> None:
    """Print the result as JSON and, given ``out``, write it there too."""
    print(json.dumps(result, indent=1))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
