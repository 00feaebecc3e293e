"""The interface every deployment mode implements (:class:`Deployment`), the table that
names them (:data:`MODES`) and :func:`deployment`, which imports the one chosen."""

from __future__ import annotations

import importlib
import pwd
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from statbox.certify.collect import Collected, LocalHomes
from statbox.courses.model import LoadedCourse
from statbox.courses.publish import Personalise, Published, Publisher
from statbox.errors import BadInput
from statbox.settings.model import LoadedSettings

T = TypeVar("T")

MODES: dict[str, str] = {
    "local": "statbox.modes.local.deployment:LocalDeployment",
    "docker": "statbox.modes.docker.deployment:DockerDeployment",
    "kubernetes": "statbox.modes.kubernetes.deployment:KubernetesDeployment",
}
"""Mode name -> ``module:class`` of its :class:`Deployment`."""


class Stack(Protocol):
    """What ``statbox up`` runs: ``prepare()`` checks and writes the run's files and starts
    nothing; ``start()``, ``wait()`` (returns the name of the part that ended), ``stop()``."""

    @property
    def url(self) -> str: ...
    def prepare(self) -> Any: ...
    def start(self) -> None: ...
    def wait(self) -> str: ...
    def stop(self) -> None: ...
    def log_tail(self, name: str) -> list[str]: ...


class Homes(Protocol):
    """Where users' homes are, for publishing course material into them and collecting
    exercises from them."""

    def publish(
        self,
        course: LoadedCourse,
        users: list[str],
        personalise: Personalise | None,
        language: str | None = None,
    ) -> list[Published]:
        """Each notebook in ``language`` where the course has a translation, else English."""
        ...

    def collect(self, course_id: str, notebook: str, out: Path) -> Collected: ...
    def where(self, user: str, course_id: str) -> str: ...


@dataclass
class FolderHomes:
    """Homes as folders ``<state>/homes/<user>`` on this machine (local mode)."""

    state_dir: Path
    owner: pwd.struct_passwd | None = None
    """Who owns what publishing writes (the account servers run as), or None: the caller."""

    @property
    def root(self) -> Path:
        return self.state_dir / "homes"

    def publish(
        self,
        course: LoadedCourse,
        users: list[str],
        personalise: Personalise | None,
        language: str | None = None,
    ) -> list[Published]:
        publisher = Publisher(self.root, self.state_dir / PUBLISHED_LEDGERS, self.owner)
        return publisher.publish(course, users, personalise, language)

    def collect(self, course_id: str, notebook: str, out: Path) -> Collected:
        return LocalHomes(self.root).collect(course_id, notebook, out)

    def read(self, user: str, course_id: str, notebook: str, limit: int | None = None) -> bytes:
        """One user's copy of ``notebook``, links never followed (a trainee's submission)."""
        return LocalHomes(self.root).read(user, course_id, notebook, limit)

    def exists(self, user: str) -> bool:
        """Whether ``user`` has a home yet (has signed in and started a server)."""
        home = self.root / user
        return home.is_dir() and not home.is_symlink()

    def where(self, user: str, course_id: str) -> str:
        return str(self.root / user / "courses" / course_id)


PUBLISHED_LEDGERS = "courses/published"
"""What Statbox last published, per user and course, under the state directory."""


class Deployment:
    """One deployment mode. Defaults: nothing beyond the state directory to back up."""

    name: ClassVar[str]
    prepare_only: ClassVar[bool] = False
    """Whether ``statbox up --prepare`` can write what running the stack by other means
    needs (docker compose), starting nothing."""

    def stack(self, loaded: LoadedSettings) -> Stack:
        """The stack ``statbox up`` runs in this mode (BadInput when it does not run one)."""
        raise BadInput(
            f"mode: {self.name!r} is not started by `statbox up`; 'local' and 'docker' are "
            "(the kubernetes mode is deployed with Helm)"
        )

    def prepared(self, stack: Stack) -> list[str]:
        """``statbox up --prepare`` (only where :attr:`prepare_only`): after
        ``stack.prepare()``, write what running the stack by other means needs; the lines to
        print."""
        raise NotImplementedError(self.name)

    def homes(self, loaded: LoadedSettings, state_dir: Path) -> Homes:
        """Users' homes, for ``statbox course publish`` and ``statbox certify collect``."""
        return FolderHomes(state_dir)

    def backup_parts(
        self, loaded: LoadedSettings, warnings: list[str]
    ) -> Callable[[Path], dict[str, Any]] | None:
        """A writer of this mode's own parts of a backup (into the backup folder, returning
        manifest keys), or None when the state directory is everything."""
        return None

    def describe_backup(self, state_dir: Path, volumes: int, files: int) -> str:
        """What a backup holds, for the operator."""
        return f"{state_dir} ({files} files)"

    def backup_problems(self, backup: Path, manifest: dict[str, Any]) -> list[str]:
        """What is wrong with this mode's parts of a backup (none: nothing)."""
        return []

    def restore(
        self,
        backup: Path,
        manifest: dict[str, Any],
        state_dir: Path,
        restore_state: Callable[[], T],
        replace: bool = False,
        client: Any = None,
    ) -> tuple[T, list[str]]:
        """Bring back this mode's parts of ``backup``, then the state (``restore_state()``);
        returns its result and the volumes made anew. Nothing changes when a check fails."""
        self.check_restore(state_dir)
        return restore_state(), []

    def check_restore(self, state_dir: Path) -> None:
        """Raise when the state directory must not be replaced now (default: nothing to
        check)."""


def deployment(name: str) -> Deployment:
    """The :class:`Deployment` of mode ``name`` (imported now, not before)."""
    try:
        module, _, attribute = MODES[str(name)].partition(":")
    except KeyError:
        raise BadInput(f"mode: {name!r} is not one of {', '.join(MODES)}") from None
    cls: type[Deployment] = getattr(importlib.import_module(module), attribute)
    return cls()
