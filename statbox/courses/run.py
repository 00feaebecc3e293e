"""Running course notebooks with papermill on sample data, and checking what they computed.

``statbox course check`` and the curriculum test tier both go through :func:`run_jobs`: every
lesson, every reference solution and every (untouched) exercise template of a course runs
in a fresh kernel with the catalog and data root in its environment, then the course's
``grader/verify.py`` recomputes the figures another way and says whether they agree.

An exercise notebook (solution or template) also records its answers: after its last cell a
cell is appended that records ``answers = {task id: plain(value of the task's variable)}``,
the value the certification grader reads (a variable that is not set is ``None``).

Invariant: a run never raises for a broken notebook or a failing check; it returns a
:class:`NotebookRun` that names the cell that failed, so one broken notebook does not hide
the others. Each notebook's kernel gets its own environment (several run at once, in
threads), and nothing is written outside the work folder given.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from statbox.contract import CATALOG_ENV, DATA_ROOT_ENV
from statbox.courses.model import GRADER_DIR, LoadedCourse
from statbox.courses.notebooks import cell_tags, read_notebook
from statbox.courses.results import RESULTS_ENV, read_results
from statbox.courses.translations import translations_of

VERIFY_FILE = f"{GRADER_DIR}/verify.py"
ANSWERS_KEY = "answers"
"""Key under which an exercise notebook's task answers are recorded."""
ANSWERS_TAG = "statbox-answers"
INJECTED_TAG = "injected-parameters"  # papermill's tag for the cell it adds


@dataclass(frozen=True)
class NotebookJob:
    """One notebook of one course to run."""

    course: LoadedCourse
    notebook: str
    """The notebook's path as course.yaml names it."""
    answers: tuple[str, ...] = ()
    """Exercise notebooks: the variables holding each task's answer, in task order."""
    tasks: tuple[str, ...] = ()
    """Exercise notebooks: the task ids, matching ``answers``."""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    source: Path | None = None
    """The file to run when it is not ``notebook`` itself: a translation of it, whose figures
    must be the notebook's (grader/verify.py checks them as the notebook's)."""
    label: str = ""
    """Tells this job from others of the same notebook (e.g. the translation's language)."""

    @property
    def name(self) -> str:
        suffix = f"@{self.label}" if self.label else ""
        return f"{self.course.id}/{self.notebook}{suffix}"

    @property
    def path(self) -> Path:
        return self.source if self.source is not None else self.course.path(self.notebook)


@dataclass(frozen=True)
class Environment:
    """What the notebooks read: the root catalog and the data root it points at."""

    catalog: Path
    data_root: Path

    def variables(self, results: Path) -> dict[str, str]:
        return {
            CATALOG_ENV: str(self.catalog),
            DATA_ROOT_ENV: str(self.data_root),
            RESULTS_ENV: str(results),
        }


@dataclass(frozen=True)
class NotebookRun:
    """The outcome of one job: what it recorded, or where and why it failed."""

    job: NotebookJob
    results: dict[str, Any]
    output: Path
    """The executed notebook, with its outputs (also when it failed)."""
    seconds: float
    failure: str | None = None
    """None when the notebook ran and its figures agree; else one paragraph saying why."""

    @property
    def ok(self) -> bool:
        return self.failure is None


def course_jobs(loaded: LoadedCourse) -> list[NotebookJob]:
    """Every lesson, the reference solution and the untouched exercise template of a course."""
    jobs = [NotebookJob(loaded, lesson.notebook) for lesson in loaded.course.lessons]
    exercise = loaded.course.exercise
    if exercise is not None:
        answers = tuple(task.answer_variable for task in exercise.tasks)
        tasks = tuple(task.id for task in exercise.tasks)
        for notebook in (exercise.solution, exercise.notebook):
            jobs.append(NotebookJob(loaded, notebook, answers=answers, tasks=tasks))
    return jobs


def translation_jobs(loaded: LoadedCourse) -> list[NotebookJob]:
    """A job for every translation of a lesson or of the exercise template, each checked by
    grader/verify.py as the notebook it translates (so with the same figures)."""
    jobs = [
        job for job in course_jobs(loaded) if job.notebook in loaded.course.published_notebooks()
    ]
    return [
        replace(job, source=path, label=language)
        for job in jobs
        for language, path in translations_of(job.path).items()
    ]


def load_verifier(loaded: LoadedCourse) -> dict[str, Callable[[dict[str, Any], Path], None]]:
    """``EXPECTED`` of the course's grader/verify.py: notebook -> check(results, data_root)."""
    module = load_module(loaded.path(VERIFY_FILE), f"verify_{loaded.id.replace('-', '_')}")
    expected = getattr(module, "EXPECTED", None)
    if not isinstance(expected, dict):
        raise TypeError(f"{loaded.path(VERIFY_FILE)} defines no EXPECTED dict")
    return expected


def load_module(path: Path, name: str) -> ModuleType:
    """Import the Python file at ``path`` as a module named ``name`` (not kept in sys.modules)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _answers_cell(job: NotebookJob) -> dict[str, Any]:
    pairs = ", ".join(
        f"{task!r}: globals().get({var!r})"
        for task, var in zip(job.tasks, job.answers, strict=True)
    )
    source = (
        "from statbox.courses.results import record as _statbox_record\n"
        f"_statbox_record({ANSWERS_KEY}={{{pairs}}})\n"
    )
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": [ANSWERS_TAG]},
        "outputs": [],
        "source": source,
    }


def _kernel_manager_class(environment: dict[str, str], cwd: Path, log: IO[str]) -> type:
    """A kernel manager that starts its kernel in ``cwd`` with ``environment`` added to ours,
    and its stderr (warnings, a crash's last words) going to ``log`` rather than to ours.

    The folder is given to the kernel rather than to papermill, whose ``cwd`` changes the
    folder of the whole process: with notebooks running in threads, a race."""
    from jupyter_client import AsyncKernelManager

    class StatboxKernelManager(AsyncKernelManager):
        async def _async_pre_start_kernel(self, **kw: Any) -> Any:
            kw["env"] = {**os.environ, **kw.get("env", {}), **environment}
            kw["stderr"] = log
            kw["cwd"] = str(cwd)
            return await super()._async_pre_start_kernel(**kw)

    return StatboxKernelManager


def _failed_cell(executed: Path, cell_index: int) -> str:
    """'cell N' counted in the notebook as written (papermill's added cell not counted)."""
    try:
        cells = read_notebook(executed)["cells"]
    except Exception:
        return f"cell {cell_index + 1}"
    added = sum(
        1
        for cell in cells[:cell_index]
        if INJECTED_TAG in cell_tags(cell) or ANSWERS_TAG in cell_tags(cell)
    )
    if 0 <= cell_index < len(cells) and ANSWERS_TAG in cell_tags(cells[cell_index]):
        return "the appended cell that records the answers"
    return f"cell {cell_index + 1 - added}"


def _close_thread_event_loop() -> None:
    """Close the event loop nbclient left in this worker thread (jupyter_core makes one per
    thread and never closes it: a ResourceWarning when the thread's loop is collected)."""
    if threading.current_thread() is threading.main_thread():
        return
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        return
    if not loop.is_running():
        loop.close()
        asyncio.set_event_loop(None)


def run_notebook(
    job: NotebookJob, environment: Environment, workdir: Path, timeout: float = 300
) -> NotebookRun:
    """Execute ``job`` in a fresh kernel, then check its figures with grader/verify.py."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    slug = job.name.replace("/", "__").replace("@", "__").removesuffix(".ipynb")
    folder = workdir / slug
    folder.mkdir(parents=True, exist_ok=True)
    results_file = folder / "results.json"
    results_file.unlink(missing_ok=True)
    output = folder / "executed.ipynb"
    source = job.path
    started = time.monotonic()
    failure: str | None = None
    kernel_log = (folder / "kernel.log").open("w")
    try:
        notebook = read_notebook(source)
        if job.answers:
            notebook["cells"].append(_answers_cell(job))
        if (notebook.get("nbformat"), notebook.get("nbformat_minor", 0)) >= (4, 5):
            for index, cell in enumerate(notebook["cells"]):  # nbformat 4.5 wants cell ids
                cell.setdefault("id", f"cell-{index}")
        papermill.execute_notebook(
            nbformat.from_dict(notebook),
            str(output),
            parameters=dict(job.parameters),
            kernel_name="python3",
            kernel_manager_class=_kernel_manager_class(
                environment.variables(results_file), source.parent, kernel_log
            ),
            progress_bar=False,
            log_output=False,
            execution_timeout=timeout,
        )
    except PapermillExecutionError as exc:
        first_line = next((line for line in exc.source.splitlines() if line.strip()), "")
        failure = (
            f"{_failed_cell(output, exc.cell_index)} failed ({first_line.strip()[:80]!r}): "
            f"{exc.ename}: {exc.evalue}"
        )
    except Exception as exc:  # a kernel that died, a notebook papermill cannot read
        failure = f"could not run: {type(exc).__name__}: {exc}"
    finally:
        kernel_log.close()
        _close_thread_event_loop()
    results = read_results(results_file)
    if failure is None:
        failure = verify(job, results, environment.data_root)
    return NotebookRun(job, results, output, time.monotonic() - started, failure)


_VERIFYING = threading.Lock()
"""Verifiers run one at a time: they import libraries as they load (matplotlib, geopandas),
and two threads importing the same package at once can see it half initialised
(``module 'matplotlib' has no attribute 'rcParams'``). Kernels still run in parallel."""


def verify(job: NotebookJob, results: dict[str, Any], data_root: Path) -> str | None:
    """Why the figures ``job`` recorded are wrong (per grader/verify.py), or None if right."""
    if not results:
        return "recorded no results (call statbox.courses.results.record with its key figures)"
    with _VERIFYING:
        return _verify(job, results, data_root)


def _verify(job: NotebookJob, results: dict[str, Any], data_root: Path) -> str | None:
    try:
        expected = load_verifier(job.course)
    except Exception as exc:
        return f"cannot load {VERIFY_FILE}: {type(exc).__name__}: {exc}"
    check = expected.get(job.notebook)
    if check is None:
        return f"{VERIFY_FILE} has no check for {job.notebook} in EXPECTED"
    try:
        check(results, data_root)
    except AssertionError as exc:
        return f"figures disagree with {VERIFY_FILE}: {exc or 'assertion failed'}"
    except Exception as exc:
        return f"{VERIFY_FILE} failed: {type(exc).__name__}: {exc}"
    return None


def run_jobs(
    jobs: Iterable[NotebookJob],
    environment: Environment,
    workdir: Path,
    threads: int = 2,
    progress: bool | None = None,
    on_done: Callable[[NotebookRun], None] | None = None,
) -> list[NotebookRun]:
    """Run ``jobs``, ``threads`` at a time (each kernel is its own process), in job order.

    ``progress``: show a progress bar on stderr (None: only when stderr is a terminal).
    ``on_done`` is called with each run as it finishes.
    """
    from tqdm import tqdm

    todo = list(jobs)
    runs: dict[int, NotebookRun] = {}
    with (
        tqdm(
            total=len(todo),
            unit="notebook",
            file=sys.stderr,
            disable=(not sys.stderr.isatty()) if progress is None else not progress,
        ) as bar,
        ThreadPoolExecutor(max_workers=max(1, threads)) as pool,
    ):
        futures = {
            pool.submit(run_notebook, job, environment, workdir): index
            for index, job in enumerate(todo)
        }
        for future in as_completed(futures):
            run = future.result()
            runs[futures[future]] = run
            bar.update(1)
            if on_done is not None:
                on_done(run)
    return [runs[index] for index in range(len(todo))]


def answers_of(results: dict[str, Any]) -> dict[str, Any]:
    """The task answers an exercise notebook recorded (see :data:`ANSWERS_KEY`)."""
    answers = results.get(ANSWERS_KEY, {})
    return answers if isinstance(answers, dict) else {}
