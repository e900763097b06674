"""Settings and the CPU features that decide the encoder's precision, with the QA_CPU_FLAGS override."""

from __future__ import annotations

import pytest

from qa import settings
from qa.errors import ConfigError

VNNI_FLAGS = "sse4_2,avx2,avx512f,avx512_vnni,avx512_bf16"


def test_cpu_flags_can_be_replaced_by_a_list(monkeypatch):
    monkeypatch.setenv("QA_CPU_FLAGS", VNNI_FLAGS)
    assert settings.cpu_flags() == frozenset(VNNI_FLAGS.split(","))
    assert settings.has_vnni() and settings.native_bf16() and settings.auto_precision() == "int8"


def test_cpu_flags_can_be_removed_to_take_the_path_without_vnni(monkeypatch):
    monkeypatch.setenv("QA_CPU_FLAGS", VNNI_FLAGS)
    base = settings.cpu_flags()
    monkeypatch.setenv("QA_CPU_FLAGS", "-avx512_vnni,-avx_vnni,-amx_int8")
    real = settings._proc_cpu_flags()
    assert settings.cpu_flags() == real - {"avx512_vnni", "avx_vnni", "amx_int8"}
    assert not settings.has_vnni()
    assert settings._amended(base, "-avx512_vnni, -avx512_bf16") == {"sse4_2", "avx2", "avx512f"}
    assert settings._amended(base, "-avx512_vnni") != base and settings.auto_precision() in ("bf16", "fp32")


def test_no_override_reads_the_cpu(monkeypatch):
    monkeypatch.delenv("QA_CPU_FLAGS", raising=False)
    assert settings.cpu_flags() == settings._proc_cpu_flags()
    monkeypatch.setenv("QA_CPU_FLAGS", " ")
    assert settings.cpu_flags() == settings._proc_cpu_flags()


def test_a_mixed_override_is_refused_naming_it(monkeypatch):
    monkeypatch.setenv("QA_CPU_FLAGS", "avx2,-avx512_vnni")
    with pytest.raises(ConfigError, match=r"QA_CPU_FLAGS \('avx2,-avx512_vnni'\) mixes"):
        settings.cpu_flags()


def test_the_thresholds_tests_used_to_patch_are_settings():
    assert settings.Settings(exact_up_to=5, read_workers_from_bytes=0).exact_up_to == 5
    with pytest.raises(ConfigError, match=r"exact up to \(0\) must be at least 1"):
        settings.Settings(exact_up_to=0)
