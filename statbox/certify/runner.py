"""Grading a cohort: N submissions at a time on this machine, or fanned out over Dask.

``run(options)`` loads the exercise, derives each trainee's variant, grades every
``<trainee>.ipynb`` in the submissions folder through the pipeline, records each attempt in
the results store, and writes ``OUT/results.csv``, ``OUT/graded/<trainee>.ipynb`` and
``OUT/run.json`` (what ``statbox certify report --out OUT`` reads).

Workers are threads, each driving its own kernel in its own worker slot (a slot is a uid
and a kernel at a time: see :mod:`statbox.certify.isolation`). With ``dask=True`` the
execute step runs on a Dask Gateway cluster instead; checks, references and the cohort
secret stay here.

Invariant: input problems (unknown course, no submissions, a file name that is not a
trainee name) are reported before anything is graded or written; once grading starts,
every submission gets an attempt, and the run completes.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import nbformat
from nbformat import NotebookNode

from statbox.catalog.access import RoleAccess
from statbox.certify.dask import DaskExecutor
from statbox.certify.data import grading_data
from statbox.certify.execution import Execution
from statbox.certify.executor import LocalExecutor
from statbox.certify.exercise import GradedExercise, find_course, load_exercise
from statbox.certify.isolation import Limits, backend_class, grader_memory_cap
from statbox.certify.pipeline import Attempt, Pipeline, Submission
from statbox.certify.store import ResultsStore, default_url, shown_url
from statbox.certify.variants import DEFAULT_COHORT, check_cohort, cohort_secret
from statbox.errors import BadInput
from statbox.settings.names import is_valid_username

RESULTS_CSV = "results.csv"
RUN_RECORD = "run.json"
MAX_WORKERS = 64
CSV_FIELDS = ("trainee", "score", "max_score", "passed", "reason")


@dataclass
class GradingSetup:
    """Where things are: resolved from the settings by the CLI, given directly by tests."""

    curriculum: Path
    data_root: Path
    state_dir: Path
    catalog: Path | None = None
    database: str | None = None
    isolation: str = "auto"
    uid_base: int = 200000
    limits: Limits = field(default_factory=Limits)
    """Memory, processes, output ...; the time limits come from the exercise unless below."""
    time_limit: int | None = None
    cell_time_limit: int | None = None
    hidden: list[Path] = field(default_factory=list)
    """Paths graded kernels must not see besides those the run knows about (the settings
    file, the operator's home)."""
    isolation_options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the isolation backend beyond ``uid_base`` (docker: the image
    and the project)."""
    access: dict[str, RoleAccess] | None = None
    """What each role may read, from the settings (None: the built-in defaults)."""


@dataclass
class RunOptions:
    course: str
    exercise: str | None
    submissions: Path
    out: Path
    workers: int = 1
    dask: bool = False
    cohort: str = DEFAULT_COHORT
    disabled_steps: tuple[str, ...] = ()


@dataclass
class RunSummary:
    attempts: list[Attempt]
    out: Path
    backend: str
    seconds: float
    notes: list[str] = field(default_factory=list)
    """What the instructor should know (a declared dataset graded kernels did not get)."""

    @property
    def failed(self) -> list[Attempt]:
        return [a for a in self.attempts if not a.passed]

    @property
    def grader_errors(self) -> list[Attempt]:
        return [a for a in self.attempts if a.grader_error]


def read_submissions(directory: Path) -> list[Submission]:
    """``<trainee>.ipynb`` files in ``directory``; raise BadInput listing every problem."""
    if not directory.is_dir():
        raise BadInput(f"--submissions {directory}: no such folder")
    problems: list[str] = []
    submissions: list[Submission] = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.suffix != ".ipynb":
            continue
        trainee = path.stem
        if not is_valid_username(trainee):
            problems.append(
                f"{path}: {trainee[:64]!r} is not a trainee's username (lower-case letters, "
                "digits, . _ -): name each file <trainee>.ipynb"
            )
            continue
        if path.is_symlink() or not path.is_file():
            problems.append(f"{path}: not a regular file (links are not followed)")
            continue
        submissions.append(Submission(trainee, path.read_bytes(), str(path)))
    if problems:
        raise BadInput(*problems)
    if not submissions:
        raise BadInput(f"--submissions {directory}: no <trainee>.ipynb files in it")
    return submissions


def check_out_dir(out: Path, submissions: Path) -> None:
    if out.resolve() == submissions.resolve() or submissions.resolve() in out.resolve().parents:
        raise BadInput(f"--out {out}: must not be inside the submissions folder {submissions}")
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out}: exists and is not a folder")


class Progress:
    """graded / failed / remaining, on one line at a terminal, one line per step otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True):
        self.total = total
        self.graded = 0
        self.failed = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.bar: Any = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=self.stream, unit="notebook", dynamic_ncols=True)

    def update(self, attempt: Attempt) -> None:
        self.graded += 1
        self.failed += 0 if attempt.passed else 1
        remaining = self.total - self.graded
        text = f"graded {self.graded}/{self.total}, failed {self.failed}, remaining {remaining}"
        if self.bar is not None:
            self.bar.set_postfix_str(f"failed {self.failed}, remaining {remaining}")
            self.bar.update(1)
        elif self.enabled:
            print(
                f"{text}  ({attempt.trainee}: {attempt.total:g}/{attempt.max_score})",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def grade_all(
    pipeline: Pipeline,
    submissions: list[Submission],
    workers: int,
    on_attempt: Callable[[Attempt], None],
) -> list[Attempt]:
    """Grade ``submissions`` with ``workers`` threads; ``on_attempt`` sees each as it ends."""
    attempts: list[Attempt] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grader") as pool:
        futures = [pool.submit(pipeline.grade, s) for s in submissions]
        for future in as_completed(futures):
            attempt = future.result()
            on_attempt(attempt)
            attempts.append(attempt)
    return sorted(attempts, key=lambda a: a.trainee)


def prepare(setup: GradingSetup, options: RunOptions) -> tuple[GradedExercise, list[Submission]]:
    """Everything that can be wrong with the input, checked before anything is graded."""
    if not 1 <= options.workers <= MAX_WORKERS:
        raise BadInput(f"--workers {options.workers}: give 1 to {MAX_WORKERS}")
    check_cohort(options.cohort)
    loaded = find_course(setup.curriculum, options.course)
    exercise = load_exercise(loaded, options.exercise)
    submissions = read_submissions(options.submissions)
    check_out_dir(options.out, options.submissions)
    return exercise, submissions


def run(
    setup: GradingSetup,
    options: RunOptions,
    progress: bool = True,
    executor: Callable[[NotebookNode, Submission, str], Execution] | None = None,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> RunSummary:
    """Grade a cohort; see the module docstring. ``on_attempt`` sees each attempt once it is
    recorded (a grading job's live progress)."""
    exercise, submissions = prepare(setup, options)
    limits = replace(
        setup.limits,
        time=setup.time_limit or exercise.exercise.time_limit,
        cell_time=setup.cell_time_limit or exercise.exercise.cell_time_limit,
    )
    backend_name = "dask" if options.dask else setup.isolation
    store = ResultsStore(setup.database or default_url(setup.state_dir))
    secret = cohort_secret(setup.state_dir, options.cohort)
    workers = options.workers
    own_cap = None  # the grader's own memory cap, when no kernel would share its group
    data = grading_data(exercise.loaded.course, setup.catalog, setup.data_root, setup.access)
    if executor is None:
        if options.dask:
            executor = DaskExecutor(
                limits,
                data_root=setup.data_root,
                catalog=setup.catalog,
                datasets=data.datasets,
                catalog_text=data.catalog_text,
            )
            workers = min(len(submissions), MAX_WORKERS)
        else:
            backend = backend_class(setup.isolation)(
                uid_base=setup.uid_base, **setup.isolation_options
            )
            backend_name = backend.describe()
            if backend.isolates_files:  # sandbox and docker kernels run in groups of their own
                own_cap = limits.grader_memory
            hidden = [
                setup.curriculum,
                exercise.loaded.directory,
                options.submissions,
                options.out,
                setup.state_dir,
                *setup.hidden,
            ]
            executor = LocalExecutor(
                backend,
                limits,
                slots=workers,
                hidden=hidden,
                data_root=setup.data_root,
                catalog=setup.catalog,
                inputs=exercise.inputs(),
                datasets=data.datasets,
                # the declared entries only; without file isolation a guide, not a wall
                catalog_text=data.catalog_text,
            )
    pipeline = Pipeline(
        exercise,
        cohort=options.cohort,
        secret=secret,
        data_root=setup.data_root,
        executor=executor,
        disabled=options.disabled_steps,
    )
    out = options.out
    graded_dir = out / "graded"
    graded_dir.mkdir(parents=True, exist_ok=True)
    bar = Progress(len(submissions), enabled=progress)
    lock = threading.Lock()
    started = time.monotonic()

    def finished(attempt: Attempt) -> None:
        with lock:
            if attempt.graded_notebook is not None:
                try:
                    _write_notebook(
                        graded_dir / f"{attempt.trainee}.ipynb", attempt.graded_notebook
                    )
                except (OSError, ValueError, RecursionError) as exc:
                    # one trainee's notebook must not end the cohort's run; the operator is
                    # told (exit 1) as for any grader error
                    attempt.grader_error = True
                    note = f"grader error: the graded notebook was not written ({exc!r:.100})"
                    attempt.reason = f"{attempt.reason}; {note}" if attempt.reason else note
            store.record(attempt)
            bar.update(attempt)
            if on_attempt is not None:
                on_attempt(attempt)

    try:
        with grader_memory_cap(own_cap):
            attempts = grade_all(pipeline, submissions, workers, finished)
    finally:
        bar.close()
        close = getattr(executor, "close", None)
        if close is not None:
            close()
    write_results_csv(out / RESULTS_CSV, attempts)
    record = {
        "cohort": options.cohort,
        "course": exercise.course_id,
        "exercise": exercise.name,
        "database": shown_url(setup.database or default_url(setup.state_dir)),
        "grader_version": exercise.grader_version,
        "trainees": [a.trainee for a in attempts],
        # what exactly this run graded: the report reads these rows and no others
        "submissions": {a.trainee: a.submission_hash for a in attempts},
    }
    (out / RUN_RECORD).write_text(json.dumps(record, indent=1) + "\n")
    store.close()
    notes = [
        f"graded kernels did not get the dataset {line} (course.yaml datasets:)"
        for line in data.refused
    ]
    return RunSummary(attempts, out, backend_name, time.monotonic() - started, notes)


def _write_notebook(path: Path, nb: NotebookNode) -> None:
    # 0600: a graded notebook holds a trainee's working code, for the instructor only
    temporary = path.with_suffix(".ipynb.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        nbformat.write(nb, handle)
    os.chmod(temporary, 0o600)  # an older file of the same name kept its mode
    os.replace(temporary, path)


def write_results_csv(path: Path, attempts: list[Attempt]) -> None:
    temporary = path.with_suffix(".csv.tmp")
    with open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        for attempt in attempts:
            writer.writerow(
                [
                    attempt.trainee,
                    f"{attempt.total:g}",
                    attempt.max_score,
                    "yes" if attempt.passed else "no",
                    attempt.reason,
                ]
            )
    os.replace(temporary, path)
