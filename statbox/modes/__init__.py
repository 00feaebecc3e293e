"""Deployment modes: one folder each, behind one small interface, chosen by name.

``local`` runs the stack as processes on this machine, ``docker`` as containers on one
engine, ``kubernetes`` is deployed with the Helm chart. Every mode-specific step a command
takes goes through :class:`Deployment`; a command never branches on the mode itself.

As dask-gateway resolves its backends, a mode is imported only when it is chosen
(:data:`MODES` names them), so a local-mode command never imports the Docker SDK, and the
modes never import each other.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from statbox.errors import BadInput
from statbox.settings.model import LoadedSettings

T = TypeVar("T")

MODES: dict[str, str] = {
    "local": "statbox.modes.local:LocalDeployment",
    "docker": "statbox.modes.docker:DockerDeployment",
    "kubernetes": "statbox.modes.kubernetes:KubernetesDeployment",
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
        """``statbox up --prepare``: after ``stack.prepare()``, write what running the stack
        by other means needs; the lines to print."""
        raise BadInput(f"--prepare: docker mode has it; mode is {self.name!r}")

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
        return restore_state(), []


def deployment(name: str) -> Deployment:
    """The :class:`Deployment` of mode ``name`` (imported now, not before)."""
    try:
        module, _, attribute = MODES[str(name)].partition(":")
    except KeyError:
        raise BadInput(f"mode: {name!r} is not one of {', '.join(MODES)}") from None
    cls: type[Deployment] = getattr(importlib.import_module(module), attribute)
    return cls()
