"""What every Statbox spawner does, whatever runs the server: apply the user's role.

Invariant: a server's resources, environment and data come from the role that
:func:`statbox.identity.roles.resolve_role` gives the user at spawn time, never from user input.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from traitlets import Instance, Unicode
from traitlets.config import Configurable

from statbox.catalog.access import RoleAccess, role_access_environment
from statbox.contract import CATALOG_ENV, CURRICULUM_ENV, DATA_ROOT_ENV, GROUPS_ENV, ROLE_ENV
from statbox.i18n import COOKIE, LANGUAGE_ENV, choose
from statbox.identity.roles import resolve_role
from statbox.settings.model import Role, Settings

GRADER_DIR = "grader"
"""A course's solutions and hidden checks (statbox.courses.model.GRADER_DIR): never given."""


class StatboxSpawnerMixin(Configurable):
    """Mix into a Spawner (before it in the bases) to size and equip servers by role."""

    settings = Instance(Settings, config=True, help="Statbox settings (set by hub_config.py).")
    catalog_path = Unicode(config=True, help="Root catalog users open via STATBOX_CATALOG.")
    curriculum_path = Unicode(config=True, help="Course material copied into each home.")
    data_root = Unicode(config=True, help="Where the catalog's data lives.")

    @property
    def statbox_role(self) -> tuple[str, Role]:
        """The user's role name and settings, decided now from their name and groups."""
        user: Any = self.user  # type: ignore[attr-defined]
        groups = [group.name for group in user.groups]
        name = resolve_role(self.settings, user.name, groups).role
        return name, self.settings.role(name)

    def apply_role(self) -> str:
        """Size the server by role; returns the role name."""
        name, role = self.statbox_role
        self.mem_limit = role.server.memory
        self.cpu_limit = role.server.cpu
        return name

    def statbox_environment(self, role_name: str) -> dict[str, str]:
        """Environment every user server gets, on top of the spawner's own: where the
        catalog, data and courses are, and the role, groups and data access that
        ``statbox.catalog.open_catalog()`` filters by (the server has no settings file)."""

        user: Any = self.user  # type: ignore[attr-defined]
        return {
            ROLE_ENV: role_name,
            GROUPS_ENV: ",".join(sorted(group.name for group in user.groups)),
            CATALOG_ENV: self.catalog_path,
            DATA_ROOT_ENV: self.data_root,
            CURRICULUM_ENV: self.curriculum_path,
            LANGUAGE_ENV: self.person_language(),
            **role_access_environment(RoleAccess.of(self.settings, role_name)),
        }

    def person_language(self) -> str:
        """JupyterLab's default language for this server: the person's saved choice or
        browser's, when they started it from a browser (the hub hands the spawner the
        request as ``handler``), else ``hub.language``. What they pick in Lab's own menu
        is kept in their settings and wins over this."""
        handler: Any = getattr(self, "handler", None)
        request = getattr(handler, "request", None)
        if request is None:
            return choose(None, None, self.settings.hub.language)
        return choose(
            handler.get_cookie(COOKIE),
            request.headers.get("Accept-Language"),
            self.settings.hub.language,
        )


async def wait_until_listening(
    ip: str, port: int, timeout: float, interval: float, gone: Callable[[], bool]
) -> None:
    """Return once ``ip:port`` accepts a connection, ``gone()`` is true, or time runs out.

    The hub checks a starting server with exponential back-off (0.2 s growing to 5 s), often
    sleeping well past the moment it listens; returning from ``start`` only once the port
    accepts connections makes the hub's first check succeed (see bench/spawn.py).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone():
            return  # the hub's own checks report the exit
        try:
            _, writer = await asyncio.open_connection(ip, port)
        except OSError:
            await asyncio.sleep(interval)
            continue
        writer.close()
        await writer.wait_closed()
        return


def course_audience(course: Path) -> list[str] | None:
    """The roles ``course/course.yaml`` is for (None: every role, as the course model's
    default). Read here with YAML alone: the spawner sits below the course model's layer."""
    try:
        data = yaml.safe_load((course / "course.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return []  # not a course one can read: nothing of it is given
    audience = data.get("audience") if isinstance(data, dict) else None
    return [str(role) for role in audience] if isinstance(audience, list) else None


def course_material(curriculum: Path, role: str | None = None) -> list[Path]:
    """What of the curriculum users of ``role`` may read: the files of each course whose
    audience includes the role, but ``grader/`` (an allow-list of what is there, so a folder
    added later is not published by accident unless it is course material beside the
    notebooks). Files beside the courses (the authors' README) are for course authors, and a
    course for analysts only never reaches a trainee. ``role`` None: every course."""
    if not curriculum.is_dir():
        return []
    given: list[Path] = []
    for item in sorted(curriculum.iterdir()):
        if item.name.startswith(".") or not item.is_dir() or item.is_symlink():
            continue
        audience = course_audience(item)
        if role is not None and audience is not None and role not in audience:
            continue
        given += [
            p for p in sorted(item.iterdir()) if p.name != GRADER_DIR and not p.name.startswith(".")
        ]
    return given
