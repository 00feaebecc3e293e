"""Every shipped course's exercise, graded for real: the reference solution scores full marks
on three different variants, the untouched template scores 0, a partly right submission
gets partial credit, and one trainee's right answers under another trainee's name fail.

Covers whatever courses ``curriculum/`` holds when it runs. The data comes from
``statbox catalog samples`` when that command exists (else the settings' data root). It
skips, saying so, only while no course has an exercise. ``STATBOX_TEST_SAMPLES=DIR`` reuses
samples generated earlier; ``STATBOX_TEST_CURRICULUM=DIR`` grades another curriculum.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path

import nbformat
import pytest

from statbox.certify.exercise import load_exercise
from statbox.certify.notebook import restore_protected
from statbox.certify.runner import GradingSetup, RunOptions, run
from statbox.certify.variants import parameters_for
from statbox.courses import load_curriculum
from tests.certify.conftest import SECRET, with_answers, with_cell, write_secret
from tests.conftest import REPO

pytestmark = [pytest.mark.certify, pytest.mark.usefixtures("sandbox")]

CURRICULUM = Path(os.environ.get("STATBOX_TEST_CURRICULUM", REPO / "curriculum"))
WITH_EXERCISE = sorted(
    course_id
    for course_id, loaded in load_curriculum(CURRICULUM).items()
    if loaded.course.exercise is not None
)
CANDIDATES = [f"trainee{i:02d}" for i in range(60)]


def _has_samples_command() -> bool:
    found = subprocess.run(
        [sys.executable, "-m", "statbox.cli", "catalog", "samples", "--help"],
        capture_output=True,
    )
    return found.returncode == 0


@pytest.fixture(scope="module")
def curriculum_data() -> Iterator[Path]:
    reuse = os.environ.get("STATBOX_TEST_SAMPLES")  # as the curriculum tier: samples made earlier
    if reuse:
        yield Path(reuse)
        return
    if not _has_samples_command():
        yield REPO / "data"  # the settings' default data root
        return
    root = Path(tempfile.mkdtemp(prefix="statbox-curriculum-data-"))
    subprocess.run(
        [sys.executable, "-m", "statbox.cli", "catalog", "samples", "--out", str(root)],
        check=True,
        capture_output=True,
    )
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_the_curriculum_is_covered():
    if not WITH_EXERCISE:
        pytest.skip("the curriculum has no course with an exercise yet (curriculum/*/course.yaml)")
    assert WITH_EXERCISE


@pytest.mark.parametrize("course_id", WITH_EXERCISE)
def test_the_solution_leaves_the_protected_cells_as_the_template_has_them(course_id):
    """The grader restores protected cells from the template, so a solution that changes one
    (an import added to the setup cell) fails when graded, as a trainee's would."""
    loaded = load_curriculum(CURRICULUM)[course_id]
    exercise = load_exercise(loaded)
    solution = nbformat.read(loaded.path(exercise.exercise.solution), as_version=4)
    _, notes = restore_protected(exercise.template, solution)
    assert not notes, (
        f"{course_id}: {exercise.exercise.solution} differs from "
        f"{exercise.exercise.notebook} in its protected cells ({'; '.join(notes)}): move "
        "the extra lines to an answer cell, or put them in the template too"
    )


@pytest.mark.parametrize("course_id", WITH_EXERCISE)
def test_a_courses_exercise_grades_fairly(course_id, curriculum_data, tmp_path):
    loaded = load_curriculum(CURRICULUM)[course_id]
    exercise = load_exercise(loaded)
    assert exercise.exercise.variant, f"{course_id}: the exercise has no per-trainee variant"
    tasks = [task.id for task in exercise.exercise.tasks]

    def reference(trainee: str) -> dict:
        # as the grader calls it: the template's parameters with the trainee's variant over them
        parameters = {**exercise.allowed, **parameters_for(loaded, trainee, SECRET)}
        return exercise.reference(parameters, curriculum_data)

    variants = {name: parameters_for(loaded, name, SECRET) for name in CANDIDATES}
    three = next(
        (
            trio
            for trio in combinations(CANDIDATES, 3)
            if len({repr(variants[n]) for n in trio}) == 3
        ),
        None,
    )
    assert three is not None, f"{course_id}: its variant does not give three different ones"
    others = [name for name in CANDIDATES if name not in three][:12]
    answers = {name: reference(name) for name in others}
    owner, copier = next(
        (
            (a, b)
            for a, b in combinations(others, 2)
            if all(answers[a].get(t) != answers[b].get(t) for t in tasks)
        ),
        (others[0], others[1]),
    )
    solution = loaded.path(exercise.exercise.solution)
    template = loaded.path(exercise.exercise.notebook)
    first = exercise.exercise.tasks[0].answer_variable
    notebooks = {name: solution.read_bytes() for name in three}
    notebooks["untouched"] = template.read_bytes()
    notebooks["partial"] = with_cell(solution, f"{first} = None  # not done")
    notebooks[copier] = with_answers(template, answers[owner])

    submissions = tmp_path / "submissions"
    submissions.mkdir()
    for name, content in notebooks.items():
        (submissions / f"{name}.ipynb").write_bytes(content)
    write_secret(tmp_path / "state")
    setup = GradingSetup(
        curriculum=CURRICULUM,
        data_root=curriculum_data,
        state_dir=tmp_path / "state",
        catalog=REPO / "catalogs" / "statbox.yaml",
    )
    summary = run(
        setup,
        RunOptions(course_id, None, submissions, tmp_path / "out", workers=3),
        progress=False,
    )
    by = {a.trainee: a for a in summary.attempts}
    maximum = exercise.exercise.max_score
    for name in three:
        assert by[name].total == maximum, (name, by[name].variant, by[name].scores, by[name].reason)
    assert by["untouched"].total == 0, by["untouched"].scores
    assert 0 < by["partial"].total < maximum, by["partial"].scores
    assert not by[copier].passed, (owner, copier, by[copier].scores)
