"""Curriculum tier: every lesson, every reference solution and every untouched exercise
template runs with papermill on the sample data, and what it computed is checked by the
course's ``grader/verify.py`` (see statbox.courses.run, which ``statbox course check`` uses too).

Fixtures:
- ``sample_data``: the catalog's small samples, generated once per session into a temporary
  data root by ``statbox catalog samples`` (the real command), removed at the end. Set
  ``STATBOX_TEST_SAMPLES=DIR`` to use samples generated earlier instead (kept).
- ``courses``: the shipped curriculum, loaded and valid.
- ``curriculum_runs``: every notebook the selected tests need, run once per session, a few
  at a time (each kernel is its own process), by ``"<course>/<notebook>"``.

A course's ``grader/verify.py`` defines ``EXPECTED``: notebook path (as in course.yaml) ->
``check(results, data_root)``, which recomputes the figures another way from the same data
and asserts they agree. Every lesson, solution and exercise template must have one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from statbox.courses import LoadedCourse, load_curriculum
from statbox.courses.run import Environment, NotebookJob, NotebookRun, course_jobs, run_jobs
from tests.conftest import REPO

CURRICULUM = REPO / "curriculum"
CATALOG = REPO / "catalogs" / "statbox.yaml"
THREADS = 3
"""Notebooks run at once: kernel start-up waits on I/O as much as on CPU, so 3 beats 2 cores."""


def curriculum_jobs() -> dict[str, NotebookJob]:
    """Every notebook job of the shipped curriculum, by name."""
    jobs = [job for loaded in load_curriculum(CURRICULUM).values() for job in course_jobs(loaded)]
    return {job.name: job for job in jobs}


@pytest.fixture(scope="session")
def courses() -> dict[str, LoadedCourse]:
    return load_curriculum(CURRICULUM)


@pytest.fixture(scope="session")
def sample_data() -> Iterator[Path]:
    given = os.environ.get("STATBOX_TEST_SAMPLES")
    if given:
        yield Path(given).resolve()
        return
    root = Path(tempfile.mkdtemp(prefix="statbox-samples-"))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "statbox.cli", "catalog", "samples", "--out", str(root)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"statbox catalog samples failed:\n{done.stderr}"
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def curriculum_runs(request, sample_data, tmp_path_factory) -> dict[str, NotebookRun]:
    """Runs of the notebooks the selected tests need: those a ``notebook`` parameter names,
    the originals of those a ``translation`` parameter names (``<course>/<notebook>@<lang>``),
    and every notebook of a course a ``loaded`` parameter names."""
    jobs = curriculum_jobs()
    wanted: set[str] = set()
    for item in request.session.items:
        params = getattr(item, "callspec", None)
        params = params.params if params is not None else {}
        wanted.add(params.get("notebook", ""))
        translation = params.get("translation")
        if isinstance(translation, str):  # "<course>/<notebook>@<lang>": its original
            wanted.add(translation.split("@")[0])
        wanted.update(name for name in jobs if name.split("/")[0] == params.get("loaded"))
    runs = run_jobs(
        [job for name, job in jobs.items() if name in wanted],
        Environment(CATALOG, sample_data),
        tmp_path_factory.mktemp("curriculum"),
        threads=THREADS,
        progress=False,
    )
    return {run.job.name: run for run in runs}
