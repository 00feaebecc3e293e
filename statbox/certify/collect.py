"""Gathering submissions: each trainee's copy of the exercise, into ``OUT/<trainee>.ipynb``.

Local mode (:class:`LocalHomes`): the copy lives at
``<state>/homes/<trainee>/courses/<course>/<exercise notebook>``. Homes belong to trainees,
and collecting runs as the operator (often root), so nothing there is trusted: no symbolic
link is followed anywhere on the way (a link to another trainee's notebook or to a system
file is skipped and reported), only regular files of a sane size are copied, and only homes
named like a username count. The docker mode adds a source reading volumes.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import BadInput
from ..names import is_valid_username
from .notebook import MAX_SUBMISSION_BYTES


@dataclass
class Collected:
    copied: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """One line per home whose file could not be taken, with the reason."""


def _read_no_symlinks(base: Path, parts: tuple[str, ...]) -> bytes:
    """The file at ``base/parts...``, refusing a symbolic link at every step."""
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
        if info.st_size > MAX_SUBMISSION_BYTES:
            raise OSError(f"larger than {MAX_SUBMISSION_BYTES // 1024**2} MiB")
        return handle.read(MAX_SUBMISSION_BYTES + 1)


class LocalHomes:
    """Submissions in local mode's home directories."""

    def __init__(self, homes: Path):
        self.homes = homes

    def collect(self, course_id: str, notebook: str, out: Path) -> Collected:
        if not self.homes.is_dir():
            raise BadInput(f"{self.homes}: no home directories (has anyone logged in yet?)")
        out.mkdir(parents=True, exist_ok=True)
        parts = ("courses", course_id, *PurePosixPath(notebook).parts)
        result = Collected()
        for home in sorted(self.homes.iterdir()):
            trainee = home.name
            if not is_valid_username(trainee) or home.is_symlink() or not home.is_dir():
                continue
            try:
                content = _read_no_symlinks(home, parts)
            except FileNotFoundError:
                result.missing.append(trainee)
                continue
            except OSError as exc:
                reason = exc.strerror or str(exc)
                if exc.errno == 40:  # ELOOP: O_NOFOLLOW met a symbolic link
                    reason = "a symbolic link (not followed)"
                result.refused.append(f"{trainee}: {'/'.join(parts)}: {reason}")
                continue
            target = out / f"{trainee}.ipynb"
            temporary = target.with_suffix(".ipynb.tmp")
            temporary.write_bytes(content)
            os.replace(temporary, target)
            result.copied.append(trainee)
        return result
