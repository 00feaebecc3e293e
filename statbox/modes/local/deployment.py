"""Local mode behind the :class:`statbox.modes.base.Deployment` interface."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from statbox.errors import EnvironmentProblem
from statbox.modes.base import Deployment, FolderHomes, Homes, Stack
from statbox.modes.local.stack import LocalStack, hub_running, unprivileged_account
from statbox.settings.model import LoadedSettings

T = TypeVar("T")


class LocalDeployment(Deployment):
    name = "local"

    def stack(self, loaded: LoadedSettings) -> Stack:
        return LocalStack(loaded)

    def homes(self, loaded: LoadedSettings, state_dir: Path) -> Homes:
        return FolderHomes(state_dir, unprivileged_account(loaded.settings.local.run_as))

    def restore(
        self,
        backup: Path,
        manifest: dict[str, Any],
        state_dir: Path,
        restore_state: Callable[[], T],
        replace: bool = False,
        client: Any = None,
    ) -> tuple[T, list[str]]:
        pid = hub_running(state_dir)
        if pid is not None:
            raise EnvironmentProblem(
                f"a hub (pid {pid}) is using {state_dir}: stop it (Ctrl-C on `statbox up`) "
                "and run the restore again"
            )
        return restore_state(), []
