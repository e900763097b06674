"""A small, bounded load test against a real UI server on loopback (the full one is benchmarks/load.py)."""

from __future__ import annotations

import importlib.util

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow


def test_concurrent_chats_and_batch_uploads_all_succeed_with_single_user_answers(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # for its `common` module, as when run as a script
    spec = importlib.util.spec_from_file_location("load", ROOT / "benchmarks" / "load.py")
    load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load)
    argv = ["--users", "1", "6", "--questions", "4", "--batches", "2", "--batch-questions", "12", "--time-limit", "120"]
    result = load.main(argv)
    for level in result["levels"]:
        assert level["failed"] == 0 and level["different_answers"] == 0
        assert level["requests"] == level["users"] * 4
        assert level["batch_uploads"] == 2 and level["batch_rows"] == 2 * 12
