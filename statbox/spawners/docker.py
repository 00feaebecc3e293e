"""Docker mode: each user's server is a container from one of their role's images.

Invariants (checked again by tests/docker against a real engine):

* A container's CPU, memory and process limits come from the user's role; so do the images
  it may run (a request for any other image is refused with 400 before anything is made).
* The home is a named volume per user (``<project>-home-<escaped name>``), kept when the
  container is removed at stop; course material, the catalog and each dataset the role is
  entitled to are mounted read-only at their host paths. A dataset the user is not entitled
  to is not mounted at all.
* No container is given the Docker engine's socket, or any capability.
"""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dockerspawner import DockerSpawner
from traitlets import Float, Integer, Unicode, default

from statbox.catalog.access import entitled_data_paths
from statbox.contract import GROUPS_ENV, PROJECT_LABEL, USER_LABEL, escape_username, is_data_url
from statbox.spawners.base import StatboxSpawnerMixin, wait_until_listening

HOME = "/home/jovyan"
"""The home of the images' notebook user (jovyan, uid 1000), where the home volume goes."""


class MountRefused(RuntimeError):
    """A mount outside the catalog, curriculum and data folders, or of a socket."""


class StatboxDockerSpawner(StatboxSpawnerMixin, DockerSpawner):
    """A container per user, sized, imaged and equipped by role."""

    home_volume_prefix = Unicode(
        "statbox-home-", config=True, help="Home volumes are this prefix + the escaped username."
    )
    pids_limit = Integer(1024, config=True, help="Most processes and threads per container.")
    ready_poll_interval = Float(
        0.05, config=True, help="Seconds between checks that a starting server listens."
    )
    docker_api_threads = Integer(
        8, config=True, help="Docker API calls in flight at once, across every user's spawner."
    )

    @property
    def executor(self) -> ThreadPoolExecutor:
        # DockerSpawner sends every spawner's Docker API calls through one thread, so a class
        # starting together waits in a single line for each create and start; the engine
        # handles them in parallel, and the client's connection pool is shared safely.
        cls = type(self)
        if cls._executor is None:
            cls._executor = ThreadPoolExecutor(
                self.docker_api_threads, thread_name_prefix="statbox-docker"
            )
        return cls._executor

    @default("escape")
    def _statbox_escape(self) -> Any:
        return escape_username

    @default("extra_host_config")
    def _statbox_host_config(self) -> dict[str, Any]:
        # Notebooks need no capability; no-new-privileges stops setuid binaries regaining any.
        return {
            "pids_limit": self.pids_limit,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
        }

    @default("extra_create_kwargs")
    def _statbox_create_kwargs(self) -> dict[str, Any]:
        return {"labels": self.statbox_labels()}

    def statbox_labels(self) -> dict[str, str]:
        return {PROJECT_LABEL: self.prefix, USER_LABEL: self.user.name}

    @property
    def home_volume(self) -> str:
        return self.home_volume_prefix + escape_username(self.user.name)

    def _get_allowed_images(self) -> dict[str, str]:
        """The role's images, by the names the settings give them; nothing else runs."""
        _, role = self.statbox_role
        return {name: self.settings.images[name].image for name in role.images}

    def statbox_mounts(self, role_name: str) -> tuple[dict[str, Any], dict[str, str]]:
        """(read-write volumes, read-only binds) for this user's container."""
        group_names = [group.name for group in self.user.groups]
        read_only: dict[str, str] = {}
        catalog_dir = os.path.dirname(self.catalog_path)
        # The catalog's folder, unless the data lives inside it (then only the file): a
        # folder mount must never carry data past the per-dataset rule below.
        if _is_within(self.data_root, catalog_dir):
            read_only[self.catalog_path] = self.catalog_path
        else:
            read_only[catalog_dir] = catalog_dir
        if os.path.isdir(self.curriculum_path):
            read_only[self.curriculum_path] = self.curriculum_path
        if is_data_url(self.data_root):
            # Object storage: nothing to mount; the data is read with credentials instead.
            return {self.home_volume: {"bind": HOME, "mode": "rw"}}, read_only
        for relative in entitled_data_paths(
            self.settings, role_name, group_names, Path(self.catalog_path)
        ):
            path = os.path.join(self.data_root, relative)
            if os.path.isdir(path):
                read_only[path] = path
            else:
                self.log.warning("Dataset directory %s is missing: not mounted", path)
        return {self.home_volume: {"bind": HOME, "mode": "rw"}}, read_only

    def get_env(self) -> dict[str, str]:
        env: dict[str, str] = super().get_env()
        env.update(self.statbox_environment(getattr(self, "_role_name", "")))
        # statbox.catalog.open_catalog() lists what these groups are entitled to.
        env[GROUPS_ENV] = ",".join(group.name for group in self.user.groups)
        return env

    async def start(self) -> tuple[str, int]:
        self._role_name = self.apply_role()
        allowed = self._get_allowed_images()
        self.image = next(iter(allowed.values()))
        self.volumes, self.read_only_volumes = self.statbox_mounts(self._role_name)
        refuse_unexpected_binds(
            self.volume_binds,
            [os.path.dirname(self.catalog_path), self.curriculum_path, self.data_root],
        )
        await self.docker(
            "create_volume",
            name=self.home_volume,
            labels={PROJECT_LABEL: self.prefix, USER_LABEL: self.user.name},
        )
        ip, port = await super().start()
        await wait_until_listening(
            ip,
            port,
            timeout=self.http_timeout,
            interval=self.ready_poll_interval,
            gone=lambda: False,
        )
        return ip, port


def _is_within(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def refuse_unexpected_binds(binds: dict[str, dict[str, Any]], roots: list[str]) -> None:
    """Raise unless every bind is a named volume or a path inside ``roots`` that is not a
    socket: an allow-list, so the engine's socket (or anything else) cannot slip in."""
    for source in binds:
        if "/" not in source:
            continue  # a named volume
        if not any(_is_within(source, root) for root in roots):
            raise MountRefused(f"refusing to mount {source}: outside {', '.join(roots)}")
        if os.path.exists(source) and stat.S_ISSOCK(os.stat(source).st_mode):
            raise MountRefused(f"refusing to mount the socket {source}")
