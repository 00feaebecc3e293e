"""The generated reference pages (docs/settings.md, docs/commands.md) match the code.

When this fails, the settings model or a command changed: run
``.venv/bin/python scripts/reference.py --write`` and commit the pages it rewrites.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "reference.py"


@pytest.fixture(scope="module")
def reference() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("statbox_reference_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def pages(reference: ModuleType) -> dict[str, str]:
    return reference.generate()


def test_reference_pages_are_up_to_date(reference, pages):
    stale = reference.stale(ROOT, pages)
    assert not stale, (
        f"stale: {', '.join(stale)}; run .venv/bin/python scripts/reference.py --write"
    )


def test_check_finds_a_changed_byte_and_a_missing_page(reference, pages, tmp_path):
    assert reference.write(tmp_path, pages) == list(pages)
    assert reference.stale(tmp_path, pages) == []

    settings = tmp_path / "docs" / "settings.md"
    text = settings.read_bytes()
    settings.write_bytes(text[:-2] + bytes([text[-2] ^ 1]) + text[-1:])
    assert reference.stale(tmp_path, pages) == ["docs/settings.md"]

    (tmp_path / "docs" / "commands.md").unlink()
    assert reference.stale(tmp_path, pages) == ["docs/settings.md", "docs/commands.md"]


def test_check_exits_1_naming_the_stale_page(reference, pages, tmp_path, monkeypatch, capsys):
    reference.write(tmp_path, pages)
    (tmp_path / "docs" / "commands.md").write_text("old\n", encoding="utf-8")
    monkeypatch.setattr(reference, "ROOT", tmp_path)
    monkeypatch.setattr(reference, "generate", lambda: pages)
    assert reference.main(["--check"]) == 1
    assert "docs/commands.md is stale: run" in capsys.readouterr().err


def test_pages_are_the_same_on_every_machine(pages):
    for name, text in pages.items():
        assert str(ROOT) not in text, f"{name} names this checkout's path"
    assert "| `2` |" in pages["docs/commands.md"], "the exit codes are in the command reference"
    assert "`roles.<role>.dask.max_workers`" in pages["docs/settings.md"]
