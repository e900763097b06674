"""The public surface stays small and deliberate."""

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
    for name in qa.__all__:
        assert getattr(qa, name) is not None


def test_settings_reject_bad_values_naming_them():
    import pytest

    with pytest.raises(qa.ConfigError, match=r"chunk overlap \(80\) must be from 0 to below chunk size \(64\)"):
        qa.Settings(chunk_tokens=64, chunk_overlap=80)
    with pytest.raises(qa.ConfigError, match="fusion 'max' is not one of cc, rrf"):
        qa.Settings(fusion="max")
