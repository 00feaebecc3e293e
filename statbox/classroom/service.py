"""The classroom's operations, one method per thing a person does (see the package docstring).

Every public method takes the acting :class:`~statbox.classroom.people.Actor` first and
checks, before reading or writing anything, that this actor may do it; the refusal is a
:class:`~statbox.classroom.errors.NotAllowed` (the web page: 403) or, when the thing is not
theirs to know about, a :class:`~statbox.classroom.errors.NotFound` (404). A trainee asking
about another trainee's submission gets the same NotFound as for one that does not exist.

One source of truth per trainee and exercise: the cohort a course is published to decides
the cohort secret, which derives the variant written into the notebook the trainee opens
(:meth:`Classroom.open_course`) and the variant the grader injects again
(:meth:`Classroom.start_grading` grades with the publication's cohort). Nothing asks the
instructor to repeat the cohort in a second place where it could differ.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from statbox.classroom.errors import NotAllowed, NotFound
from statbox.classroom.people import LEARNER_ROLES, Actor, Standing, standing
from statbox.classroom.state import (
    Layout,
    make_private_dirs,
    read_json,
    write_json,
    write_private,
)
from statbox.courses.model import COURSE_FILE, COURSE_ID_PATTERN, LoadedCourse, load_course
from statbox.courses.publish import Outcome, Published
from statbox.errors import BadInput
from statbox.settings.model import Settings
from statbox.settings.names import is_valid_username

if TYPE_CHECKING:
    from statbox.certify.runner import GradingSetup
    from statbox.modes.base import Homes

MAX_SUBMISSION_BYTES = 16 * 1024**2
"""The largest notebook a trainee may submit (the grader's own limit)."""

COLLECTED_MARK = ".statbox-collected.json"
"""Beside collected submissions: the cohort and course they were collected for."""

JOB_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


def _parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(str(text))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_deadline(text: str) -> datetime:
    """``2026-12-20T17:00`` or ``2026-12-20T17:00+01:00`` (no zone: UTC); BadInput if not."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(
            f"--deadline {text[:40]!r}: give a date and time like 2026-12-20T17:00 (UTC) or "
            "2026-12-20T17:00+01:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Publication:
    """Course ``course`` published to cohort ``cohort``."""

    cohort: str
    course: str
    title: str
    deadline: datetime | None
    published_by: str
    published_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "cohort": self.cohort,
            "course": self.course,
            "title": self.title,
            "deadline": _iso(self.deadline),
            "published_by": self.published_by,
            "published_at": _iso(self.published_at),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Publication:
        return cls(
            data["cohort"],
            data["course"],
            data.get("title", data["course"]),
            _parse_time(data.get("deadline")),
            data["published_by"],
            _parse_time(data["published_at"]) or _now(),
        )


@dataclass(frozen=True)
class Opened:
    """A course as it landed in the trainee's home."""

    cohort: str
    course: str
    where: str
    """The course folder in the trainee's home (as their server shows it)."""
    exercise: str | None
    """The exercise notebook, relative to the course folder: the one to work in and submit."""
    lessons: list[str]
    variant: dict[str, Any]
    files: list[Published]


@dataclass(frozen=True)
class SubmissionRecord:
    """One snapshot a trainee submitted."""

    cohort: str
    course: str
    trainee: str
    number: int
    sha256: str
    size: int
    submitted_at: datetime
    late: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "cohort": self.cohort,
            "course": self.course,
            "trainee": self.trainee,
            "number": self.number,
            "sha256": self.sha256,
            "size": self.size,
            "submitted_at": _iso(self.submitted_at),
            "late": self.late,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SubmissionRecord:
        return cls(
            data["cohort"],
            data["course"],
            data["trainee"],
            int(data["number"]),
            data["sha256"],
            int(data["size"]),
            _parse_time(data["submitted_at"]) or _now(),
            bool(data["late"]),
        )


@dataclass(frozen=True)
class RosterRow:
    """What an instructor sees of one member of the cohort for one course."""

    trainee: str
    opened_at: datetime | None
    submissions: int
    latest: SubmissionRecord | None
    same_as: tuple[str, ...] = ()
    """Other members whose snapshot that counts is the same as this one's: byte for byte,
    or the same answers once metadata, outputs and empty cells are set aside (a copy)."""


def answers_digest(content: bytes) -> str | None:
    """SHA-256 of a notebook's answers: the type and source of each cell that is not empty,
    nothing of metadata, outputs, ids or execution counts, so that a copy with one key added
    or its cells run again is still seen as the same. None when ``content`` is not a
    notebook."""
    try:
        notebook = json.loads(content)
        cells = notebook["cells"]
        kept = []
        for cell in cells:
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else str(source)
            lines = [line.rstrip() for line in text.strip().splitlines()]
            if lines:
                kept.append([str(cell.get("cell_type")), lines])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return hashlib.sha256(json.dumps(kept).encode()).hexdigest()


@functools.lru_cache(maxsize=4096)
def _snapshot_answers(path: Path, sha256: str) -> str | None:
    """:func:`answers_digest` of the snapshot at ``path`` recorded with ``sha256`` (which
    keys the cache: a snapshot never changes once submitted)."""
    try:
        return answers_digest(path.read_bytes())
    except OSError:
        return None


@dataclass
class CollectedSubmissions:
    """What :meth:`Classroom.collect` took: one latest snapshot per member."""

    taken: dict[str, SubmissionRecord] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    """Members who submitted nothing."""
    tampered: list[str] = field(default_factory=list)
    """``trainee: why``: snapshots whose bytes no longer match the recorded SHA-256 (not
    graded: the instructor is told)."""


@dataclass(frozen=True)
class JobStatus:
    """A grading job's progress, as the page polls it (``progress.json``)."""

    job: str
    cohort: str
    course: str
    state: str
    """queued, running, done or failed."""
    done: int
    total: int
    current: str
    """What is happening now, one line (``graded bob (3/5)``, the failure's reason)."""
    started_at: datetime | None
    finished_at: datetime | None
    trainees: list[str]
    only: str | None = None
    """The trainee a re-grade was for; None for the whole cohort."""

    def as_json(self) -> dict[str, Any]:
        return {
            "only": self.only,
            "job": self.job,
            "cohort": self.cohort,
            "course": self.course,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "current": self.current,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "trainees": self.trainees,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobStatus:
        return cls(
            data["job"],
            data["cohort"],
            data["course"],
            data["state"],
            int(data["done"]),
            int(data["total"]),
            data.get("current", ""),
            _parse_time(data.get("started_at")),
            _parse_time(data.get("finished_at")),
            list(data.get("trainees", [])),
            data.get("only"),
        )


@dataclass(frozen=True)
class TaskFeedback:
    id: str
    title: str
    points: float
    max_points: int
    feedback: str


@dataclass(frozen=True)
class Result:
    """A trainee's released result: their score and per-task feedback."""

    cohort: str
    course: str
    trainee: str
    total: float
    max_score: int
    passed: bool
    tasks: list[TaskFeedback]
    reason: str
    submission_sha256: str
    late: bool


# ----------------------------------------------------------------------------- the classroom


@dataclass
class Classroom:
    """The classroom of one hub; build one per process, call it per request.

    ``homes``: users' homes in this deployment mode (``deployment(mode).homes(...)``);
    ``grading``: where grading runs (``statbox.cli.certify.grading_setup``), needed by the
    grading methods only; ``clock``: the time now (tests move it past a deadline).
    """

    settings: Settings
    curriculum: Path
    state_dir: Path
    homes: Homes
    grading: GradingSetup | None = None
    issuer: str = "Statbox"
    base_url: str = ""
    """The hub's public address, where certificates' links and QR codes lead."""
    clock: Callable[[], datetime] = _now
    _jobs: dict[str, threading.Thread] = field(default_factory=dict, repr=False)

    @property
    def layout(self) -> Layout:
        return Layout(self.state_dir)

    # ------------------------------------------------------------------ who

    def standing(self, actor: Actor) -> Standing:
        """The actor's role and cohorts (remembering the groups they act with, so that
        :meth:`members` knows identity-provider cohorts too)."""
        found = standing(self.settings, actor)
        if not actor.is_operator and is_valid_username(actor.name):
            record: dict[str, Any] = {"groups": list(actor.groups)}
            if actor.full_name:
                record["name"] = actor.full_name
            path = self.layout.person(actor.name)
            if (actor.groups or actor.full_name) and read_json(path) != record:
                write_json(path, record)
        return found

    def claimed_names(self) -> dict[str, str]:
        """Full names the identity provider gave people (see :meth:`Layout.claimed_names`)."""
        return self.layout.claimed_names()

    def _teacher(self, actor: Actor, cohort: str) -> Standing:
        """The actor's standing if they may manage ``cohort``; NotAllowed otherwise."""
        self._known_cohort(cohort)
        found = self.standing(actor)
        if cohort not in found.teaches:
            raise NotAllowed(
                f"{actor.name} does not teach cohort {cohort!r}: only its instructors (members "
                "of the group with role instructor) and admins may do this"
            )
        return found

    def _known_cohort(self, cohort: str) -> None:
        if cohort not in self.settings.cohorts:
            known = ", ".join(self.settings.cohorts) or "none"
            raise NotFound(
                f"{cohort[:64]!r} is not a cohort (settings: cohorts: {known}); add the group "
                "to cohorts (and its members to groups, with the shared password) first"
            )

    def members(self, actor: Actor, cohort: str) -> list[str]:
        """The trainees of ``cohort`` (instructors of it and admins only): members of its
        settings group and users who acted with it among their provider groups, whose role
        takes courses. Never the cohort's instructors."""
        self._teacher(actor, cohort)
        return self._members(cohort)

    def _members(self, cohort: str) -> list[str]:
        candidates = set(self.settings.groups.get(cohort, []))
        people = self.layout.people()
        if people.is_dir():
            for path in people.glob("*.json"):
                record = read_json(path) or {}
                if cohort in record.get("groups", []):
                    candidates.add(path.stem)
        members = []
        for user in sorted(candidates):
            if not is_valid_username(user):
                continue
            groups = (read_json(self.layout.person(user)) or {}).get("groups", [])
            if cohort in standing(self.settings, Actor.user(user, groups)).learns:
                members.append(user)
        return members

    # ------------------------------------------------------------------ courses

    def _course(self, course_id: str) -> LoadedCourse:
        if (
            not re.fullmatch(COURSE_ID_PATTERN, course_id)
            or not (self.curriculum / course_id / COURSE_FILE).is_file()
        ):
            raise NotFound(f"{course_id[:64]!r} is not a course of the curriculum")
        from statbox.courses.model import CurriculumError

        try:
            return load_course(self.curriculum / course_id)
        except CurriculumError as exc:
            raise BadInput(*(str(p) for p in exc.problems)) from None

    def publish(
        self, actor: Actor, course_id: str, cohort: str, deadline: datetime | None = None
    ) -> Publication:
        """Publish course ``course_id`` to ``cohort`` with an optional deadline.

        Only an instructor of the cohort (or an admin) may; an unknown cohort is refused
        (NotFound) and nothing is created. Publishing again updates the deadline and keeps
        everything trainees did. The course reaches each trainee when they open it
        (:meth:`open_course`), or :meth:`deliver` pushes it to members who have a home.
        """
        self._teacher(actor, cohort)
        loaded = self._course(course_id)
        publication = Publication(
            cohort, loaded.id, loaded.course.title, deadline, actor.name, self.clock()
        )
        write_json(self.layout.publication(cohort, loaded.id), publication.as_json())
        if loaded.course.exercise is not None:
            from statbox.certify.variants import cohort_secret

            cohort_secret(self.state_dir, cohort)  # made now: every later step derives from it
        return publication

    def publication(self, cohort: str, course_id: str) -> Publication | None:
        data = read_json(self.layout.publication(cohort, course_id))
        return Publication.from_json(data) if data else None

    def publications(self, actor: Actor) -> list[Publication]:
        """The publications the actor may see: for a learner, those of their cohorts whose
        course's audience includes their role; for an instructor, those of the cohorts they
        teach; for an admin, all. Courses never published to the actor's cohort, analyst-only
        courses for a trainee, and the curriculum's own README never appear."""
        found = self.standing(actor)
        visible = []
        for cohort in sorted(found.learns | found.teaches):
            directory = self.layout.publications() / cohort
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("*.json")):
                publication = self.publication(cohort, path.stem)
                if publication is None:
                    continue
                if cohort not in found.teaches:
                    try:
                        loaded = self._course(publication.course)
                    except BadInput:
                        continue  # a course since removed from the curriculum
                    if found.role not in loaded.course.audience:
                        continue
                visible.append(publication)
        return visible

    def _learner_publication(
        self, actor: Actor, course_id: str, cohort: str | None
    ) -> tuple[Publication, LoadedCourse]:
        """The publication of ``course_id`` the learning actor may take; NotFound if none."""
        if actor.is_operator or not is_valid_username(actor.name):
            raise NotAllowed("only a signed-in trainee opens and submits a course")
        found = self.standing(actor)
        if found.role not in LEARNER_ROLES:
            raise NotAllowed(
                f"{actor.name} is {found.role}: only trainees (and analysts in a cohort) open "
                "and submit courses"
            )
        mine = [
            p
            for p in self.publications(actor)
            if p.course == course_id and p.cohort in found.learns
        ]
        if cohort is not None:
            mine = [p for p in mine if p.cohort == cohort]
        if not mine:
            raise NotFound(f"{course_id[:64]!r} is not published to a cohort of {actor.name}")
        if len(mine) > 1:
            cohorts = ", ".join(p.cohort for p in mine)
            raise BadInput(
                f"{course_id} is published to several of your cohorts ({cohorts}): name one"
            )
        return mine[0], self._course(course_id)

    def open_course(
        self, actor: Actor, course_id: str, cohort: str | None = None, language: str | None = None
    ) -> Opened:
        """Put the course's lessons and the trainee's own variant of the exercise into the
        notebook they will open, ``<home>/courses/<course>/``, each in ``language`` (a BCP 47
        tag) where the course has a translation, else in English (the default).

        Files the trainee has not changed are brought up to date; files they changed are kept
        as they are, and no look-alike is written beside them (opening again adds no file).
        ``grader/`` never leaves the curriculum. The variant comes from the publication's
        cohort: the same one :meth:`start_grading` injects again.
        """
        publication, loaded = self._learner_publication(actor, course_id, cohort)
        files, variants = self._write_homes(loaded, publication.cohort, [actor.name], language)
        variant = variants[actor.name]
        record = self.layout.opened(publication.cohort, loaded.id, actor.name)
        if read_json(record) is None:
            write_json(record, {"opened_at": _iso(self.clock()), "variant": variant})
        exercise = loaded.course.exercise
        return Opened(
            publication.cohort,
            loaded.id,
            self.homes.where(actor.name, loaded.id),
            exercise.notebook if exercise else None,
            [lesson.notebook for lesson in loaded.course.lessons],
            variant,
            files,
        )

    def _write_homes(
        self, loaded: LoadedCourse, cohort: str, users: list[str], language: str | None = None
    ) -> tuple[list[Published], dict[str, dict[str, Any]]]:
        """The course into each of ``users``' homes with their variant of ``cohort``, every
        home checked before the first file is written (the publisher's rule)."""
        personalise = None
        variants: dict[str, dict[str, Any]] = {user: {} for user in users}
        exercise = loaded.course.exercise
        if exercise is not None and exercise.variant:
            from statbox.certify.variants import cohort_secret, make_personaliser, parameters_for

            secret = cohort_secret(self.state_dir, cohort)
            personalise = make_personaliser(loaded, secret)
            variants = {user: parameters_for(loaded, user, secret) for user in users}
        return self.homes.publish(loaded, users, personalise, language), variants

    def deliver(self, actor: Actor, course_id: str, cohort: str) -> list[Published]:
        """Write a published course into the homes of the cohort's members who have one and
        whose role the course is for, each with their variant, all checked before any is
        written (for the command line: in the browser each trainee opens it); instructors of
        the cohort and admins only. Nobody is marked as having opened it."""
        self._teacher(actor, cohort)
        loaded = self._course(course_id)
        if self.publication(cohort, loaded.id) is None:
            raise NotFound(f"{course_id} is not published to {cohort}: publish it first")
        users = []
        for user in self._members(cohort):
            groups = (read_json(self.layout.person(user)) or {}).get("groups", [])
            role = standing(self.settings, Actor.user(user, groups)).role
            if self._has_home(user) and role in loaded.course.audience:
                users.append(user)
        if not users:
            return []
        return self._write_homes(loaded, cohort, users)[0]

    def _has_home(self, user: str) -> bool:
        exists = getattr(self.homes, "exists", None)
        return bool(exists(user)) if exists is not None else True

    # ------------------------------------------------------------------ submissions

    def submit(self, actor: Actor, course_id: str, cohort: str | None = None) -> SubmissionRecord:
        """Record a snapshot of the trainee's exercise notebook, as it is now in their home,
        out of their reach (0600 under the state directory) with its SHA-256 and time.

        Resubmitting adds a snapshot; after the deadline the snapshot is still kept, marked
        late. Refused when the course has no exercise or the notebook is missing, a link,
        or larger than 16 MiB.
        """
        publication, loaded = self._learner_publication(actor, course_id, cohort)
        exercise = loaded.course.exercise
        if exercise is None:
            raise NotFound(f"{course_id} has no exercise to submit")
        content = self._read_exercise(actor.name, loaded.id, exercise.notebook)
        now = self.clock()
        late = publication.deadline is not None and now > publication.deadline
        directory = self.layout.submissions(publication.cohort, loaded.id, actor.name)
        number = self._claim_number(directory)
        record = SubmissionRecord(
            publication.cohort,
            loaded.id,
            actor.name,
            number,
            hashlib.sha256(content).hexdigest(),
            len(content),
            now,
            late,
        )
        write_private(directory / f"{number}.ipynb", content)
        write_json(directory / f"{number}.json", record.as_json())
        return record

    @staticmethod
    def _claim_number(directory: Path) -> int:
        """The next snapshot number, claimed by creating its record exclusively: two Submit
        clicks at once get two numbers, neither snapshot lost."""
        make_private_dirs(directory)
        number = len(list(directory.glob("*.json"))) + 1
        while True:
            try:
                os.close(os.open(directory / f"{number}.json", os.O_CREAT | os.O_EXCL, 0o600))
                return number
            except FileExistsError:
                number += 1

    def _read_exercise(self, user: str, course_id: str, notebook: str) -> bytes:
        reader = getattr(self.homes, "read", None)
        if reader is not None:
            try:
                return bytes(reader(user, course_id, notebook, MAX_SUBMISSION_BYTES))
            except FileNotFoundError:
                raise NotFound(
                    f"no {notebook} in your copy of {course_id}: open the course first"
                ) from None
            except OSError as exc:
                raise BadInput(f"{notebook}: cannot be submitted: {exc.strerror or exc}") from None
        # Homes that can only collect everyone's copy (docker volumes): collect, keep one.
        with tempfile.TemporaryDirectory(prefix="statbox-submit-") as folder:
            result = self.homes.collect(course_id, notebook, Path(folder))
            path = Path(folder) / f"{user}.ipynb"
            refused = [line for line in result.refused if line.startswith(f"{user}: ")]
            if refused:  # a link, too large: the same reasons as for local homes
                raise BadInput(f"cannot be submitted: {refused[0]}")
            if user not in result.copied or not path.is_file():
                raise NotFound(f"no {notebook} in your copy of {course_id}: open the course first")
            return path.read_bytes()

    @staticmethod
    def _records(directory: Path) -> list[SubmissionRecord]:
        if not directory.is_dir():
            return []
        records = []
        for path in directory.glob("*.json"):
            if path.stat().st_size == 0:
                continue  # claimed by a Submit still writing its snapshot
            data = read_json(path)
            if data:
                records.append(SubmissionRecord.from_json(data))
        return sorted(records, key=lambda r: r.number)

    def my_submissions(
        self, actor: Actor, course_id: str, cohort: str | None = None
    ) -> list[SubmissionRecord]:
        """The actor's own snapshots of ``course_id``, oldest first (nobody else's)."""
        publication, loaded = self._learner_publication(actor, course_id, cohort)
        return self._records(self.layout.submissions(publication.cohort, loaded.id, actor.name))

    @staticmethod
    def chosen(records: list[SubmissionRecord]) -> SubmissionRecord | None:
        """The snapshot that counts: the latest one made by the deadline, or, when all are
        late, the latest late one (kept marked late)."""
        on_time = [r for r in records if not r.late]
        counted = on_time or records
        return counted[-1] if counted else None

    def roster(self, actor: Actor, cohort: str, course_id: str) -> list[RosterRow]:
        """Per member of ``cohort``: when they opened the course, how many snapshots they
        submitted and the one that counts (instructors of the cohort and admins only)."""
        self._teacher(actor, cohort)
        loaded = self._course(course_id)
        rows = []
        for user in self._members(cohort):
            opened = read_json(self.layout.opened(cohort, loaded.id, user)) or {}
            records = self._records(self.layout.submissions(cohort, loaded.id, user))
            rows.append(
                RosterRow(
                    user, _parse_time(opened.get("opened_at")), len(records), self.chosen(records)
                )
            )
        same = self._copies(cohort, loaded, rows)
        return [replace(row, same_as=same.get(row.trainee, ())) for row in rows]

    def _copies(
        self, cohort: str, loaded: LoadedCourse, rows: list[RosterRow]
    ) -> dict[str, tuple[str, ...]]:
        """Per trainee, the others whose snapshot that counts has the same SHA-256 or the
        same answers (:func:`answers_digest`). The exercise as published (nothing answered)
        is no copy: everyone starts from it."""
        exercise = loaded.course.exercise
        blank: set[str] = set()
        if exercise is not None:
            with contextlib.suppress(OSError):
                template = loaded.path(exercise.notebook).read_bytes()
                blank = {hashlib.sha256(template).hexdigest(), answers_digest(template) or ""}
        by_key: dict[str, set[str]] = {}
        for row in rows:
            if row.latest is None:
                continue
            snapshot = self.layout.submissions(cohort, loaded.id, row.trainee)
            answers = _snapshot_answers(snapshot / f"{row.latest.number}.ipynb", row.latest.sha256)
            if row.latest.sha256 in blank or answers in blank:
                continue
            keys = [f"sha256:{row.latest.sha256}"] + ([f"answers:{answers}"] if answers else [])
            for key in keys:
                by_key.setdefault(key, set()).add(row.trainee)
        same: dict[str, set[str]] = {}
        for trainees in by_key.values():
            for trainee in trainees:
                same.setdefault(trainee, set()).update(trainees - {trainee})
        return {trainee: tuple(sorted(others)) for trainee, others in same.items() if others}

    def collect(self, actor: Actor, cohort: str, course_id: str, out: Path) -> CollectedSubmissions:
        """Copy the snapshot that counts of each member of ``cohort`` into
        ``out/<trainee>.ipynb`` (0600), checking each against its recorded SHA-256.

        Only submitted snapshots are taken, never what is in homes at that moment; only
        members of the cohort, never its instructors or users outside it. A snapshot changed
        after it was submitted is not copied and is listed in ``tampered``.
        """
        self._teacher(actor, cohort)
        loaded = self._course(course_id)
        result = CollectedSubmissions()
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        # whose variants these are: `certify run` on this folder grades with this cohort
        write_json(out / COLLECTED_MARK, {"cohort": cohort, "course": loaded.id})
        for user in self._members(cohort):
            directory = self.layout.submissions(cohort, loaded.id, user)
            record = self.chosen(self._records(directory))
            if record is None:
                result.missing.append(user)
                continue
            try:
                content = (directory / f"{record.number}.ipynb").read_bytes()
            except OSError as exc:
                result.tampered.append(f"{user}: snapshot {record.number} unreadable ({exc})")
                continue
            if hashlib.sha256(content).hexdigest() != record.sha256:
                result.tampered.append(
                    f"{user}: snapshot {record.number} no longer matches the SHA-256 recorded "
                    f"at submission ({record.sha256[:12]}...)"
                )
                continue
            write_private(out / f"{user}.ipynb", content)
            result.taken[user] = record
        return result

    # ------------------------------------------------------------------ grading

    def start_grading(
        self,
        actor: Actor,
        cohort: str,
        course_id: str,
        trainee: str | None = None,
        background: bool = True,
        workers: int = 1,
    ) -> JobStatus:
        """Grade the cohort's submitted snapshots (or one trainee's: a re-grade) with the
        isolated grading pipeline, in a job whose progress :meth:`job` reads while it runs.

        The variant injected is the publication's cohort's, the one the trainee opened.
        ``background``: run in a thread of this process and return at once (the web
        service); otherwise return when the job has ended (the command line).
        """
        self._teacher(actor, cohort)
        if self.grading is None:
            raise BadInput("this classroom has no grading setup")
        loaded = self._course(course_id)
        if loaded.course.exercise is None:
            raise NotFound(f"{course_id} has no exercise to grade")
        if self.publication(cohort, loaded.id) is None:
            raise NotFound(f"{course_id} is not published to {cohort}")
        if trainee is not None and trainee not in self._members(cohort):
            raise NotFound(f"{trainee[:64]!r} is not a trainee of {cohort}")
        job = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)
        folder = self.layout.gradings(cohort, loaded.id) / job
        collected = self.collect(actor, cohort, loaded.id, folder / "submissions")
        if trainee is not None:
            for other in list(collected.taken):
                if other != trainee:
                    (folder / "submissions" / f"{other}.ipynb").unlink()
                    del collected.taken[other]
        trainees = sorted(collected.taken)
        status = JobStatus(
            job,
            cohort,
            loaded.id,
            "queued",
            0,
            len(trainees),
            "; ".join(collected.tampered) or "waiting to start",
            None,
            None,
            trainees,
            trainee,
        )
        write_json(folder / "progress.json", status.as_json())
        write_json(
            folder / "submissions.json", {u: r.as_json() for u, r in collected.taken.items()}
        )
        if not trainees:
            return self._finish(folder, status, "failed", "no submitted snapshots to grade")
        if background:
            thread = threading.Thread(
                target=self._grade, args=(folder, status, workers), name=f"grading-{job}"
            )
            self._jobs[job] = thread
            thread.start()
            return status
        return self._grade(folder, status, workers)

    def _finish(self, folder: Path, status: JobStatus, state: str, current: str) -> JobStatus:
        ended = replace(status, state=state, current=current, finished_at=self.clock())
        write_json(folder / "progress.json", ended.as_json())
        return ended

    def _grade(self, folder: Path, status: JobStatus, workers: int) -> JobStatus:
        from statbox.certify.runner import RunOptions, run

        assert self.grading is not None
        lock = threading.Lock()
        running = replace(status, state="running", current="grading", started_at=self.clock())
        write_json(folder / "progress.json", running.as_json())

        def graded(attempt: Any) -> None:
            nonlocal running
            with lock:
                done = running.done + 1
                line = f"graded {attempt.trainee} ({done}/{status.total})"
                running = replace(running, done=done, current=line)
                write_json(folder / "progress.json", running.as_json())

        options = RunOptions(
            course=status.course,
            exercise=None,
            submissions=folder / "submissions",
            out=folder / "run",
            workers=max(1, min(workers, status.total)),
            cohort=status.cohort,
        )
        try:
            run(self.grading, options, progress=False, on_attempt=graded)
        except Exception as exc:  # the page must show why, not a job stuck in "running"
            message = "; ".join(getattr(exc, "messages", []) or [f"{type(exc).__name__}: {exc}"])
            return self._finish(folder, running, "failed", message[:500])
        summary = f"graded {running.done} of {status.total}"
        return self._finish(folder, running, "done", summary)

    def latest_job(self, actor: Actor, cohort: str, course_id: str) -> JobStatus:
        """The latest finished grading of the whole cohort (not a one-trainee re-grade)."""
        whole = [j for j in self.jobs(actor, cohort, course_id) if j.state == "done" and not j.only]
        if not whole:
            raise NotFound(f"{course_id} has not been graded in {cohort} yet")
        return whole[-1]

    def _job_folder(self, cohort: str, course_id: str, job: str) -> Path:
        folder = self.layout.gradings(cohort, course_id) / job
        if not JOB_PATTERN.fullmatch(job) or not (folder / "progress.json").is_file():
            raise NotFound(f"no grading job {job[:40]!r} of {course_id} in {cohort}")
        return folder

    def job(self, actor: Actor, cohort: str, course_id: str, job: str) -> JobStatus:
        """A grading job's progress (done/total, state, current step), readable while it runs
        (instructors of the cohort and admins only)."""
        self._teacher(actor, cohort)
        folder = self._job_folder(cohort, course_id, job)
        return JobStatus.from_json(read_json(folder / "progress.json"))

    def jobs(self, actor: Actor, cohort: str, course_id: str) -> list[JobStatus]:
        """Every grading job of the course in the cohort, oldest first."""
        self._teacher(actor, cohort)
        directory = self.layout.gradings(cohort, course_id)
        if not directory.is_dir():
            return []
        return [
            JobStatus.from_json(read_json(p / "progress.json"))
            for p in sorted(directory.iterdir())
            if (p / "progress.json").is_file()
        ]

    def wait(self, job: str, timeout: float | None = None) -> None:
        """Wait for a background job of this process to end (tests, shutdown)."""
        thread = self._jobs.get(job)
        if thread is not None:
            thread.join(timeout)

    def _graded_by_job(self, cohort: str, course_id: str) -> dict[str, Path]:
        """Per trainee, the run folder of the latest finished job that graded them."""
        latest: dict[str, Path] = {}
        directory = self.layout.gradings(cohort, course_id)
        if directory.is_dir():
            for folder in sorted(directory.iterdir()):
                data = read_json(folder / "progress.json") or {}
                if data.get("state") == "done":
                    for trainee in data.get("trainees", []):
                        latest[trainee] = folder / "run"
        return latest

    def report(self, actor: Actor, cohort: str, course_id: str, job: str) -> Path:
        """Write the cohort report of grading job ``job`` (HTML, CSV, certificates of those
        who passed) into its run folder and return that folder; built from that run only."""
        self._teacher(actor, cohort)
        folder = self._job_folder(cohort, course_id, job)
        if (read_json(folder / "progress.json") or {}).get("state") != "done":
            raise BadInput(f"grading job {job} has not finished: wait for it")
        from statbox.certify.certificates import Keys
        from statbox.certify.exercise import find_course, load_exercise
        from statbox.certify.report import Issuing, write_report

        assert self.grading is not None
        exercise = load_exercise(find_course(self.curriculum, course_id))
        write_report(
            folder / "run",
            exercise,
            Keys(self.state_dir),
            Issuing(self.issuer, self.base_url, self.settings.certify.people, self.claimed_names()),
            self.grading.database,
        )
        return folder / "run"

    def release(self, actor: Actor, cohort: str, course_id: str) -> list[str]:
        """Let each graded trainee of ``cohort`` read their own latest graded result (score and
        per-task feedback) through :meth:`my_result`; returns who can now read one."""
        self._teacher(actor, cohort)
        loaded = self._course(course_id)
        graded = self._graded_by_job(cohort, loaded.id)
        write_json(
            self.layout.release(cohort, loaded.id),
            {
                "released_by": actor.name,
                "released_at": _iso(self.clock()),
                "runs": {t: str(p.parent.name) for t, p in sorted(graded.items())},
            },
        )
        return sorted(graded)

    def my_result(self, actor: Actor, course_id: str, cohort: str | None = None) -> Result | None:
        """The actor's own released result for ``course_id``, or None before the release.
        Nobody can ask for another trainee's: the trainee is the actor."""
        publication, loaded = self._learner_publication(actor, course_id, cohort)
        release = read_json(self.layout.release(publication.cohort, loaded.id)) or {}
        job = release.get("runs", {}).get(actor.name)
        if not job:
            return None
        folder = self._job_folder(publication.cohort, loaded.id, job)
        return self._result_of(folder, publication.cohort, loaded, actor.name)

    def my_graded_notebook(
        self, actor: Actor, course_id: str, cohort: str | None = None
    ) -> bytes | None:
        """The actor's own graded notebook (the feedback cell first) once released, else
        None; never anyone else's."""
        publication, loaded = self._learner_publication(actor, course_id, cohort)
        release = read_json(self.layout.release(publication.cohort, loaded.id)) or {}
        job = release.get("runs", {}).get(actor.name)
        if not job:
            return None
        folder = self._job_folder(publication.cohort, loaded.id, job)
        try:
            return (folder / "run" / "graded" / f"{actor.name}.ipynb").read_bytes()
        except FileNotFoundError:
            return None

    def _result_of(
        self, folder: Path, cohort: str, loaded: LoadedCourse, trainee: str
    ) -> Result | None:
        from statbox.certify.report import run_attempts

        assert self.grading is not None
        attempts = {a.trainee: a for a in run_attempts(folder / "run", self.grading.database)}
        attempt = attempts.get(trainee)
        if attempt is None:
            return None
        submitted = (read_json(folder / "submissions.json") or {}).get(trainee, {})
        exercise = loaded.course.exercise
        assert exercise is not None
        return Result(
            cohort,
            loaded.id,
            trainee,
            attempt.total,
            attempt.max_score,
            attempt.passed,
            [
                TaskFeedback(
                    t.id,
                    t.title,
                    attempt.scores.get(t.id, 0.0),
                    t.points,
                    attempt.feedback.get(t.id, ""),
                )
                for t in exercise.tasks
            ],
            attempt.reason,
            attempt.submission_hash,
            bool(submitted.get("late", False)),
        )


__all__ = [
    "Classroom",
    "CollectedSubmissions",
    "JobStatus",
    "Opened",
    "Outcome",
    "Publication",
    "Result",
    "RosterRow",
    "SubmissionRecord",
    "parse_deadline",
]
