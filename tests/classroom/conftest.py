"""Classroom tier: the library the classroom service and the CLI call, on real files.

``site``: a settings file with two cohorts (kigali: trainees alice, bob, carol and their
instructor ines; lima: trainee dora and instructor ivan), a curriculum holding the certify
tests' exercise (shop-prices), an analyst-only course and an authoring README, a state
directory, and a :class:`Classroom` over them (grading in the real sandbox on the certify
tier's sample data). Every test gets its own (function scope): they change files.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from statbox.certify.isolation import Limits
from statbox.certify.runner import GradingSetup
from statbox.classroom import Actor, Classroom
from statbox.modes.base import FolderHomes
from statbox.settings.model import LoadedSettings, load_settings
from tests.certify.conftest import COURSES, data_root, sandbox  # noqa: F401 (fixtures)
from tests.certify.sampledata import CATALOG

SETTINGS = """\
paths:
  curriculum: curriculum
  state_dir: state
cohorts: [kigali, lima]
groups:
  kigali: [alice, bob, carol, ines]
  lima: [dora, ivan]
roles:
  instructor:
    users: [ines, ivan]
  analyst:
    users: [ana]
"""

ANALYST_ONLY = "analyst-only"


class Clock:
    """The classroom's time now, which a test moves (past a deadline)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Site:
    root: Path
    loaded: LoadedSettings
    classroom: Classroom
    clock: Clock

    @property
    def state(self) -> Path:
        return self.root / "state"

    def home_course(self, user: str, course: str = "shop-prices") -> Path:
        return self.state / "homes" / user / "courses" / course


def actor(name: str) -> Actor:
    """A user as the shared-password hub knows them: no provider groups (settings give them)."""
    return Actor.user(name)


@pytest.fixture
def site(tmp_path: Path, data_root: Path) -> Iterator[Site]:  # noqa: F811 (fixture)
    curriculum = tmp_path / "curriculum"
    shutil.copytree(COURSES / "shop-prices", curriculum / "shop-prices")
    shutil.copytree(COURSES / "sample-course", curriculum / ANALYST_ONLY)
    course_file = curriculum / ANALYST_ONLY / "course.yaml"
    text = course_file.read_text().replace("id: sample-course", f"id: {ANALYST_ONLY}")
    course_file.write_text(text + "audience: [analyst, admin]\n")
    (curriculum / "README.md").write_text("# Authoring courses (for course authors)\n")
    (tmp_path / "statbox.yaml").write_text(SETTINGS)
    loaded = load_settings(tmp_path / "statbox.yaml")
    state = loaded.paths.state_dir
    clock = Clock()
    grading = GradingSetup(
        curriculum=curriculum,
        data_root=data_root,
        state_dir=state,
        catalog=CATALOG,
        limits=Limits(output=256 * 1024),
    )
    classroom = Classroom(
        loaded.settings, curriculum, state, FolderHomes(state), grading, clock=clock
    )
    yield Site(tmp_path, loaded, classroom, clock)
