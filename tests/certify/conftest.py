"""Certify tier: grading with real kernels (papermill, ipykernel) in the real sandbox.

The tier grades its own test exercise (``tests/fixtures/courses/shop-prices``: three
tasks over a prices file) on data the tests write themselves, so it needs no other branch;
``test_curriculum_exercises.py`` covers the shipped courses. The sandbox needs root (CI runs
as root): without it the kernel tests skip on a laptop and fail under ``CI=true``.

Fixtures:
- ``data_root``: a data root holding the shop data (``sampledata.py``; session; removed after).
- ``grading``: a :class:`Grading` helper over a fresh state directory with a fixed cohort
  secret (so variants are known in advance); ``grading.run(...)``
  grades a dict of trainee -> notebook bytes and returns the run's summary.
- ``sandbox``: skip (fail under CI) unless the sandbox backend can run here.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from statbox.certify.exercise import GradedExercise, find_course, load_exercise
from statbox.certify.isolation import Limits, SandboxIsolation
from statbox.certify.runner import GradingSetup, RunOptions, RunSummary, run
from statbox.certify.variants import parameters_for
from tests.certify.sampledata import CATALOG, write_sample_data
from tests.conftest import REPO, require_tool

COURSES = REPO / "tests" / "fixtures" / "courses"
SAMPLE = COURSES / "shop-prices"
SUBMISSIONS = REPO / "tests" / "fixtures" / "submissions"
SECRET = bytes(range(32))
"""The tests' cohort secret: variants are the same on every run."""


@pytest.fixture(scope="session")
def sandbox() -> None:
    problem = SandboxIsolation.unavailable()
    require_tool(f"the grading sandbox ({problem})", problem is None)


@pytest.fixture(scope="session")
def data_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="statbox-certify-data-"))
    write_sample_data(root)
    for path in [root, *root.rglob("*")]:  # as the catalog's data: readable by every account
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def sample_exercise() -> GradedExercise:
    return load_exercise(find_course(COURSES, "shop-prices"))


def write_secret(state_dir: Path, cohort: str = "default", secret: bytes = SECRET) -> None:
    directory = state_dir / "secrets" / "certify"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{cohort}.key").write_text(secret.hex() + "\n")


@dataclass
class Grading:
    root: Path
    data_root: Path
    curriculum: Path = COURSES
    catalog: Path = CATALOG
    limits: Limits = field(default_factory=lambda: Limits(output=256 * 1024))
    time_limit: int | None = None  # the exercise's (the machine may be busy)
    cell_time_limit: int | None = None

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def setup(self) -> GradingSetup:
        return GradingSetup(
            curriculum=self.curriculum,
            data_root=self.data_root,
            state_dir=self.state_dir,
            limits=self.limits,
            time_limit=self.time_limit,
            cell_time_limit=self.cell_time_limit,
            catalog=self.catalog,
        )

    def submissions(self, notebooks: dict[str, bytes], name: str = "submissions") -> Path:
        directory = self.root / name
        directory.mkdir(exist_ok=True)
        for trainee, content in notebooks.items():
            (directory / f"{trainee}.ipynb").write_bytes(content)
        return directory

    def run(
        self,
        notebooks: dict[str, bytes],
        course: str = "shop-prices",
        workers: int = 2,
        out: str = "out",
        **options: Any,
    ) -> RunSummary:
        submissions = self.submissions(notebooks)
        return run(
            self.setup(),
            RunOptions(
                course=course,
                exercise=None,
                submissions=submissions,
                out=self.root / out,
                workers=workers,
                **options,
            ),
            progress=False,
        )


@pytest.fixture
def grading(tmp_path, data_root) -> Grading:
    write_secret(tmp_path / "state")
    return Grading(tmp_path, data_root)


def with_cell(notebook: Path | bytes, source: str) -> bytes:
    """The notebook with one more code cell at the end (a trainee's last edit)."""
    text = notebook.read_bytes() if isinstance(notebook, Path) else notebook
    nb = json.loads(text)
    nb["cells"].append(
        {
            "cell_type": "code",
            "id": "appended",
            "metadata": {},
            "source": source,
            "outputs": [],
            "execution_count": None,
        }
    )
    return json.dumps(nb).encode()


def far_apart(a: Any, b: Any, beyond: float = 1.0) -> bool:
    """Whether a copied answer ``a`` cannot earn any credit where ``b`` is right: numbers
    more than ``beyond`` apart (the graders give partial credit to near misses), anything
    else unequal."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return abs(a - b) > beyond
    return bool(a != b)


def with_answers(template: Path, answers: dict[str, Any]) -> bytes:
    """The template with the answers written in as literals: answers copied from someone."""
    return with_cell(template, "\n".join(f"{name} = {value!r}" for name, value in answers.items()))


def variant_of(exercise: GradedExercise, trainee: str) -> dict[str, Any]:
    return parameters_for(exercise.loaded, trainee, SECRET)
