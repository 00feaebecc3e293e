"""The CLI starts without the heavy libraries, so a bad catalog is refused at once.

Building the parser registers every command group of ``statbox.cli.COMMAND_MODULES``; none may
import a data or server library to do so (they import it in the command that uses it).
Refusing an unsafe catalog needs none of them either. Fresh interpreters, so that what this
test process already imported does not hide an import.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.catalog

HEAVY = [
    "dask",
    "distributed",
    "fsspec",
    "geopandas",
    "intake",
    "jupyterhub",
    "kubernetes",
    "numpy",
    "pandas",
    "papermill",
    "pyarrow",
    "sqlalchemy",
    "tornado",
    "xarray",
    "zarr",
]

BUILD = """
import json, sys
from statbox.cli import COMMAND_MODULES, build_parser
build_parser()
print(json.dumps({{"modules": COMMAND_MODULES, "heavy": sorted(set({heavy}) & set(sys.modules))}}))
"""
VALIDATE = """
import contextlib, io, json, sys
from statbox.cli import main
err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = main(["catalog", "validate", {path!r}, "--data-root", {root!r}])
heavy = sorted(set({heavy}) & set(sys.modules))
print(json.dumps({{"code": code, "err": err.getvalue(), "heavy": heavy}}))
"""


def _run(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_building_the_parser_imports_no_heavy_library():
    seen = _run(BUILD.format(heavy=HEAVY))
    assert "statbox.cli.catalog" in seen["modules"]
    assert seen["heavy"] == []


def test_refusing_an_unsafe_catalog_imports_no_heavy_library(tmp_path):
    unsafe = REPO / "tests" / "fixtures" / "catalogs" / "invalid" / "python-tag.yaml"
    seen = _run(VALIDATE.format(path=str(unsafe), root=str(tmp_path), heavy=HEAVY))
    assert seen["code"] == 2
    assert f"{unsafe}:" in seen["err"] and "would construct a Python object" in seen["err"]
    assert seen["heavy"] == []
