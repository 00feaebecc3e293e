"""Curriculum tier: every lesson and every reference solution runs with papermill on the
sample data, and what it computed is checked by the course's ``grader/verify.py``.

Fixtures:
- ``sample_data``: the catalog's small samples, generated once per session into a temporary
  data root by ``statbox catalog samples`` (the real command), removed at the end.
- ``run_notebook(course, notebook, parameters)``: executes one notebook in a fresh kernel
  with ``STATBOX_CATALOG``, ``STATBOX_DATA_ROOT`` and ``STATBOX_RESULTS`` set; returns the
  results it recorded (see statbox.courses.results).

A course's ``grader/verify.py`` defines ``EXPECTED``: notebook path (as in course.yaml) ->
``check(results, data_root)``, which recomputes the figures another way from the same data
and asserts they agree. Every lesson and solution must have one.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from statbox.courses import LoadedCourse, load_curriculum
from statbox.courses.results import RESULTS_ENV, read_results
from tests.conftest import REPO

CURRICULUM = REPO / "curriculum"
CATALOG = REPO / "catalogs" / "statbox.yaml"


def course_notebooks() -> list[tuple[str, str]]:
    """(course id, notebook) for every lesson and reference solution in the curriculum."""
    found = []
    for course_id, loaded in load_curriculum(CURRICULUM).items():
        found.extend((course_id, lesson.notebook) for lesson in loaded.course.lessons)
        if loaded.course.exercise is not None:
            found.append((course_id, loaded.course.exercise.solution))
    return found


def load_verifier(loaded: LoadedCourse) -> dict[str, Callable[[dict[str, Any], Path], None]]:
    path = loaded.directory / "grader" / "verify.py"
    spec = importlib.util.spec_from_file_location(f"verify_{loaded.id.replace('-', '_')}", path)
    assert spec is not None and spec.loader is not None, f"{path} is missing"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EXPECTED


@pytest.fixture(scope="session")
def courses() -> dict[str, LoadedCourse]:
    return load_curriculum(CURRICULUM)


@pytest.fixture(scope="session")
def sample_data() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="statbox-samples-"))
    subprocess.run(
        [sys.executable, "-m", "statbox.cli", "catalog", "samples", "--out", str(root)],
        check=True,
        capture_output=True,
    )
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def run_notebook(sample_data, courses, tmp_path, monkeypatch):
    import papermill

    def run(course_id: str, notebook: str, parameters: dict[str, Any] | None = None) -> dict:
        loaded = courses[course_id]
        results = tmp_path / "results.json"
        monkeypatch.setenv("STATBOX_CATALOG", str(CATALOG))
        monkeypatch.setenv("STATBOX_DATA_ROOT", str(sample_data))
        monkeypatch.setenv(RESULTS_ENV, str(results))
        papermill.execute_notebook(
            str(loaded.path(notebook)),
            str(tmp_path / "executed.ipynb"),
            parameters=parameters or {},
            cwd=str(loaded.path(notebook).parent),
            kernel_name="python3",
            progress_bar=False,
            execution_timeout=300,
        )
        return read_results(results)

    return run
