"""The README's instructor commands grade the reference solution at full marks wherever the
checkout is: a fresh clone under ``/tmp`` (where a sandbox covering ``/tmp`` once hid the
catalog and graded everyone 0) and one under the operator's home.

Each clone runs its own code (``PYTHONPATH`` puts the clone's ``statbox`` first, before the
editable install's) with the default settings, from the clone's folder, as the README says.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from statbox.courses import load_curriculum
from tests.conftest import REPO

pytestmark = [pytest.mark.certify, pytest.mark.slow, pytest.mark.usefixtures("sandbox")]

COURSE, EXERCISE = "ais-port-calls", "port-calls-exercise"


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    """The catalog's sample data, made once and copied into each clone's data root."""
    root = tmp_path_factory.mktemp("samples")
    statbox(REPO, "catalog", "samples", "--out", str(root))
    return root


def statbox(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    env.pop("STATBOX_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "statbox.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"statbox {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(params=["tmp", "home"])
def clone(request) -> Iterator[Path]:
    parent = Path(tempfile.mkdtemp(dir=None if request.param == "tmp" else Path.home()))
    try:
        parent.chmod(0o755)
        target = parent / "statbox"
        # the committed tree, as CI's fresh clone has it
        subprocess.run(
            ["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(target)], check=True
        )
        yield target
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_the_readme_commands_grade_the_solution_at_full_marks(clone, samples):
    shutil.copytree(samples, clone / "data")
    for path in [clone / "data", *(clone / "data").rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    loaded = load_curriculum(clone / "curriculum")[COURSE]
    exercise = loaded.course.exercise
    assert exercise is not None
    subs = clone / "subs"
    subs.mkdir()
    shutil.copy(loaded.path(exercise.solution), subs / "alice.ipynb")
    statbox(
        clone, "certify", "run", "--course", COURSE, "--exercise", EXERCISE,
        "--submissions", "subs/", "--out", "graded/", "--workers", "1", "--cohort", "c-2026",
    )  # fmt: skip
    with open(clone / "graded" / "results.csv") as handle:
        rows = {row["trainee"]: row for row in csv.DictReader(handle)}
    alice = rows["alice"]
    assert float(alice["score"]) == float(alice["max_score"]), alice["reason"]
