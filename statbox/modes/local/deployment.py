"""Local mode behind the :class:`statbox.modes.base.Deployment` interface."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

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

    def check_restore(self, state_dir: Path) -> None:
        pid = hub_running(state_dir)
        if pid is not None:
            raise EnvironmentProblem(
                f"a hub (pid {pid}) is using {state_dir}: stop it (Ctrl-C on `statbox up`) "
                "and run the restore again"
            )
