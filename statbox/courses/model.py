"""The typed model of ``curriculum/<course>/course.yaml``, and loading a whole curriculum.

A course folder looks like this::

    curriculum/<course-id>/
      course.yaml             this model
      *.ipynb, lessons/...    lesson notebooks (published to trainees)
      exercise/*.ipynb        the certification exercise's template (published)
      grader/                 the reference solution and hidden checks: NEVER published
        solution.ipynb
        checks.py

Notebook conventions (papermill's): the first code cell is tagged ``parameters`` and assigns
plain literals (``seed = 42``); in the exercise template, cells tagged ``protected`` are
restored from the original before grading, and each task's answer is the value of the
variable the task names (``answer:``) when the notebook has run.

Invariants: a loaded :class:`Course` is complete and valid, and every path it names lies
inside its folder; the solution and checks lie under ``grader/``, which publishing skips, so
nothing that gives the answers away can reach a trainee through the course material.
Problems are reported all at once, each with file, line and key (see
:mod:`statbox.settings.yamlfile`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from statbox.courses.notebooks import NotebookProblem, notebook_parameters
from statbox.courses.translations import original_of, translation_problems
from statbox.settings.model import ROLE_NAMES, RoleName
from statbox.settings.units import Duration
from statbox.settings.yamlfile import (
    IDENTIFIER,
    FileProblems,
    Lines,
    Problem,
    line_of,
    validate_file,
)

COURSE_FILE = "course.yaml"
GRADER_DIR = "grader"
"""Inside a course folder: material only the grader sees. Publishing never copies it."""

COURSE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
TASK_ID_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def _relative_path(value: str) -> str:
    """A path inside the course folder, written with forward slashes."""
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value or not value.strip():
        raise ValueError("must be a path inside the course folder (no leading /, no ..)")
    return str(path)


NotebookPath = Annotated[str, Field(pattern=r"\.ipynb$")]


class Lesson(_Model):
    notebook: NotebookPath
    """The lesson notebook, relative to the course folder."""
    title: str = Field(min_length=1, max_length=120)

    @field_validator("notebook")
    @classmethod
    def _inside(cls, value: str) -> str:
        return _relative_path(value)


class Task(_Model):
    id: str = Field(pattern=TASK_ID_PATTERN)
    """Short name of the task, e.g. ``port_calls``; unique in the exercise."""
    title: str = Field(min_length=1, max_length=200)
    points: int = Field(gt=0, le=1000)
    """Points for a fully right answer; checks may give part of them."""
    answer: str | None = None
    """Variable holding the trainee's answer when the notebook has run (default: the id)."""

    @field_validator("answer")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not IDENTIFIER.fullmatch(value):
            raise ValueError("must be a Python identifier")
        return value

    @property
    def answer_variable(self) -> str:
        return self.answer or self.id


class IntegerRange(_Model):
    """A per-trainee integer drawn from ``min`` to ``max`` inclusive (e.g. a sample seed)."""

    min: int
    max: int

    @model_validator(mode="after")
    def _ordered(self) -> IntegerRange:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self


class Choice(_Model):
    """A per-trainee value picked from a list (e.g. a port, a region, a week)."""

    choices: list[str | int | float] = Field(min_length=1)


VariantParameter = IntegerRange | Choice


class Exercise(_Model):
    notebook: NotebookPath
    """The template trainees work in (published), relative to the course folder."""
    solution: NotebookPath
    """The reference solution, under grader/ (never published)."""
    checks: str = Field(pattern=r"\.py$")
    """The hidden checks (a Python file), under grader/ (never published)."""
    tasks: list[Task] = Field(min_length=1)
    pass_mark: float = Field(gt=0, le=100)
    """Percentage of the total points needed to pass."""
    time_limit: Duration = Field(600, ge=10)
    """Longest a whole submission may run when graded (the per-cell limit is separate)."""
    cell_time_limit: Duration = Field(120, ge=1)
    """Longest one cell may run when graded."""
    variant: dict[str, VariantParameter] = Field(default_factory=dict)
    """Parameters that differ per trainee, derived from (exercise, trainee, cohort secret);
    each must be a name in the template's ``parameters`` cell."""

    @field_validator("notebook", "solution", "checks")
    @classmethod
    def _inside(cls, value: str) -> str:
        return _relative_path(value)

    @field_validator("solution", "checks")
    @classmethod
    def _hidden(cls, value: str) -> str:
        if PurePosixPath(value).parts[0] != GRADER_DIR:
            raise ValueError(f"must lie under {GRADER_DIR}/, which is never published")
        return value

    @field_validator("notebook")
    @classmethod
    def _published(cls, value: str) -> str:
        if PurePosixPath(value).parts[0] == GRADER_DIR:
            raise ValueError(f"is what trainees get: it must not lie under {GRADER_DIR}/")
        return value

    @field_validator("variant")
    @classmethod
    def _names(cls, variant: dict[str, VariantParameter]) -> dict[str, VariantParameter]:
        bad = [name for name in variant if not IDENTIFIER.fullmatch(name)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))}: not a Python identifier")
        return variant

    @model_validator(mode="after")
    def _unique_tasks(self) -> Exercise:
        seen: set[str] = set()
        for task in self.tasks:
            if task.id in seen:
                raise ValueError(f"task id {task.id!r} is given twice")
            seen.add(task.id)
        return self

    @property
    def max_score(self) -> int:
        return sum(task.points for task in self.tasks)


class Course(_Model):
    """A course (course.yaml)."""

    id: str = Field(pattern=COURSE_ID_PATTERN)
    """Short stable name, the same as the course folder's, e.g. ``ais-port-calls``."""
    title: str = Field(min_length=1, max_length=120)
    level: Literal["introductory", "intermediate", "advanced"]
    language: str = Field("en", pattern=LANGUAGE_PATTERN)
    """Language of the material, as a BCP 47 tag (en, fr, es, pt-BR, zh, ar, rw, ...)."""
    duration: Duration
    """Time a trainee needs for the lessons and the exercise, e.g. 3h."""
    summary: str = Field("", max_length=600)
    prerequisites: list[str] = Field(default_factory=list)
    """Ids of courses to take first."""
    outcomes: list[str] = Field(min_length=1)
    """What a trainee can do after the course, one sentence each."""
    audience: list[RoleName] = Field(default_factory=lambda: list(ROLE_NAMES))  # type: ignore[arg-type]
    """Roles the course is published to by default."""
    datasets: list[str] = Field(default_factory=list)
    """Catalog entries the course reads."""
    lessons: list[Lesson] = Field(min_length=1)
    """In the order trainees take them."""
    exercise: Exercise | None = None
    """The certification exercise, if the course certifies."""

    def notebooks(self) -> Iterator[tuple[tuple, str]]:
        """(key path, notebook path) of every notebook the course names."""
        for index, lesson in enumerate(self.lessons):
            yield ("lessons", index, "notebook"), lesson.notebook
        if self.exercise is not None:
            yield ("exercise", "notebook"), self.exercise.notebook
            yield ("exercise", "solution"), self.exercise.solution

    def published_notebooks(self) -> list[str]:
        """The notebooks trainees read, which may have translations (not the solution)."""
        named = [lesson.notebook for lesson in self.lessons]
        return named + ([self.exercise.notebook] if self.exercise is not None else [])


@dataclass(frozen=True)
class LoadedCourse:
    """A valid course and the folder it lives in."""

    course: Course
    directory: Path

    def path(self, relative: str) -> Path:
        return self.directory / relative

    @property
    def id(self) -> str:
        return self.course.id


class CurriculumError(FileProblems):
    """Course files that cannot be used; ``problems`` lists each thing wrong."""


def load_course(directory: Path) -> LoadedCourse:
    """Load and check the course in ``directory``; raise CurriculumError on any problem.

    Besides the model: the id is the folder's name, every notebook exists and has a
    ``parameters`` cell, the checks file exists, and every variant parameter is one of the
    exercise template's parameters.
    """
    file = directory / COURSE_FILE
    try:
        course, lines = validate_file(Course, file)
    except FileProblems as exc:
        raise CurriculumError(exc.problems) from None
    problems = _folder_problems(course, directory, str(file), lines)
    if problems:
        raise CurriculumError(problems)
    return LoadedCourse(course, directory)


def _folder_problems(course: Course, directory: Path, source: str, lines: Lines) -> list[Problem]:
    problems: list[Problem] = []

    def problem(loc: tuple, message: str) -> None:
        problems.append(Problem(source, line_of(loc, lines), ".".join(map(str, loc)), message))

    if course.id != directory.name:
        problem(("id",), f"{course.id!r} differs from the folder's name {directory.name!r}")
    parameters: dict[str, dict[str, object]] = {}
    for loc, notebook in course.notebooks():
        try:
            parameters[notebook] = notebook_parameters(directory / notebook)
        except NotebookProblem as exc:
            problem(loc, f"{notebook}: {exc}")
    exercise = course.exercise
    if exercise is not None:
        if not (directory / exercise.checks).is_file():
            problem(("exercise", "checks"), f"{exercise.checks}: no such file")
        template = parameters.get(exercise.notebook)
        if template is not None:
            for name in exercise.variant:
                if name not in template:
                    known = ", ".join(sorted(template)) or "none"
                    problem(
                        ("exercise", "variant", name),
                        f"not a parameter of {exercise.notebook} (its parameters: {known})",
                    )
    problems.extend(_translation_problems(course, directory))
    return problems


def _translation_problems(course: Course, directory: Path) -> list[Problem]:
    """Translations that break the rule of :mod:`statbox.courses.translations`, and
    translations of a notebook the course does not publish (they would reach nobody)."""
    problems: list[Problem] = []
    published = course.published_notebooks()
    for notebook in published:
        problems.extend(translation_problems(directory / notebook))
    for path in sorted(directory.rglob("*.ipynb")):
        original = original_of(path)
        parts = path.relative_to(directory).parts
        if original is None or parts[0] == GRADER_DIR or any(p.startswith(".") for p in parts):
            continue
        if original.relative_to(directory).as_posix() not in published:
            message = (
                f"translates {original.name}, which is no lesson or exercise of {COURSE_FILE}: "
                "rename or remove it"
            )
            problems.append(Problem(str(path), None, "", message))
    return problems


def load_curriculum(root: Path) -> dict[str, LoadedCourse]:
    """Every course under ``root`` (one folder each), by id; raise CurriculumError listing
    every problem in every course, including prerequisites that name no course."""
    courses: dict[str, LoadedCourse] = {}
    problems: list[Problem] = []
    if not root.is_dir():
        raise CurriculumError([Problem(str(root), None, "", "no such folder")])
    for directory in sorted(p for p in root.iterdir() if (p / COURSE_FILE).is_file()):
        try:
            loaded = load_course(directory)
        except CurriculumError as exc:
            problems.extend(exc.problems)
            continue
        courses[loaded.id] = loaded
    for loaded in courses.values():
        for index, prerequisite in enumerate(loaded.course.prerequisites):
            if prerequisite not in courses:
                source = str(loaded.directory / COURSE_FILE)
                known = ", ".join(sorted(courses)) or "none"
                message = f"{prerequisite!r} is not a course here (courses: {known})"
                problems.append(Problem(source, None, f"prerequisites.{index}", message))
    if problems:
        raise CurriculumError(problems)
    return courses
