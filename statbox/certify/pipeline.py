"""Grading one submission: an ordered list of small steps, each of which can be switched off.

========================  ====================================================================
step (``name``)           what it does
========================  ====================================================================
``read``                  parse the submission (a broken file is the trainee's reason, not a crash)
``restore_protected``     take protected and parameters cells from the template
``inject_parameters``     papermill's injected-parameters cell with the re-derived variant
``execute``               run it with papermill in a fresh isolated kernel, read the answers
``check``                 compare each answer with the reference for the same variant
``score``                 points per task (partial credit), total, passed, feedback
========================  ====================================================================

Recording is the runner's (:mod:`statbox.certify.runner`), so a step never touches the store.
The steps before ``execute`` and after it run in the grader's process; ``execute`` may run
elsewhere (``--dask``): it gets a prepared notebook and returns an executed one, and never
sees the checks, the reference or the cohort secret.

Invariant: :meth:`Pipeline.grade` returns an :class:`Attempt` for every submission, whatever
the submission does; a problem of the grader itself (a reference that raises) is marked
``grader_error`` so the operator can tell it from a trainee's mistake.
"""

from __future__ import annotations

import hashlib
import math
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from nbformat import NotebookNode

from statbox.certify import bounded
from statbox.certify import notebook as nbops
from statbox.certify.execution import Execution
from statbox.certify.exercise import GradedExercise
from statbox.certify.variants import parameters_for


@dataclass(frozen=True)
class Submission:
    """One trainee's notebook as submitted."""

    trainee: str
    content: bytes
    source: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class TaskResult:
    id: str
    points: float
    max_points: int
    feedback: str


@dataclass
class Attempt:
    """The outcome of grading one submission (one row of the results store)."""

    cohort: str
    trainee: str
    course: str
    exercise: str
    variant: dict[str, Any]
    tasks: list[TaskResult]
    total: float
    max_score: int
    passed: bool
    reason: str
    submission_hash: str
    grader_version: str
    started_at: datetime
    finished_at: datetime
    answers: dict[str, Any] = field(default_factory=dict)
    grader_error: bool = False
    graded_notebook: NotebookNode | None = None

    @property
    def scores(self) -> dict[str, float]:
        return {task.id: task.points for task in self.tasks}

    @property
    def percent(self) -> float:
        return 100.0 * self.total / self.max_score if self.max_score else 0.0


@dataclass
class GradingState:
    """What the steps pass along for one submission."""

    submission: Submission
    exercise: GradedExercise
    parameters: dict[str, Any]
    notebook: NotebookNode | None = None
    execution: Execution | None = None
    answers: dict[str, Any] = field(default_factory=dict)
    expected: dict[str, Any] = field(default_factory=dict)
    checked: dict[str, tuple[float, str]] = field(default_factory=dict)
    tasks: list[TaskResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stop: str | None = None
    """Set by a step when the submission cannot be graded further (the reason)."""
    grader_error: bool = False


Executor = Callable[[NotebookNode, Submission, str], Execution]
"""Runs a prepared notebook for a submission, with the answers' snapshot code (locally in
a sandbox, or on a Dask worker)."""


class Step:
    """One step of the pipeline; ``enabled = False`` switches it off."""

    name: ClassVar[str]

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    def run(self, state: GradingState) -> None:
        raise NotImplementedError


class Read(Step):
    name = "read"

    def run(self, state: GradingState) -> None:
        try:
            state.notebook = nbops.read_submission(state.submission.content)
        except nbops.SubmissionProblem as exc:
            state.stop = str(exc)


class RestoreProtected(Step):
    name = "restore_protected"

    def run(self, state: GradingState) -> None:
        assert state.notebook is not None
        state.notebook, notes = nbops.restore_protected(
            state.exercise.template, state.notebook, state.exercise.translations
        )
        state.notes.extend(notes)


class InjectParameters(Step):
    name = "inject_parameters"

    def run(self, state: GradingState) -> None:
        assert state.notebook is not None
        try:
            state.notebook = nbops.inject_parameters(
                state.notebook, state.parameters, state.exercise.allowed
            )
        except nbops.BadParameterName as exc:
            state.stop = f"parameters refused: {exc}"
            state.grader_error = True


class Execute(Step):
    name = "execute"

    def __init__(self, executor: Executor | None = None, enabled: bool = True):
        super().__init__(enabled)
        self.executor = executor

    def run(self, state: GradingState) -> None:
        assert state.notebook is not None and self.executor is not None
        variables = [task.answer_variable for task in state.exercise.exercise.tasks]
        prepared = nbops.add_answers_cell(nbops.papermill_ready(state.notebook), variables)
        snapshot = nbops.answers_code(variables, snapshot=True)
        execution = self.executor(prepared, state.submission, snapshot)
        # what the kernel sent, made writable before anything keeps it (see bounded.scrub)
        bounded.scrub(execution.notebook)
        execution.snapshot = bounded.scrub(execution.snapshot)
        execution.stopped = bounded.scrub(execution.stopped)
        state.execution = execution
        state.notebook = execution.notebook
        try:
            answers = nbops.read_answers(execution.notebook)
        except bounded.BadValue as exc:
            state.notes.append(f"the answers were not graded: they are {exc}")
            answers, execution.snapshot = {}, None
        if answers is None and execution.snapshot is not None:
            answers = execution.snapshot
            state.notes.append(
                f"answers as they stood after cell {execution.snapshot_cell + 1}, the last "
                "one before the end"
            )
        by_variable = answers or {}
        state.answers = {
            task.id: by_variable.get(task.answer_variable) for task in state.exercise.exercise.tasks
        }
        if execution.stopped:
            state.notes.append(execution.stopped)
        if answers is None and not execution.stopped:
            state.notes.append(
                "the answers could not be read (did the notebook replace display or globals?)"
            )
        for index in execution.timed_out_cells:
            state.notes.append(f"cell {index + 1} was stopped at the cell time limit")
        if execution.output_dropped:
            state.notes.append(
                f"{execution.output_dropped // 1024} KiB of output beyond the cap was dropped"
            )
        state.notes.extend(nbops.cell_errors(execution.notebook)[:5])


class CheckAnswers(Step):
    name = "check"

    def __init__(self, data_root: Path = Path("."), enabled: bool = True):
        super().__init__(enabled)
        self.data_root = data_root

    def run(self, state: GradingState) -> None:
        exercise = state.exercise
        try:
            # the template's parameters as the trainee's notebook ran with them
            parameters = {**exercise.allowed, **state.parameters}
            expected = exercise.reference(parameters, self.data_root)
        except Exception as exc:
            state.stop = f"grader error: reference() raised {type(exc).__name__}: {exc}"[:300]
            state.grader_error = True
            return
        state.expected = expected if isinstance(expected, dict) else {}
        for task in exercise.exercise.tasks:
            state.checked[task.id] = run_check(
                exercise.checks[task.id], state.answers.get(task.id), state.expected.get(task.id)
            )


class Score(Step):
    name = "score"

    def run(self, state: GradingState) -> None:
        for task in state.exercise.exercise.tasks:
            fraction, feedback = state.checked.get(task.id, (0.0, "not checked"))
            points = round(task.points * fraction, 2)
            state.tasks.append(TaskResult(task.id, points, task.points, feedback))


def run_check(check: Callable[[Any, Any], Any], answer: Any, expected: Any) -> tuple[float, str]:
    """``check(answer, expected)`` as (fraction in 0..1, one line); a check that raises or
    returns something else scores 0 with the reason."""
    try:
        result = check(answer, expected)
        fraction, feedback = result
        fraction = float(fraction)
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1:]
        line = f" (line {where[0].lineno})" if where else ""
        return 0.0, f"the check could not judge this answer: {type(exc).__name__}{line}"
    if not math.isfinite(fraction):
        return 0.0, "the check returned no valid score"
    text = " ".join(str(feedback).split())[:300]
    return min(1.0, max(0.0, fraction)), text


DEFAULT_STEPS: tuple[type[Step], ...] = (
    Read,
    RestoreProtected,
    InjectParameters,
    Execute,
    CheckAnswers,
    Score,
)


class Pipeline:
    """The grading steps for one exercise, in order."""

    def __init__(
        self,
        exercise: GradedExercise,
        *,
        cohort: str,
        secret: bytes,
        data_root: Path,
        executor: Executor | None = None,
        disabled: Iterable[str] = (),
    ):
        self.exercise = exercise
        self.cohort = cohort
        self.secret = secret
        self.steps: list[Step] = []
        for step_class in DEFAULT_STEPS:
            if step_class is Execute:
                step: Step = Execute(executor)
            elif step_class is CheckAnswers:
                step = CheckAnswers(data_root)
            else:
                step = step_class()
            self.steps.append(step)
        for name in disabled:
            self.step(name).enabled = False

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        known = ", ".join(s.name for s in self.steps)
        raise KeyError(f"no step {name!r} (steps: {known})")

    def parameters(self, trainee: str) -> dict[str, Any]:
        return parameters_for(self.exercise.loaded, trainee, self.secret)

    def grade(self, submission: Submission) -> Attempt:
        started = datetime.now(UTC)
        state = GradingState(submission, self.exercise, self.parameters(submission.trainee))
        for step in self.steps:
            if not step.enabled or (state.stop and not isinstance(step, Score)):
                continue
            try:
                step.run(state)
            except Exception as exc:  # a bug in a step must not end the cohort's run
                state.stop = f"grader error in step {step.name}: {type(exc).__name__}: {exc}"
                state.grader_error = True
        return self._attempt(state, started)

    def _attempt(self, state: GradingState, started: datetime) -> Attempt:
        exercise = self.exercise
        if not state.tasks:
            state.tasks = [
                TaskResult(task.id, 0.0, task.points, "not graded")
                for task in exercise.exercise.tasks
            ]
        total = round(sum(task.points for task in state.tasks), 2)
        max_score = exercise.exercise.max_score
        passed = (
            not state.stop
            and max_score > 0
            and 100.0 * total / max_score >= exercise.exercise.pass_mark - 1e-9
        )
        reasons = ([state.stop] if state.stop else []) + state.notes
        graded = None
        if state.notebook is not None:
            graded = nbops.without_grader_cells(state.notebook)
        attempt = Attempt(
            cohort=self.cohort,
            trainee=state.submission.trainee,
            course=exercise.course_id,
            exercise=exercise.name,
            variant=state.parameters,
            tasks=state.tasks,
            total=total,
            max_score=max_score,
            passed=bool(passed),
            reason="; ".join(dict.fromkeys(reasons))[:2000],
            submission_hash=state.submission.sha256,
            grader_version=exercise.grader_version,
            started_at=started,
            finished_at=datetime.now(UTC),
            answers=state.answers,
            grader_error=state.grader_error,
        )
        if graded is not None:
            attempt.graded_notebook = with_feedback(graded, attempt, exercise)
        return attempt


def with_feedback(nb: NotebookNode, attempt: Attempt, exercise: GradedExercise) -> NotebookNode:
    """The graded notebook: a feedback cell first, the grading record in its metadata."""
    verdict = "passed" if attempt.passed else "not passed"
    titles = {task.id: task.title for task in exercise.exercise.tasks}
    lines = [
        "## Grading feedback",
        "",
        f"**Score: {attempt.total:g} / {attempt.max_score} ({attempt.percent:.0f}%), "
        f"{verdict}** (pass mark {exercise.exercise.pass_mark:g}%)",
        "",
        "| task | points | feedback |",
        "|---|---|---|",
    ]
    for task in attempt.tasks:
        feedback = task.feedback.replace("|", "\\|")
        lines.append(
            f"| {titles.get(task.id, task.id)} | {task.points:g} / {task.max_points} | {feedback} |"
        )
    if attempt.reason:
        lines += ["", f"Notes: {attempt.reason}"]
    nb.cells.insert(0, nbops.feedback_cell(lines))
    nb.metadata["statbox"] = {
        "grading": {
            "cohort": attempt.cohort,
            "trainee": attempt.trainee,
            "course": attempt.course,
            "exercise": attempt.exercise,
            "variant": attempt.variant,
            "scores": attempt.scores,
            "total": attempt.total,
            "max_score": attempt.max_score,
            "passed": attempt.passed,
            "reason": attempt.reason,
            "answers": attempt.answers,
            "submission_sha256": attempt.submission_hash,
            "grader_version": attempt.grader_version,
            "graded_at": attempt.finished_at.isoformat(),
        }
    }
    return nb
