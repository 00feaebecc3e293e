"""The catalogs are complete: every string Babel extracts from Statbox's templates and code
(``statbox/i18n/babel.cfg``: ``_()`` and ``N_()``) has a translation in every shipped
language, and every translation keeps its placeholders (a lost ``%(name)s`` would crash or
mislead the page that fills it in)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from statbox.i18n import LANGUAGES, SOURCE_LANGUAGE, catalog_path

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\([a-z_]+\)s|%%")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> dict[str, object]:
    """What Babel's extractor finds in the checkout now (its own CLI, as a maintainer runs it)."""
    template = tmp_path_factory.mktemp("pot") / "statbox.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            "statbox/i18n/babel.cfg",
            "-k",
            "N_",
            "--no-location",
            "-o",
            str(template),
            ".",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with template.open("rb") as handle:
        catalog = read_po(handle)
    messages = {message.id: message for message in catalog if message.id}
    assert len(messages) > 50, "the extraction found almost nothing: is babel.cfg right?"
    return messages


@pytest.mark.parametrize("language", [lang for lang in LANGUAGES if lang != SOURCE_LANGUAGE])
def test_every_extracted_string_is_translated(language, extracted):
    with (ROOT / "statbox/i18n" / catalog_path(language)).open("rb") as handle:
        catalog = read_po(handle)
    missing = [
        key
        for key in extracted
        if catalog.get(key) is None or not catalog.get(key).string or catalog.get(key).fuzzy
    ]
    assert not missing, f"{language}: no translation for {missing}"
    broken = [
        key
        for key in extracted
        if sorted(PLACEHOLDER.findall(key)) != sorted(PLACEHOLDER.findall(catalog.get(key).string))
    ]
    assert not broken, f"{language}: placeholders differ in {broken}"
