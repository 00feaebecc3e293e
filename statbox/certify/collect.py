"""Gathering submissions: each trainee's copy of the exercise, into ``OUT/<trainee>.ipynb``.

Local mode (:class:`LocalHomes`): the copy lives at
``<state>/homes/<trainee>/courses/<course>/<exercise notebook>``. Homes belong to trainees,
and collecting runs as the operator (often root), so nothing there is trusted: no symbolic
link is followed anywhere on the way (a link to another trainee's notebook or to a system
file is skipped and reported), only regular files of a sane size are copied, and only homes
named like a username count.

Docker mode: :mod:`statbox.modes.docker.collect`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from statbox.certify.notebook import MAX_SUBMISSION_BYTES
from statbox.errors import BadInput
from statbox.settings.names import is_valid_username


def default_limit() -> int:
    """The largest submission collected, in bytes."""
    return MAX_SUBMISSION_BYTES


@dataclass
class Collected:
    copied: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """One line per home whose file could not be taken, with the reason."""


def _read_no_symlinks(base: Path, parts: tuple[str, ...], limit: int) -> bytes:
    """The file at ``base/parts...``, refusing a symbolic link at every step, and anything
    but a regular file of at most ``limit`` bytes."""
    fd = os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)
    with os.fdopen(file_fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError("not a regular file")
        if info.st_size > limit:
            raise OSError(f"larger than {limit // 1024**2} MiB")
        content = handle.read(limit + 1)
        if len(content) > limit:  # grew since fstat
            raise OSError(f"larger than {limit // 1024**2} MiB")
        return content


def write_private(target: Path, content: bytes) -> None:
    """``content`` into ``target`` (replaced whole), readable by the operator only: a
    trainee's working code must not reach other accounts through the collected folder
    (its code solves every variant)."""
    temporary = target.with_suffix(".ipynb.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    with os.fdopen(os.open(temporary, flags, 0o600), "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an older file of the same name kept its mode
        handle.write(content)
    os.replace(temporary, target)


class LocalHomes:
    """Submissions in local mode's home directories."""

    def __init__(self, homes: Path, limit: int | None = None):
        self.homes = homes
        self.limit = limit if limit is not None else default_limit()

    def read(self, user: str, course_id: str, notebook: str, limit: int | None = None) -> bytes:
        """One user's copy of ``notebook`` (a trainee submitting it), by the same rules as
        :meth:`collect`: no link followed, a regular file of at most ``limit`` bytes.
        FileNotFoundError when there is none; OSError naming the reason otherwise."""
        if not is_valid_username(user):
            raise FileNotFoundError(user)
        parts = ("courses", course_id, *PurePosixPath(notebook).parts)
        try:
            return _read_no_symlinks(self.homes / user, parts, limit or self.limit)
        except OSError as exc:
            if exc.errno == 40:  # ELOOP: O_NOFOLLOW met a symbolic link
                raise OSError("a symbolic link (not followed)") from None
            raise

    def collect(self, course_id: str, notebook: str, out: Path) -> Collected:
        if not self.homes.is_dir():
            raise BadInput(f"{self.homes}: no home directories (has anyone logged in yet?)")
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        parts = ("courses", course_id, *PurePosixPath(notebook).parts)
        result = Collected()
        for home in sorted(self.homes.iterdir()):
            trainee = home.name
            if not is_valid_username(trainee) or home.is_symlink() or not home.is_dir():
                continue
            try:
                content = _read_no_symlinks(home, parts, self.limit)
            except FileNotFoundError:
                result.missing.append(trainee)
                continue
            except OSError as exc:
                reason = exc.strerror or str(exc)
                if exc.errno == 40:  # ELOOP: O_NOFOLLOW met a symbolic link
                    reason = "a symbolic link (not followed)"
                result.refused.append(f"{trainee}: {'/'.join(parts)}: {reason}")
                continue
            write_private(out / f"{trainee}.ipynb", content)
            result.copied.append(trainee)
        return result
