"""Every invalid catalog is refused by loading through Statbox and by ``statbox catalog
validate``, with a message naming the file and the line, and exit code 2.

Each fixture in tests/fixtures/catalogs/invalid/ starts with ``# expect: TEXT`` and marks the
offending line with ``# <- here``."""

from __future__ import annotations

from pathlib import Path

import pytest

from statbox.catalog import CatalogError, load_catalog
from statbox.cli import main
from tests.conftest import REPO

pytestmark = pytest.mark.catalog

INVALID = sorted((REPO / "tests" / "fixtures" / "catalogs" / "invalid").glob("*.yaml"))


def _expectation(path: Path) -> tuple[str, int]:
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# expect: "), f"{path.name}: first line must be '# expect: TEXT'"
    marked = [n for n, line in enumerate(lines, 1) if line.endswith("# <- here")]
    assert len(marked) == 1, f"{path.name}: mark the offending line with '# <- here'"
    return lines[0].removeprefix("# expect: "), marked[0]


def _load_and_open(path: Path, root: Path) -> None:
    catalog = load_catalog(path, root)
    for name in catalog.info.entries:
        catalog[name]


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_catalog_is_refused_with_file_and_line(path, samples, capsys):
    text, line = _expectation(path)
    with pytest.raises(CatalogError) as caught:
        _load_and_open(path, samples)
    matching = [p for p in caught.value.problems if text in str(p)]
    assert matching, f"expected {text!r} in {[str(p) for p in caught.value.problems]}"
    assert all(p.source == str(path) for p in matching)
    if path.stem != "alias-bomb":  # aliases share nodes, so any of their lines is right
        assert line in [p.line for p in matching], [str(p) for p in matching]

    code = main(["catalog", "validate", str(path), "--data-root", str(samples)])
    err = capsys.readouterr().err
    assert code == 2
    assert text in err
    assert f"{path}:" in err
    assert "Traceback" not in err


def test_nothing_in_a_refused_catalog_runs(samples, tmp_path, monkeypatch):
    """The python tag, templates and parameters would touch this file if evaluated."""
    marker = tmp_path / "ran"
    monkeypatch.chdir(tmp_path)
    source = (REPO / "tests/fixtures/catalogs/invalid/python-tag.yaml").read_text()
    evil = tmp_path / "evil.yaml"
    evil.write_text(source.replace("echo pwned", f"touch {marker}"))
    with pytest.raises(CatalogError):
        load_catalog(evil, samples)
    assert not marker.exists()
