"""Docker mode: the hub, PostgreSQL, Dask Gateway and a container per user on one engine.

Its parts: the stack (:mod:`.stack`, the compose file in :mod:`statbox.resources`), the
images (:mod:`.images`), the one engine client and helper runner (:mod:`.engine`), courses
in home volumes (:mod:`.volumes`, :mod:`.collect`), grading in containers (:mod:`.grading`)
and backups of the database and volumes (:mod:`.backup`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from statbox.modes import Deployment, Stack
from statbox.modes.docker.backup import (
    DockerTarget,
    docker_manifest_problems,
    plan_docker_restore,
    remove_volumes,
    restore_docker_parts,
    write_docker_parts,
)
from statbox.modes.docker.engine import docker_client
from statbox.modes.docker.stack import DockerStack
from statbox.settings.model import LoadedSettings

T = TypeVar("T")


class DockerDeployment(Deployment):
    name = "docker"
    prepare_only = True

    def stack(self, loaded: LoadedSettings) -> Stack:
        return DockerStack(loaded)

    def prepared(self, stack: Stack) -> list[str]:
        assert isinstance(stack, DockerStack)
        env_file = stack.write_compose_env()
        return [
            f"Wrote {env_file} (secrets: keep it private). Run the stack with:",
            f"  docker compose --env-file {env_file} -f {stack.compose_file} up -d",
        ]

    def backup_parts(
        self, loaded: LoadedSettings, warnings: list[str]
    ) -> Callable[[Path], dict[str, Any]] | None:
        docker = loaded.settings.docker
        target = DockerTarget(docker_client(), docker.project, docker.postgres_image)
        return lambda folder: write_docker_parts(target, folder, warnings)

    def describe_backup(self, state_dir: Path, volumes: int, files: int) -> str:
        plural = "" if volumes == 1 else "s"
        return f"{state_dir}, the hub's database and {volumes} home volume{plural}"

    def backup_problems(self, backup: Path, manifest: dict[str, Any]) -> list[str]:
        return docker_manifest_problems(backup, manifest)

    def restore(
        self,
        backup: Path,
        manifest: dict[str, Any],
        state_dir: Path,
        restore_state: Callable[[], T],
        replace: bool = False,
        client: Any = None,
    ) -> tuple[T, list[str]]:
        plan = plan_docker_restore(backup, manifest, client or docker_client(), replace)
        volumes = restore_docker_parts(backup, plan)
        try:
            return restore_state(), volumes
        except BaseException:
            remove_volumes(plan.target, volumes)
            raise
