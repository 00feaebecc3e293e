"""Every certification exercise keeps the contract the grader relies on (curriculum/README.md):

- grader/checks.py imports only numpy, pandas, xarray, geopandas, the standard library and
  ``statbox.courses.results``, and has a check for every task and for nothing else;
- ``reference(parameters, data_root)`` gives plain, JSON-able answers for every task, and
  different variants (e.g. seeds) give different right answers;
- a check never raises on an answer of the wrong type; it scores it 0, with feedback;
- the reference solution scores full marks and the untouched template 0 (by the runs that
  test_notebooks.py checks with grader/verify.py, and here by CHECKS directly).
"""

from __future__ import annotations

import ast
import json
import math
import sys

import pytest

from statbox.courses.exercise import (
    default_parameters,
    exercise_of,
    load_checks,
    score,
    variant_samples,
)
from statbox.courses.run import answers_of
from tests.curriculum.conftest import CURRICULUM

pytestmark = pytest.mark.curriculum

ALLOWED_IMPORTS = {"numpy", "pandas", "geopandas", "shapely", "pyarrow", "xarray"}
ALLOWED_STATBOX = {"statbox.courses.results"}
WRONG_ANSWERS = [None, "", "a string", -1, math.nan, [], [1, "x"], {}, {"x": [None]}, True]


def exercise_courses() -> list[str]:
    from statbox.courses import load_curriculum

    return sorted(
        course_id
        for course_id, loaded in load_curriculum(CURRICULUM).items()
        if loaded.course.exercise is not None
    )


@pytest.fixture(params=exercise_courses())
def loaded(request, courses):
    return courses[request.param]


def test_checks_are_self_contained(loaded):
    path = loaded.path(exercise_of(loaded).checks)
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.ImportFrom):
            pytest.fail(f"{path}:{node.lineno}: relative import")
        for name in names:
            top = name.split(".")[0]
            ok = top in ALLOWED_IMPORTS or top in sys.stdlib_module_names
            ok = ok or name in ALLOWED_STATBOX or top == "__future__"
            assert ok, f"{path}:{node.lineno}: imports {name}; checks.py must be self-contained"


def test_a_check_per_task_and_a_plain_reference(loaded, sample_data):
    checks = load_checks(loaded)
    tasks = [task.id for task in exercise_of(loaded).tasks]
    assert sorted(checks.CHECKS) == sorted(tasks)
    expected = checks.reference(default_parameters(loaded), sample_data)
    assert sorted(expected) == sorted(tasks)
    assert json.loads(json.dumps(expected)) == expected, "reference answers must be plain JSON"


def test_different_variants_have_different_right_answers(loaded, sample_data):
    checks = load_checks(loaded)
    exercise = exercise_of(loaded)
    assert exercise.variant, f"{loaded.id}: exercise.variant names nothing that differs"
    defaults = default_parameters(loaded)
    answers = {
        json.dumps(checks.reference({**defaults, **sample}, sample_data), sort_keys=True)
        for sample in variant_samples(exercise)
    }
    assert len(answers) > 1, f"{loaded.id}: every variant has the same right answers"


def test_wrong_answers_score_zero_and_never_raise(loaded, sample_data):
    checks = load_checks(loaded)
    expected = checks.reference(default_parameters(loaded), sample_data)
    for task, check in checks.CHECKS.items():
        for wrong in WRONG_ANSWERS:
            fraction, feedback = check(wrong, expected[task])
            assert isinstance(feedback, str) and feedback, (task, wrong)
            assert fraction == 0, f"{task}: {wrong!r} earned {fraction}"


def test_the_solution_scores_full_marks_and_the_template_zero(loaded, sample_data, curriculum_runs):
    exercise = exercise_of(loaded)
    checks = load_checks(loaded)
    expected = checks.reference(default_parameters(loaded), sample_data)
    solution = curriculum_runs[f"{loaded.id}/{exercise.solution}"]
    template = curriculum_runs[f"{loaded.id}/{exercise.notebook}"]
    assert solution.ok and template.ok, (solution.failure, template.failure)
    full = score(checks.CHECKS, answers_of(solution.results), expected)
    assert all(fraction == 1 for fraction, _ in full.values()), full
    empty = score(checks.CHECKS, answers_of(template.results), expected)
    assert all(fraction == 0 for fraction, _ in empty.values()), empty
