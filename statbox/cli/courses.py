"""``statbox course``: list, show, check and publish the courses of the curriculum.

A thin layer over :mod:`statbox.courses` (model, run, publish): it finds the curriculum, the
catalog, the data root and the state directory from the settings, calls one library
function, and prints. Bad course files are reported one line per problem (file, line, key)
with exit code 2, before anything runs or is written.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from statbox.cli.common import CommandGroup, load
from statbox.contract import is_data_url
from statbox.courses.model import (
    COURSE_FILE,
    COURSE_ID_PATTERN,
    CurriculumError,
    LoadedCourse,
    load_course,
)
from statbox.courses.model import load_curriculum as _load_curriculum
from statbox.errors import BadInput, ExitCode
from statbox.settings.model import LoadedSettings

EPILOG = (
    "exit codes: 0 success; 1 a notebook failed or its figures disagree; 2 bad input (invalid "
    "course files or arguments; nothing was run or written); 3 this machine lacks something."
)


def _settings(args: argparse.Namespace) -> LoadedSettings:

    return load(args)


def _problems(exc: CurriculumError) -> BadInput:
    return BadInput(*(str(problem) for problem in exc.problems))


def load_curriculum(loaded: LoadedSettings) -> dict[str, LoadedCourse]:
    try:
        return _load_curriculum(loaded.paths.curriculum)
    except CurriculumError as exc:
        raise _problems(exc) from None


def load_one(loaded: LoadedSettings, course_id: str) -> LoadedCourse:
    """The course ``course_id`` of the settings' curriculum; BadInput if absent or invalid."""
    root = loaded.paths.curriculum
    if (
        not re.fullmatch(COURSE_ID_PATTERN, course_id)
        or not (root / course_id / COURSE_FILE).is_file()
    ):
        known = sorted(p.parent.name for p in root.glob(f"*/{COURSE_FILE}"))
        names = ", ".join(known) or "none"
        raise BadInput(f"{course_id[:64]!r} is not a course in {root} (courses: {names})")
    try:
        return load_course(root / course_id)
    except CurriculumError as exc:
        raise _problems(exc) from None


def _hours(seconds: float) -> str:
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours}h{minutes:02d}" if hours else f"{minutes}m"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


# ----------------------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace) -> int:
    courses = load_curriculum(_settings(args))
    rows = [["COURSE", "LEVEL", "TIME", "LESSONS", "EXERCISE", "AUDIENCE", "TITLE"]]
    for course_id, loaded in sorted(courses.items()):
        course = loaded.course
        exercise = (
            f"{course.exercise.max_score} pts, pass {course.exercise.pass_mark:g}%"
            if course.exercise
            else "-"
        )
        rows.append(
            [
                course_id,
                course.level,
                _hours(course.duration),
                str(len(course.lessons)),
                exercise,
                ",".join(course.audience),
                course.title,
            ]
        )
    print(_table(rows))
    return ExitCode.OK


def cmd_show(args: argparse.Namespace) -> int:
    loaded = load_one(_settings(args), args.course)
    course = loaded.course
    print(f"{course.id}: {course.title}")
    print(f"  level {course.level}, {_hours(course.duration)}, language {course.language}")
    print(f"  for: {', '.join(course.audience)}")
    if course.summary:
        print(f"  {course.summary}")
    if course.prerequisites:
        print(f"  take first: {', '.join(course.prerequisites)}")
    if course.datasets:
        print(f"  datasets: {', '.join(course.datasets)}")
    print("You will be able to:")
    for outcome in course.outcomes:
        print(f"  - {outcome}")
    print("Lessons:")
    for number, lesson in enumerate(course.lessons, 1):
        print(f"  {number}. {lesson.title}  ({lesson.notebook})")
    exercise = course.exercise
    if exercise is not None:
        print(
            f"Certification exercise: {exercise.notebook}, {exercise.max_score} points, "
            f"pass mark {exercise.pass_mark:g}%, at most {_hours(exercise.time_limit)}"
        )
        for task in exercise.tasks:
            print(f"  - {task.id} ({task.points} pts): {task.title}")
        if exercise.variant:
            print(f"  differs per trainee: {', '.join(exercise.variant)}")
    return ExitCode.OK


def cmd_check(args: argparse.Namespace) -> int:
    from statbox.courses.run import Environment, NotebookRun, course_jobs, run_jobs

    if args.jobs < 1:
        raise BadInput(f"--jobs {args.jobs}: must be at least 1")
    loaded = _settings(args)
    if args.course:
        courses = [load_one(loaded, course_id) for course_id in dict.fromkeys(args.course)]
    else:
        courses = list(load_curriculum(loaded).values())
    configured = loaded.paths.data_root
    if not args.data_root and is_data_url(configured):
        raise BadInput(
            f"paths.data_root is {configured}: courses are checked on the sample data; "
            "generate it (statbox catalog samples --out DIR) and pass --data-root DIR"
        )
    data_root = Path(args.data_root).resolve() if args.data_root else Path(configured)
    if not data_root.is_dir():
        raise BadInput(
            f"data root {data_root} does not exist: generate the samples "
            f"(statbox catalog samples --out {data_root}) or pass --data-root DIR"
        )
    if not loaded.paths.catalog.is_file():
        raise BadInput(f"paths.catalog: {loaded.paths.catalog} does not exist")
    jobs = [job for course in courses for job in course_jobs(course)]
    keep = Path(args.output).resolve() if args.output else None
    workdir = keep or Path(tempfile.mkdtemp(prefix="statbox-course-check-"))
    print(f"Running {len(jobs)} notebooks of {len(courses)} courses on {data_root}", flush=True)

    def report(run: NotebookRun) -> None:
        from tqdm import tqdm

        mark = "ok  " if run.ok else "FAIL"
        tqdm.write(f"[{mark}] {run.job.name}  ({run.seconds:.1f} s)", file=sys.stdout)

    runs = run_jobs(
        jobs,
        Environment(loaded.paths.catalog, data_root),
        workdir,
        threads=args.jobs,
        on_done=report,
    )
    failed = [run for run in runs if not run.ok]
    for run in failed:
        print(f"\n{run.job.name}: {run.failure}\n  executed notebook: {run.output}")
    print(f"\n{len(runs) - len(failed)} passed, {len(failed)} failed")
    if failed and keep is None:
        print(f"(executed notebooks kept in {workdir})")
    elif keep is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return ExitCode.FAILED if failed else ExitCode.OK


def cmd_publish(args: argparse.Namespace) -> int:
    from statbox.courses.publish import Outcome, outside_audience, resolve_trainees
    from statbox.modes.base import deployment

    loaded = _settings(args)
    course = load_one(loaded, args.course)
    users = resolve_trainees(loaded.settings, args.to)
    if not args.any_role:
        outside = outside_audience(loaded.settings, course, users)
        if outside:
            raise BadInput(
                f"{course.id} is for {', '.join(course.course.audience)} (course.yaml: "
                f"audience), not for {', '.join(outside)}: pass --any-role to publish anyway"
            )
    state_dir = Path(args.state_dir).resolve() if args.state_dir else loaded.paths.state_dir
    personalise = None
    if course.course.exercise is not None and course.course.exercise.variant:
        # Each trainee's exercise copy carries their own variant, from the cohort's secret:
        # the one `statbox certify run --cohort` derives again when grading.
        from statbox.certify.variants import cohort_secret, make_personaliser

        personalise = make_personaliser(course, cohort_secret(state_dir, args.cohort))
    homes = deployment(loaded.settings.mode).homes(loaded, state_dir)
    published = homes.publish(course, users, personalise)
    for user in users:
        mine = [p for p in published if p.user == user]
        counts = Counter(p.outcome for p in mine)
        summary = ", ".join(f"{counts[o]} {o.value}" for o in Outcome if counts[o])
        where = homes.where(user, course.id)
        print(f"{user}: {summary}  ({where})")
        for p in mine:
            if p.outcome is Outcome.kept:
                print(f"  {p.path}: changed by {user}: kept as they have it")
    return ExitCode.OK


# ----------------------------------------------------------------------------- parser


def register(commands: Any) -> None:
    """Add ``statbox course ...`` to the top-level subparsers."""
    group = CommandGroup(
        commands,
        "course",
        "Courses: list, show, check, publish.",
        description=__doc__,
        epilog=EPILOG,
    )

    add = group.add

    add("list", cmd_list, "List the courses of the curriculum (paths.curriculum).")
    show = add("show", cmd_show, "Show a course: outcomes, lessons, certification exercise.")
    show.add_argument("course", metavar="COURSE")

    check = add(
        "check",
        cmd_check,
        "Run every lesson, reference solution and exercise template with papermill on the "
        "sample data, and check the figures each computes (grader/verify.py).",
    )
    check.add_argument("course", metavar="COURSE", nargs="*", help="default: every course")
    check.add_argument(
        "--data-root", metavar="DIR", help="data the catalog points at (default: paths.data_root)"
    )
    check.add_argument(
        "--jobs", type=int, default=2, metavar="N", help="notebooks run at once (default: 2)"
    )
    check.add_argument(
        "--output",
        metavar="DIR",
        help="keep the executed notebooks here (default: a temporary folder, kept on failure)",
    )

    publish = add(
        "publish",
        cmd_publish,
        "Copy a course's material into trainees' homes (never grader/), keeping their edits.",
    )
    publish.add_argument("course", metavar="COURSE")
    publish.add_argument(
        "--to",
        action="append",
        required=True,
        metavar="USER|GROUP",
        help="a username, or a group of the settings' groups (repeatable)",
    )
    publish.add_argument(
        "--any-role",
        action="store_true",
        help="publish also to users whose role is not in the course's audience",
    )
    publish.add_argument(
        "--state-dir", metavar="DIR", help="where the homes are (default: paths.state_dir)"
    )
    publish.add_argument(
        "--cohort",
        default="default",
        metavar="NAME",
        help="whose secret derives each trainee's exercise variant (as for certify run)",
    )
