"""Docker mode behind the :class:`statbox.modes.base.Deployment` interface."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from statbox.certify.collect import Collected
from statbox.contract import DockerNames
from statbox.courses.model import LoadedCourse
from statbox.courses.publish import Personalise, Published, Publisher
from statbox.modes.base import PUBLISHED_LEDGERS, Deployment, Homes, Stack
from statbox.modes.docker.backup import (
    DockerTarget,
    docker_manifest_problems,
    plan_docker_restore,
    remove_volumes,
    restore_docker_parts,
    write_docker_parts,
)
from statbox.modes.docker.collect import VolumeHomes as VolumeSubmissions
from statbox.modes.docker.engine import docker_client
from statbox.modes.docker.stack import DockerStack, singleuser_image
from statbox.modes.docker.volumes import VolumePublishing
from statbox.settings.model import LoadedSettings

T = TypeVar("T")


class VolumeHomes:
    """Homes as the users' home volumes: written and read only by helper containers."""

    def __init__(self, loaded: LoadedSettings, state_dir: Path):
        self.client = docker_client()
        self.names = DockerNames(loaded.settings.docker.project)
        self.image = singleuser_image(loaded.settings)
        self.state_dir = state_dir

    def publish(
        self,
        course: LoadedCourse,
        users: list[str],
        personalise: Personalise | None,
        language: str | None = None,
    ) -> list[Published]:
        ledgers = self.state_dir / PUBLISHED_LEDGERS
        publisher = Publisher(self.state_dir / "homes", ledgers)
        planned = publisher.plan(course, users, personalise, language)
        publishing = VolumePublishing(self.client, self.names, self.image, ledgers)
        return publishing.publish(course.id, planned, publisher.pristine(course))

    def collect(self, course_id: str, notebook: str, out: Path) -> Collected:
        return VolumeSubmissions(self.client, self.names, self.image).collect(
            course_id, notebook, out
        )

    def where(self, user: str, course_id: str) -> str:
        return f"volume {self.names.home_volume(user)}: courses/{course_id}"


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

    def homes(self, loaded: LoadedSettings, state_dir: Path) -> Homes:
        return VolumeHomes(loaded, state_dir)

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
