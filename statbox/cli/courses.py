"""``statbox course``: list, show and check the courses of the curriculum; publish one to a
cohort, and what the Classroom does for its people (open, submit, result, roster, release).

A thin layer over :mod:`statbox.courses` (model, run) and :mod:`statbox.classroom` (who may
do what with a course): it finds the curriculum, the catalog, the data root and the state
directory from the settings, calls one library function, and prints. Bad course files are
reported one line per problem (file, line, key) with exit code 2, before anything runs or
is written.
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
from statbox.cli.common import acting as _acting
from statbox.cli.common import table as _table
from statbox.contract import is_data_url
from statbox.courses.model import (
    COURSE_FILE,
    COURSE_ID_PATTERN,
    CurriculumError,
    LoadedCourse,
    load_course,
)
from statbox.courses.model import load_curriculum as _load_curriculum
from statbox.courses.translations import LANGUAGES, translations_of
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
    translated = [translations_of(loaded.path(n)) for n in course.published_notebooks()]
    if any(translated):
        found = [language for language in LANGUAGES if any(language in t for t in translated)]
        print(
            "  also in: "
            + ", ".join(
                f"{language} ({sum(language in t for t in translated)} of {len(translated)} "
                "notebooks)"
                for language in found
            )
        )
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
    from statbox.courses.run import (
        Environment,
        NotebookRun,
        course_jobs,
        run_jobs,
        translation_jobs,
    )

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
    if args.translations:
        jobs += [job for course in courses for job in translation_jobs(course)]
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


def _classroom(args: argparse.Namespace) -> Any:
    from statbox.classroom.setup import classroom_from_settings

    loaded = _settings(args)
    state_dir = getattr(args, "state_dir", None)
    return classroom_from_settings(loaded, Path(state_dir).resolve() if state_dir else None)


def _outcomes(published: list[Any]) -> dict[str, str]:
    from statbox.courses.publish import Outcome

    lines: dict[str, str] = {}
    for user in dict.fromkeys(p.user for p in published):
        counts = Counter(p.outcome for p in published if p.user == user)
        lines[user] = ", ".join(f"{counts[o]} {o.value}" for o in Outcome if counts[o])
    return lines


def cmd_publish(args: argparse.Namespace) -> int:
    from statbox.classroom.service import parse_deadline

    room = _classroom(args)
    deadline = parse_deadline(args.deadline) if args.deadline else None
    publication = room.publish(_acting(args), args.course, args.cohort, deadline)
    when = f", deadline {publication.deadline.isoformat()}" if publication.deadline else ""
    print(f"Published {publication.course} to cohort {publication.cohort}{when}.")
    delivered = room.deliver(_acting(args), publication.course, publication.cohort)
    summaries = _outcomes(delivered)
    for user, summary in summaries.items():
        print(f"  {user}: {summary}  ({room.homes.where(user, publication.course)})")
        for p in delivered:
            if p.user == user and p.outcome.value == "kept":
                print(f"    {p.path}: changed by {user}: kept as they have it")
    waiting = [u for u in room.members(_acting(args), publication.cohort) if u not in summaries]
    if waiting:
        print(f"  not signed in yet (they get it when they open it): {', '.join(waiting)}")
    return ExitCode.OK


def _time(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def cmd_roster(args: argparse.Namespace) -> int:
    room = _classroom(args)
    rows = [["TRAINEE", "OPENED", "SUBMISSIONS", "COUNTS", "SHA-256", "SAME AS"]]
    for row in room.roster(_acting(args), args.cohort, args.course):
        latest = row.latest
        counts = "-"
        if latest is not None:
            counts = f"#{latest.number} {_time(latest.submitted_at)}" + (
                " LATE" if latest.late else ""
            )
        rows.append(
            [
                row.trainee,
                _time(row.opened_at),
                str(row.submissions),
                counts,
                latest.sha256[:16] if latest else "-",
                ", ".join(row.same_as) or "-",
            ]
        )
    print(_table(rows))
    return ExitCode.OK


def cmd_open(args: argparse.Namespace) -> int:
    room = _classroom(args)
    opened = room.open_course(_acting(args), args.course, args.cohort, args.language)
    print(f"{opened.course} (cohort {opened.cohort}) is in {opened.where}")
    if opened.exercise:
        variant = ", ".join(f"{k} = {v!r}" for k, v in opened.variant.items()) or "none"
        print(f"  work in {opened.exercise} (your variant: {variant}), then submit it")
    return ExitCode.OK


def cmd_submit(args: argparse.Namespace) -> int:
    room = _classroom(args)
    record = room.submit(_acting(args), args.course, args.cohort)
    late = " (LATE: after the deadline; kept and marked)" if record.late else ""
    print(
        f"Submitted {record.course} #{record.number} at {_time(record.submitted_at)}{late}, "
        f"SHA-256 {record.sha256}"
    )
    return ExitCode.OK


def cmd_result(args: argparse.Namespace) -> int:
    room = _classroom(args)
    result = room.my_result(_acting(args), args.course, args.cohort)
    if result is None:
        print(f"{args.course}: no result released yet")
        return ExitCode.OK
    verdict = "passed" if result.passed else "not passed"
    print(f"{result.course}: {result.total:g} / {result.max_score}, {verdict}")
    for task in result.tasks:
        print(f"  {task.title}: {task.points:g} / {task.max_points}: {task.feedback}")
    if result.reason:
        print(f"  notes: {result.reason}")
    return ExitCode.OK


def cmd_release(args: argparse.Namespace) -> int:
    room = _classroom(args)
    released = room.release(_acting(args), args.cohort, args.course)
    print(
        f"Released {args.course} results to {len(released)} trainees of {args.cohort}: "
        f"{', '.join(released) or 'none graded yet'}"
    )
    return ExitCode.OK


# ----------------------------------------------------------------------------- parser


def register(commands: Any) -> None:
    """Add ``statbox course ...`` to the top-level subparsers."""
    group = CommandGroup(
        commands,
        "course",
        "Courses: list, show, check; publish to a cohort, open, submit, roster, release.",
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
        "--translations",
        action="store_true",
        help="run every translation too, its figures checked as the original's",
    )
    check.add_argument(
        "--output",
        metavar="DIR",
        help="keep the executed notebooks here (default: a temporary folder, kept on failure)",
    )

    def cohort_option(parser: argparse.ArgumentParser, required: bool = True) -> None:
        parser.add_argument(
            "--cohort",
            required=required,
            metavar="K",
            help="a cohort of the settings (cohorts:)"
            + ("" if required else "; needed only when the course is in several of yours"),
        )

    def state_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--state-dir",
            metavar="DIR",
            help="the hub's state (homes, classroom records); default: paths.state_dir",
        )

    def as_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USER",
            help="act as this user, as the classroom would for them (default: the operator, "
            "who may act on every cohort)",
        )

    publish = add(
        "publish",
        cmd_publish,
        "Publish a course to a cohort (optionally with a deadline); members who have a home "
        "get it now, each with their own exercise variant; trainees' edits are kept.",
    )
    publish.add_argument("course", metavar="COURSE")
    cohort_option(publish)
    publish.add_argument(
        "--deadline",
        metavar="TIME",
        help="submissions after it are kept and marked late, e.g. 2026-12-20T17:00 (UTC) or "
        "2026-12-20T17:00+01:00",
    )
    state_option(publish)
    as_option(publish)

    roster = add(
        "roster", cmd_roster, "Who of a cohort opened a course, and the submission that counts."
    )
    roster.add_argument("course", metavar="COURSE")
    cohort_option(roster)
    state_option(roster)
    as_option(roster)

    for name, func, text in (
        ("open", cmd_open, "Put a published course, with the user's own variant, in their home."),
        ("submit", cmd_submit, "Submit the user's exercise notebook as it is now (a snapshot)."),
        ("result", cmd_result, "The user's released score and per-task feedback."),
    ):
        parser = add(name, func, text)
        parser.add_argument("course", metavar="COURSE")
        cohort_option(parser, required=False)
        state_option(parser)
        parser.add_argument(
            "--as",
            dest="as_user",
            required=True,
            metavar="USER",
            help="the trainee (the classroom page does this for the signed-in trainee)",
        )
        if name == "open":
            parser.add_argument(
                "--language",
                metavar="TAG",
                help=f"the notebooks in this language where the course has a translation "
                f"({', '.join(LANGUAGES)}), else in English (the default)",
            )

    release = add(
        "release",
        cmd_release,
        "Let each graded trainee of a cohort read their own score and feedback.",
    )
    release.add_argument("course", metavar="COURSE")
    cohort_option(release)
    state_option(release)
    as_option(release)
