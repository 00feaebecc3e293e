"""An exercise ready for grading: its template, allow-list, reference and hidden checks.

``grader/checks.py`` (the course author's contract) defines::

    reference(parameters: dict, data_root: Path) -> dict[str, Any]   # right answer per task
    CHECKS: dict[str, Callable[[Any, Any], tuple[float, str]]]       # task id -> check

Both run here, in the grader's process, never in a trainee's kernel. Loading checks the
module keeps that contract and reports every problem at once.

The grader version recorded with each attempt and certificate names Statbox's version and
a digest of what decides a score (course.yaml, the template, the checks), so a changed
check shows up as a different grader.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
from nbformat import NotebookNode

from statbox.certify.variants import exercise_id
from statbox.courses.model import COURSE_FILE, GRADER_DIR, CurriculumError, Exercise, LoadedCourse
from statbox.courses.model import load_course as _load_course
from statbox.courses.notebooks import parameters_cell, parse_parameters, source_of
from statbox.courses.translations import translations_of
from statbox.errors import BadInput

Check = Callable[[Any, Any], tuple[float, str]]
Reference = Callable[[dict[str, Any], Path], dict[str, Any]]


def statbox_version() -> str:
    try:
        return version("statbox")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"


@dataclass(frozen=True)
class GradedExercise:
    """Everything the grader needs about one exercise."""

    loaded: LoadedCourse
    exercise: Exercise
    name: str
    template: NotebookNode
    allowed: dict[str, Any]
    """The template's parameters with their defaults: the only names ever injected."""
    reference: Reference
    checks: dict[str, Check]
    grader_version: str
    translations: tuple[NotebookNode, ...] = ()
    """The template's translations (the same cells and code, other words): a trainee who
    worked in one keeps its words in the graded notebook (see restore_protected)."""

    @property
    def course_id(self) -> str:
        return self.loaded.id

    @property
    def template_dir(self) -> Path:
        return self.loaded.path(self.exercise.notebook).parent

    def inputs(self) -> list[Path]:
        """Files published beside the template (data a trainee's notebook opens by a relative
        path): copied into each working directory. Notebooks and grader/ never are."""
        directory = self.template_dir
        if directory.resolve() == (self.loaded.directory / GRADER_DIR).resolve():
            return []
        return sorted(
            p
            for p in directory.iterdir()
            if p.is_file()
            and not p.is_symlink()
            and p.suffix != ".ipynb"
            and p.name != COURSE_FILE
            and not p.name.startswith(".")
        )


def find_course(curriculum: Path, course_id: str) -> LoadedCourse:
    directory = curriculum / course_id
    if not (directory / COURSE_FILE).is_file():
        known = sorted(p.name for p in curriculum.glob(f"*/{COURSE_FILE}"))
        names = ", ".join(sorted(Path(k).parent.name for k in known)) or "none"
        raise BadInput(f"--course {course_id!r}: no such course in {curriculum} (courses: {names})")
    try:
        return _load_course(directory)
    except CurriculumError as exc:
        raise BadInput(*[str(p) for p in exc.problems]) from None


def load_exercise(loaded: LoadedCourse, name: str | None = None) -> GradedExercise:
    """The course's exercise, checked for grading; ``name`` must match it when given."""
    exercise = loaded.course.exercise
    if exercise is None:
        raise BadInput(f"course {loaded.id!r} has no exercise (course.yaml: exercise)")
    actual = exercise_id(exercise)
    if name is not None and name not in (actual, exercise.notebook):
        raise BadInput(
            f"--exercise {name!r}: course {loaded.id!r} has one exercise, {actual!r} "
            f"({exercise.notebook})"
        )
    template_path = loaded.path(exercise.notebook)
    template = nbformat.read(template_path, as_version=4)
    _, cell = parameters_cell(template)
    allowed = parse_parameters(source_of(cell))
    module = _load_checks(loaded, exercise)
    reference, checks = _checks_contract(loaded, exercise, module)
    digest = hashlib.sha256()
    for part in (COURSE_FILE, exercise.notebook, exercise.checks):
        digest.update(part.encode() + b"\0" + loaded.path(part).read_bytes() + b"\0")
    return GradedExercise(
        loaded=loaded,
        exercise=exercise,
        name=actual,
        template=template,
        allowed=allowed,
        reference=reference,
        checks=checks,
        grader_version=f"statbox {statbox_version()}; grader {digest.hexdigest()[:16]}",
        translations=tuple(
            nbformat.read(path, as_version=4) for path in translations_of(template_path).values()
        ),
    )


def _load_checks(loaded: LoadedCourse, exercise: Exercise) -> ModuleType:
    path = loaded.path(exercise.checks)
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    module_name = f"statbox_checks_{loaded.id.replace('-', '_')}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise BadInput(f"{path}: cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise BadInput(f"{path}: fails to load: {type(exc).__name__}: {exc}") from None
    return module


def _checks_contract(
    loaded: LoadedCourse, exercise: Exercise, module: ModuleType
) -> tuple[Reference, dict[str, Check]]:
    path = loaded.path(exercise.checks)
    problems: list[str] = []
    reference = getattr(module, "reference", None)
    if not callable(reference):
        problems.append(f"{path}: defines no function reference(parameters, data_root)")
    checks = getattr(module, "CHECKS", None)
    if not isinstance(checks, dict):
        problems.append(f"{path}: defines no CHECKS dict (task id -> check(answer, expected))")
        checks = {}
    task_ids = [task.id for task in exercise.tasks]
    for task_id in task_ids:
        if task_id not in checks:
            problems.append(f"{path}: CHECKS has no check for task {task_id!r}")
        elif not callable(checks[task_id]):
            problems.append(f"{path}: CHECKS[{task_id!r}] is not callable")
    for extra in sorted(set(checks) - set(task_ids)):
        problems.append(
            f"{path}: CHECKS[{extra!r}] is not a task of the exercise (tasks: "
            f"{', '.join(task_ids)})"
        )
    if problems:
        raise BadInput(*problems)
    assert reference is not None
    return reference, dict(checks)
