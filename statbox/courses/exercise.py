"""The hidden side of a certification exercise, as course verifiers and the tests read it.

The contract (course authors: see curriculum/README.md) is that ``grader/checks.py`` defines

* ``reference(parameters: dict, data_root: Path) -> dict[str, Any]``: the right answer of
  every task for that variant, computed straight from the files under ``data_root``;
* ``CHECKS: dict[str, Callable[[Any, Any], tuple[float, str]]]``: task id ->
  ``check(answer, expected)`` giving the fraction of the points earned (0..1) and one line
  of feedback, never raising, whatever the answer's type.

``answer`` is the plain-data value (:func:`statbox.courses.results.plain`) of the task's
variable once the trainee's notebook has run; ``None`` when the variable is unset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from statbox.courses.model import Choice, Exercise, IntegerRange, LoadedCourse
from statbox.courses.notebooks import notebook_parameters
from statbox.courses.run import load_module

Check = Callable[[Any, Any], tuple[float, str]]


def exercise_of(loaded: LoadedCourse) -> Exercise:
    if loaded.course.exercise is None:
        raise ValueError(f"course {loaded.id} has no exercise")
    return loaded.course.exercise


def load_checks(loaded: LoadedCourse) -> ModuleType:
    """The course's grader/checks.py as a module (not kept in sys.modules)."""
    path = loaded.path(exercise_of(loaded).checks)
    return load_module(path, f"checks_{loaded.id.replace('-', '_')}")


def default_parameters(loaded: LoadedCourse) -> dict[str, Any]:
    """The exercise template's parameters with their default values."""
    return notebook_parameters(loaded.path(exercise_of(loaded).notebook))


def score(
    checks: Mapping[str, Check], answers: Mapping[str, Any], expected: Mapping[str, Any]
) -> dict[str, tuple[float, str]]:
    """Fraction earned and feedback per task (answers missing from ``answers`` are None)."""
    return {task: check(answers.get(task), expected[task]) for task, check in checks.items()}


def variant_samples(exercise: Exercise, per_parameter: int = 5) -> list[dict[str, Any]]:
    """A few variant assignments to try, one parameter varied at a time."""

    samples: list[dict[str, Any]] = []
    for name, spec in exercise.variant.items():
        if isinstance(spec, IntegerRange):
            step = max(1, (spec.max - spec.min) // max(1, per_parameter - 1))
            values: list[Any] = list(range(spec.min, spec.max + 1, step))[:per_parameter]
        elif isinstance(spec, Choice):
            values = list(spec.choices)[:per_parameter]
        else:  # pragma: no cover - the model admits only the two
            continue
        samples.extend({name: value} for value in values)
    return samples


def reference_for(loaded: LoadedCourse, data_root: Path, **variant: Any) -> dict[str, Any]:
    """checks.reference for the template's defaults with ``variant`` over them."""
    checks = load_checks(loaded)
    return checks.reference({**default_parameters(loaded), **variant}, data_root)


# --------------------------------------------------------------------- for grader/verify.py


def checks_beside(verify_file: str | Path) -> ModuleType:
    """The grader/checks.py next to a course's grader/verify.py (``checks_beside(__file__)``)."""
    path = Path(verify_file).resolve().parent / "checks.py"
    return load_module(path, f"checks_{path.parent.parent.name.replace('-', '_')}")


def assert_full_marks(
    checks: ModuleType, answers: Mapping[str, Any], expected: Mapping[str, Any]
) -> None:
    """Every task of ``answers`` earns all its points (the reference solution must)."""
    for task, (fraction, feedback) in score(checks.CHECKS, answers, expected).items():
        assert fraction == 1, f"{task}: the solution earns {fraction} ({feedback})"


def template_scores_zero(
    checks: ModuleType, defaults: Mapping[str, Any]
) -> Callable[[dict[str, Any], Path], None]:
    """A verify.py check that the untouched template's answers earn no point."""

    def check(results: dict[str, Any], data_root: Path) -> None:
        expected = checks.reference(dict(defaults), data_root)
        for task, (fraction, feedback) in score(
            checks.CHECKS, results["answers"], expected
        ).items():
            assert fraction == 0, f"{task}: the untouched template earns {fraction} ({feedback})"

    return check
