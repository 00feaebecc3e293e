"""Where the classroom keeps its records, under ``<state>/classroom/`` (0700, files 0600).

::

    publications/<cohort>/<course>.json          who published, when, the deadline
    opened/<cohort>/<course>/<user>.json          when a trainee opened it, their variant
    submissions/<cohort>/<course>/<user>/<n>.ipynb   each snapshot as submitted
    submissions/<cohort>/<course>/<user>/<n>.json    its SHA-256, time, late mark
    gradings/<cohort>/<course>/<job>/             a grading job: progress.json, run/
    releases/<cohort>/<course>.json               which results trainees may read
    people/<user>.json                            the groups a user last acted with

Nothing here is in a user's home or mounted into a server, so a trainee can neither read
nor change it; names in paths are checked (cohort, course id, username patterns) before use.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from statbox.errors import DamagedState


def write_private(path: Path, data: bytes) -> None:
    """``data`` into ``path`` whole (a reader never sees half), mode 0600, folders 0700."""
    make_private_dirs(path.parent)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:  # mkstemp makes it 0600
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_private(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    """The record at ``path``, or None when there is none; DamagedState if unreadable."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DamagedState(f"{path}: not a classroom record ({exc}); restore a backup") from None


def make_private_dirs(directory: Path) -> None:
    missing = [p for p in (directory, *directory.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


class Layout:
    """The paths of the classroom's records (see the module docstring)."""

    def __init__(self, state_dir: Path):
        self.root = state_dir / "classroom"

    def publication(self, cohort: str, course: str) -> Path:
        return self.root / "publications" / cohort / f"{course}.json"

    def publications(self) -> Path:
        return self.root / "publications"

    def opened(self, cohort: str, course: str, user: str) -> Path:
        return self.root / "opened" / cohort / course / f"{user}.json"

    def submissions(self, cohort: str, course: str, user: str) -> Path:
        return self.root / "submissions" / cohort / course / user

    def gradings(self, cohort: str, course: str) -> Path:
        return self.root / "gradings" / cohort / course

    def release(self, cohort: str, course: str) -> Path:
        return self.root / "releases" / cohort / f"{course}.json"

    def person(self, user: str) -> Path:
        return self.root / "people" / f"{user}.json"

    def people(self) -> Path:
        return self.root / "people"

    def claimed_names(self) -> dict[str, str]:
        """Full names the identity provider gave people when they last used the classroom,
        by username: their certificates print these before ``certify.people``."""
        names: dict[str, str] = {}
        try:
            records = sorted(self.people().glob("*.json"))
        except OSError:
            return names
        for path in records:
            name = (read_json(path) or {}).get("name")
            if isinstance(name, str):
                names[path.stem] = name
        return names
