"""Local mode behind the :class:`statbox.modes.base.Deployment` interface."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from statbox.errors import EnvironmentProblem
from statbox.modes.base import Deployment, FolderHomes, Homes, Stack
from statbox.modes.local.stack import LocalStack
from statbox.sandbox.records import pid_file_process
from statbox.settings.model import LoadedSettings

T = TypeVar("T")


class LocalDeployment(Deployment):
    name = "local"

    def stack(self, loaded: LoadedSettings) -> Stack:
        return LocalStack(loaded)

    def homes(self, loaded: LoadedSettings, state_dir: Path) -> Homes:
        # No one account: each home's files go to the uid owning the home (its user's).
        return FolderHomes(state_dir, None)

    def check_restore(self, state_dir: Path) -> None:
        # Known by its pid file and start time: after a crash the file names a pid the
        # kernel may have given to anything since, which must not block the restore.
        pid = pid_file_process(state_dir / "run" / "jupyterhub.pid", "jupyterhub")
        if pid is not None:
            raise EnvironmentProblem(
                f"a hub (pid {pid}) is using {state_dir}: stop it (Ctrl-C on `statbox up`) "
                "and run the restore again"
            )
