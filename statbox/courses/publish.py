"""Publishing a course to trainees: a fresh copy of its material into each one's home.

Local mode keeps homes under the state directory, ``<state>/homes/<user>``; a course lands
in ``<home>/courses/<course-id>/``, where the trainee's server shows it.

Invariants:

* ``grader/`` (solutions, hidden checks, verifiers), hidden files and caches are never
  copied: nothing that gives the answers away reaches a trainee.
* A trainee's edits are never overwritten. Statbox remembers what it last wrote into each
  home (a ledger per user and course under ``<state>/courses/published/``, out of the
  trainee's reach). A file still as Statbox wrote it, or still exactly as the curriculum has
  it, is replaced by the new version; a file the trainee changed is left alone, and nothing
  is written beside it: a look-alike ``*.update-<hash>.ipynb`` would leave the trainee
  unsure which notebook is theirs, and each publication would add another.
* Publishing the same material twice changes nothing. Each file is written to a temporary
  name and renamed, so a trainee never sees half a notebook; every target is checked before
  the first file is written.
* A trainee's links are never followed, even one swapped in while publishing runs: every
  folder inside a home is opened by descriptor, one name at a time, without following a
  link, and files are created and renamed relative to it (the publisher may run as root).
* The exercise template can be personalised per trainee (``personalise(user, notebook)``,
  e.g. the certification work's per-trainee parameters); the ledger records what was
  written, so a personalised template counts as untouched until the trainee edits it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pwd
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from statbox.courses.model import GRADER_DIR, LoadedCourse
from statbox.courses.notebooks import NotebookProblem, read_notebook
from statbox.courses.translations import language_of, pick
from statbox.errors import BadInput
from statbox.identity.roles import groups_for, resolve_role
from statbox.settings.model import Settings
from statbox.settings.names import is_valid_username

Personalise = Callable[[str, dict[str, Any]], dict[str, Any]]
"""(trainee name, exercise template as notebook JSON) -> the notebook that trainee gets."""

SKIPPED_NAMES = {"__pycache__", ".ipynb_checkpoints"}


class Outcome(StrEnum):
    new = "new"
    """The file was not there: written."""
    updated = "updated"
    """The trainee had not changed it: replaced by the new version."""
    unchanged = "unchanged"
    """The trainee already has exactly this version."""
    kept = "kept"
    """The trainee changed it: left as they have it (nothing written beside it)."""


@dataclass(frozen=True)
class Published:
    """What publishing did with one file for one trainee."""

    user: str
    path: str
    """Relative to the course folder, with forward slashes."""
    outcome: Outcome
    beside: str | None = None
    """Unused since nothing is written beside a trainee's file (kept for the docker helper's
    wire format)."""


def material(loaded: LoadedCourse) -> list[str]:
    """Files of the course trainees get, relative to its folder, sorted. Translations
    (``<stem>.<language>.ipynb``) are not among them: a trainee gets each notebook once, under
    its own name, in their language (:meth:`Publisher.plan`)."""
    found = []
    for directory, dirnames, filenames in os.walk(loaded.directory):
        relative = Path(directory).relative_to(loaded.directory)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".")
            and d not in SKIPPED_NAMES
            and not (relative == Path(".") and d == GRADER_DIR)
        )
        for name in filenames:
            if name.startswith(".") or name.endswith(".pyc"):
                continue
            path = Path(directory) / name
            if path.is_symlink() or not path.is_file():
                continue  # a link could point anywhere (grader/ included): never follow it
            if language_of(path) is not None:
                continue
            found.append((relative / name).as_posix())
    return sorted(found)


def resolve_trainees(settings: Settings, targets: Iterable[str]) -> list[str]:
    """The users ``targets`` name: a group of ``settings.groups`` stands for its members,
    anything else must be a valid username. Raise BadInput naming every bad target."""
    users: list[str] = []
    problems: list[str] = []
    for target in targets:
        if target in settings.groups:
            members = settings.groups[target]
            if not members:
                problems.append(f"--to {target}: the group has no members (settings: groups)")
            users.extend(members)
        elif is_valid_username(target):
            users.append(target)
        else:
            known = ", ".join(sorted(settings.groups)) or "none"
            problems.append(
                f"--to {target[:64]!r}: neither a group of the settings (groups: {known}) nor "
                "a valid username (lower-case letters, digits, . _ -)"
            )
    if problems:
        raise BadInput(*problems)
    if not users:
        raise BadInput("--to: name at least one user or group")
    return list(dict.fromkeys(users))


def outside_audience(settings: Settings, loaded: LoadedCourse, users: Iterable[str]) -> list[str]:
    """``user (role)`` for each of ``users`` whose role is not in the course's audience."""

    outside = []
    for user in users:
        role = resolve_role(settings, user, groups_for(settings, user)).role
        if role not in loaded.course.audience:
            outside.append(f"{user} ({role})")
    return outside


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_digest(path: Path) -> str | None:
    try:
        return _digest(path.read_bytes())
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _notebook_bytes(notebook: dict[str, Any]) -> bytes:
    return (json.dumps(notebook, indent=1, ensure_ascii=False) + "\n").encode()


# Every file operation inside a home goes through descriptors of folders opened one name at a
# time from the home, never following a link: a check by path followed by a write by path
# lets a trainee swap a checked folder for a link in between (renameat2 RENAME_EXCHANGE) and
# have the publisher, run as root, write wherever the link points. A descriptor stays on the
# folder it opened whatever is renamed afterwards.
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_IN_THE_WAY = (errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST)
"""What opening or replacing a name meets when a link, a file or a folder is in the way."""


TRAINEE_FILE_READ = 256 * 1024**2
"""Files of a trainee larger than this are not read (a sparse file of a terabyte would keep
the publisher hashing): no course file is that large, so such a file is the trainee's."""


class InTheWay(Exception):
    """A link, or a file or folder of the wrong kind, where publishing must write (the
    message names it)."""


def _parts(relative: str) -> tuple[str, ...]:
    return PurePosixPath(relative).parts


def _in_the_way(parent_fd: int, name: str, shown: Path, needed: str) -> InTheWay:
    """Why ``name`` (``shown``) could not be opened as a ``needed`` ("folder" or "file");
    for the message only: what is there may have changed since."""
    try:
        mode = os.lstat(name, dir_fd=parent_fd).st_mode
    except FileNotFoundError:
        mode = 0
    if stat.S_ISLNK(mode):
        kind = "a symbolic link"
    elif stat.S_ISDIR(mode) and needed == "file":
        kind = "a folder"
    elif stat.S_ISREG(mode) and needed == "folder":
        kind = "a file"
    elif mode and needed == "file":
        kind = "a special file"
    else:  # what is there now would do: it was swapped back since
        kind = "swapped while being opened (for a symbolic link?)"
    if needed == "file":
        return InTheWay(f"{shown} is not a regular file ({kind})")
    return InTheWay(f"{shown} is {kind} where a folder is needed")


def _open_folder(
    parent_fd: int, name: str, shown: Path, create: bool, owner: tuple[int, int] | None
) -> int | None:
    """The folder ``name`` of the folder open at ``parent_fd`` (made, owned by ``owner``,
    when missing and ``create``), opened without following a link; None when missing.
    InTheWay when a link or a file has that name."""
    made = False
    try:
        try:
            return os.open(name, _FOLDER, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                return None
        try:
            os.mkdir(name, 0o755, dir_fd=parent_fd)
            made = True
        except FileExistsError:
            pass  # made meanwhile: open what is there now, by the same rule
        fd = os.open(name, _FOLDER, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in _IN_THE_WAY:
            raise _in_the_way(parent_fd, name, shown, "folder") from None
        raise
    if made and owner is not None:
        os.fchown(fd, *owner)
    return fd


@dataclass(frozen=True)
class _Folder:
    """A folder inside a home, open at ``fd``; ``shown`` is its path, for messages only."""

    fd: int
    shown: Path
    owner: tuple[int, int] | None

    def digest(self, name: str) -> str | None:
        """SHA-256 of the regular file ``name`` here, None when there is none; InTheWay
        for a link or anything but a regular file."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in _IN_THE_WAY:
                raise _in_the_way(self.fd, name, self.shown / name, "file") from None
            raise
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _in_the_way(self.fd, name, self.shown / name, "file")
            if info.st_size > TRAINEE_FILE_READ:
                return "larger than any course file"  # the trainee's own: kept, not hashed
            return hashlib.file_digest(handle, "sha256").hexdigest()

    def write(self, name: str, data: bytes) -> None:
        """``data`` as the file ``name`` here: written to a new temporary name, then renamed
        over it (a link in its place is replaced, never followed)."""
        temporary = f".statbox-{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o644, dir_fd=self.fd)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                os.fchmod(out.fileno(), 0o644)
                if self.owner is not None:
                    os.fchown(out.fileno(), *self.owner)
            try:
                os.replace(temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            except OSError as exc:
                if exc.errno in _IN_THE_WAY:
                    raise _in_the_way(self.fd, name, self.shown / name, "file") from None
                raise
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=self.fd)
            raise


@dataclass(frozen=True)
class Publisher:
    """Where homes and ledgers are, and who should own what is written (local mode)."""

    homes: Path
    """One folder per user: ``<state>/homes``."""
    ledgers: Path
    """What Statbox last wrote, per user and course: ``<state>/courses/published``."""
    owner: pwd.struct_passwd | None = None
    """When Statbox runs as root: the account servers run as, which must own the files."""

    def home(self, user: str) -> Path:
        return self.homes / user

    def home_names(self, user: str) -> tuple[str, ...]:
        """The names walked from ``homes`` (opened as it is: the operator's) to ``user``'s
        home, each opened without following a link."""
        return (user,)

    def ledger_file(self, user: str, course_id: str) -> Path:
        return self.ledgers / user / f"{course_id}.json"

    def read_ledger(self, user: str, course_id: str) -> dict[str, str]:
        try:
            data = json.loads(self.ledger_file(user, course_id).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _owner_ids(self, home_fd: int) -> tuple[int, int] | None:
        """Who must own what is written into the home open at ``home_fd`` (None: whoever
        writes)."""
        if self.owner is not None:
            return self.owner.pw_uid, self.owner.pw_gid
        # Local mode as root: each user's home is owned by their own uid (given at their
        # first server start, statbox.spawners.local); what lands in it becomes theirs too.
        if os.geteuid() == 0:
            uid = os.fstat(home_fd).st_uid
            if uid != 0:
                return uid, uid
        return None

    @contextlib.contextmanager
    def _folder(self, user: str, parts: tuple[str, ...], create: bool) -> Iterator[_Folder | None]:
        """The folder ``<home>/<parts...>`` of ``user``, opened one name at a time from
        ``homes`` (the operator's) without following a link; None when a part is missing and
        not ``create``. InTheWay when a link or a file is in the way."""
        if not create and not self.homes.is_dir():
            yield None
            return
        if create:
            self.homes.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.homes, _FOLDER)
        shown = self.homes
        # A home made here is the owner's when one is given; what is made in a home is the
        # owner's of that home (_owner_ids).
        owner = (self.owner.pw_uid, self.owner.pw_gid) if self.owner is not None else None
        home_names = self.home_names(user)
        try:
            if not home_names:  # homes is the home itself
                owner = self._owner_ids(fd)
            for depth, part in enumerate((*home_names, *parts), start=1):
                shown = shown / part
                opened = _open_folder(fd, part, shown, create, owner)
                os.close(fd)
                fd = -1
                if opened is None:
                    yield None
                    return
                fd = opened
                if depth == len(home_names):
                    owner = self._owner_ids(fd)
            yield _Folder(fd, shown, owner)
        finally:
            if fd >= 0:
                os.close(fd)

    def _blocked(self, user: str, course_id: str, relative: str) -> str | None:
        """Why ``relative`` cannot be written into ``user``'s copy of the course (a link or
        a file in the way), or None. A trainee's links are never followed: they could point
        anywhere the publisher may write."""
        *folders, name = _parts(relative)
        try:
            with self._folder(user, ("courses", course_id, *folders), create=False) as folder:
                if folder is not None:
                    folder.digest(name)
        except InTheWay as exc:
            return str(exc)
        return None

    def pristine(self, loaded: LoadedCourse) -> dict[str, str]:
        """SHA-256 of each course file as the curriculum has it: a copy still like that was
        not edited by the trainee (whoever put it there), so it may be replaced."""
        return {
            relative: _file_digest(loaded.path(relative)) or "" for relative in material(loaded)
        }

    def plan(
        self,
        loaded: LoadedCourse,
        users: Iterable[str],
        personalise: Personalise | None = None,
        language: str | None = None,
    ) -> dict[str, dict[str, bytes]]:
        """What each of ``users`` gets: relative path -> content (personalised where asked).
        ``language``: each lesson and the exercise template in that language where the course
        has a translation (under the original's name), else in English."""
        files = material(loaded)
        template = loaded.course.exercise.notebook if loaded.course.exercise else None
        translated = set(loaded.course.published_notebooks())

        def chosen(relative: str) -> Path:
            path = loaded.path(relative)
            return pick(path, language) if relative in translated else path

        originals = {relative: chosen(relative).read_bytes() for relative in files}
        template_json: dict[str, Any] | None = None
        if template is not None and personalise is not None:
            try:
                template_json = read_notebook(chosen(template))
            except NotebookProblem as exc:
                raise BadInput(f"{chosen(template)}: {exc}") from None

        def content(user: str, relative: str) -> bytes:
            if relative == template and template_json is not None and personalise is not None:
                return _notebook_bytes(personalise(user, json.loads(json.dumps(template_json))))
            return originals[relative]

        return {user: {relative: content(user, relative) for relative in files} for user in users}

    def problems(self, course_id: str, planned: dict[str, dict[str, bytes]]) -> list[str]:
        """Why some of ``planned`` cannot be written (a link or a file in the way), one line
        per problem; empty when every target is free."""
        problems: list[str] = []
        for user, files in planned.items():
            for relative in files:
                reason = self._blocked(user, course_id, relative)
                if reason:
                    problems.append(f"{user}: {reason}; move it away and publish again")
        return list(dict.fromkeys(problems))

    def apply(
        self,
        course_id: str,
        planned: dict[str, dict[str, bytes]],
        pristine: dict[str, str] | None = None,
    ) -> list[Published]:
        """Write ``planned`` (from :meth:`plan`); raise BadInput, having written nothing,
        when a target is in the way. ``pristine``: see :meth:`pristine`."""
        problems = self.problems(course_id, planned)
        if problems:
            raise BadInput(*problems)
        done: list[Published] = []
        for user, files in planned.items():
            try:
                done.extend(self._publish_to(course_id, user, files, pristine or {}))
            except InTheWay as exc:  # put there since the check: stop, writing nothing more
                raise BadInput(f"{user}: {exc}; move it away and publish again") from None
        return done

    def publish(
        self,
        loaded: LoadedCourse,
        users: Iterable[str],
        personalise: Personalise | None = None,
        language: str | None = None,
    ) -> list[Published]:
        """Publish ``loaded`` to each of ``users``, in ``language`` where translated; see the
        module docstring."""
        # Every target is checked, and every personalised version made, before any write.
        planned = self.plan(loaded, users, personalise, language)
        return self.apply(loaded.id, planned, self.pristine(loaded))

    def _publish_to(
        self, course_id: str, user: str, files: dict[str, bytes], pristine: dict[str, str]
    ) -> Iterator[Published]:
        ledger = self.read_ledger(user, course_id)
        try:
            for relative, data in files.items():
                *folders, name = _parts(relative)
                with self._folder(user, ("courses", course_id, *folders), create=True) as folder:
                    assert folder is not None  # made when missing
                    new = _digest(data)
                    current = folder.digest(name)
                    if current is None:
                        folder.write(name, data)
                        outcome = Outcome.new
                    elif current == new:
                        outcome = Outcome.unchanged
                    elif current in (ledger.get(relative), pristine.get(relative)):
                        folder.write(name, data)
                        outcome = Outcome.updated
                    else:
                        yield Published(user, relative, Outcome.kept)
                        continue
                ledger[relative] = new
                yield Published(user, relative, outcome)
        finally:  # what was written is remembered even when a later file is in the way
            self.write_ledger(user, course_id, ledger)

    def write_ledger(self, user: str, course_id: str, ledger: dict[str, str]) -> None:
        ledger_file = self.ledger_file(user, course_id)
        ledger_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        ledger_file.write_text(json.dumps(dict(sorted(ledger.items())), indent=1))


def publish_course(
    loaded: LoadedCourse,
    users: Iterable[str],
    state_dir: Path,
    personalise: Personalise | None = None,
    owner: pwd.struct_passwd | None = None,
) -> list[Published]:
    """Publish ``loaded`` into ``<state_dir>/homes/<user>/courses/<course>/`` for each user.

    ``personalise(user, notebook)`` returns the exercise template that user gets (default:
    the template as it is). ``owner``: the account that must own what is written (local mode
    run as root). Returns one :class:`Published` per user and file; raises BadInput, having
    written nothing, when a target is in the way.
    """
    publisher = Publisher(state_dir / "homes", state_dir / "courses" / "published", owner)
    return publisher.publish(loaded, users, personalise)
