"""The public surface stays small and deliberate."""

import importlib

import qa


def test_public_names_are_exactly_these():
    assert sorted(qa.__all__) == [
        "Answer",
        "Assistant",
        "BuildReport",
        "Citation",
        "CitationError",
        "ConfigError",
        "Document",
        "FileReport",
        "IndexFolderError",
        "IngestError",
        "InputError",
        "Passage",
        "QAError",
        "QuoteMatch",
        "Settings",
        "Snippet",
    ]
    star: dict[str, object] = {}
    exec("from qa import *", star)
    assert sorted(k for k in star if not k.startswith("__")) == sorted(qa.__all__)


def test_each_public_name_is_the_class_its_own_module_defines():
    for name in qa.__all__:
        obj = getattr(qa, name)
        assert isinstance(obj, type) and obj.__name__ == name, name
        home = importlib.import_module(obj.__module__)
        assert home.__name__.startswith("qa.") and getattr(home, name) is obj, name
    errors = [getattr(qa, n) for n in qa.__all__ if n.endswith("Error")]
    assert errors and all(issubclass(e, qa.QAError) for e in errors)


def test_settings_reject_bad_values_naming_them():
    import pytest

    with pytest.raises(qa.ConfigError, match=r"chunk overlap \(80\) must be from 0 to below chunk size \(64\)"):
        qa.Settings(chunk_tokens=64, chunk_overlap=80)
    with pytest.raises(qa.ConfigError, match="fusion 'max' is not one of cc, rrf"):
        qa.Settings(fusion="max")


def test_importing_qa_changes_nothing_in_the_environment():
    """Environment defaults are set where the model is loaded or the app built, not at import."""
    import subprocess
    import sys

    code = (
        "import os; before = dict(os.environ); import qa, qa.embed, qa.web, qa.cli; print(dict(os.environ) == before)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "True", result.stderr[-2000:]


def test_the_web_stylesheet_ships_inside_the_package():
    from importlib.resources import files

    css = files("qa") / "assets" / "style.css"
    assert css.is_file() and "#chat" in css.read_text(encoding="utf-8")
