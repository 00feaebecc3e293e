"""The import contracts in pyproject.toml hold, and would catch a module reaching up.

import-linter checks them (``make lint`` runs it too): layers run one way (cli -> ops ->
modes -> capabilities -> configure, spawners, catalog -> identity -> settings -> resources ->
contract), the deployment modes are independent, and no package has an import loop.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_hold():
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    root.mkdir()
    shutil.copy(REPO / "pyproject.toml", root)
    shutil.copytree(REPO / "statbox", root / "statbox", symlinks=True)
    return root


def test_a_library_module_importing_the_cli_breaks_the_layers(tmp_path):
    root = _copy(tmp_path)
    units = root / "statbox" / "settings" / "units.py"
    units.write_text(units.read_text() + "\n\ndef _reach_up():\n    import statbox.cli\n")
    result = _lint(root)
    assert result.returncode == 1
    assert "statbox.settings.units -> statbox.cli" in result.stdout


def test_an_import_loop_is_caught(tmp_path):
    root = _copy(tmp_path)
    opened = root / "statbox" / "catalog" / "levels.py"
    opened.write_text(opened.read_text() + "\n\ndef _loop():\n    import statbox.catalog.loader\n")
    result = _lint(root)
    assert result.returncode == 1
    assert "No import loops" in result.stdout and "BROKEN" in result.stdout
