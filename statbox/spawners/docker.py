"""Docker mode: each user's server is a container from one of their role's images.

Invariants (checked again by tests/docker against a real engine):

* A container's CPU, memory and process limits come from the user's role; so do the images
  it may run (a request for any other image is refused with 400 before anything is made).
* The home is a named volume per user (``<project>-home-<escaped name>``), kept when the
  container is removed at stop; course material, the catalog and each dataset the role is
  entitled to are mounted read-only at their host paths. A dataset the user is not entitled
  to is not mounted at all.
* No container is given the Docker engine's socket, or any capability.
* Each container is alone on an internal network of its own, which only the hub and the
  gateway join: it reaches the hub's proxy and API and the gateway's proxy, not another
  user's server and not the database (on a network of its own with the hub). Internal
  networks give a container no default route, so it cannot reach any other subnet.
* Swap is off: the memory limit counts memory and swap together.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from docker.errors import APIError
from dockerspawner import DockerSpawner
from traitlets import Float, Integer, List, Unicode, default

from statbox.catalog.access import entitled_data_paths
from statbox.contract import GROUPS_ENV, PROJECT_LABEL, USER_LABEL, escape_username, is_data_url
from statbox.spawners.base import StatboxSpawnerMixin, course_material, wait_until_listening

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
    user_network_prefix = Unicode(
        "",
        config=True,
        help="Give each user's container an internal network of its own, called this prefix "
        "+ the escaped username, joined by the shared_containers. Empty: use network_name.",
    )
    user_subnets = Unicode(
        "",
        config=True,
        help="Address range the users' networks are cut from, a /28 each (e.g. 10.213.0.0/16). "
        "Empty: the engine's address pools choose.",
    )
    shared_containers = List(
        Unicode(),
        config=True,
        help="Containers (names) that join every user's network: the hub and the gateway.",
    )

    @default("network_name")
    def _user_network_name(self) -> str:
        # A default, not set at start: a hub restarted while the container runs finds the
        # container's address on the same network.
        if self.user_network_prefix:
            return self.user_network_prefix + escape_username(self.user.name)
        return "bridge"

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
        # Each course the role may take, file by file and never grader/ (the solutions and
        # hidden checks): the curriculum folder whole would hand trainees every answer.
        for material in course_material(Path(self.curriculum_path), role_name):
            read_only[str(material)] = str(material)
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
        # Memory and swap together capped at the memory limit: no swap beyond it.
        # (mypy cannot type a trait whose default is a method of the class)
        host_config: dict[str, Any] = self.extra_host_config  # type: ignore[has-type]
        self.extra_host_config = {**host_config, "memswap_limit": self.mem_limit}
        if self.user_network_prefix:
            await self.ensure_user_network()
        ip, port = await super().start()
        await wait_until_listening(
            ip,
            port,
            timeout=self.http_timeout,
            interval=self.ready_poll_interval,
            gone=lambda: False,
        )
        return ip, port

    async def ensure_user_network(self) -> None:
        """Create this user's internal network if missing and join the shared containers."""
        labels = {PROJECT_LABEL: self.prefix, USER_LABEL: self.user.name}
        found = await self.docker("networks", names=[self.network_name])
        if not any(net["Name"] == self.network_name for net in found):
            await self._create_user_network(labels)
        for container in self.shared_containers:
            try:
                await self.docker("connect_container_to_network", container, self.network_name)
            except APIError as exc:
                if "already exists" not in str(exc):
                    raise

    async def _create_user_network(self, labels: dict[str, str]) -> None:
        import docker

        if not self.user_subnets:
            await self.docker(
                "create_network", self.network_name, driver="bridge", internal=True,
                labels=labels, check_duplicate=True,
            )  # fmt: skip
            return
        taken = []
        for net in await self.docker("networks"):
            for pool in (net.get("IPAM") or {}).get("Config") or []:
                with contextlib.suppress(KeyError, ValueError):
                    taken.append(ipaddress.ip_network(pool["Subnet"], strict=False))
        pool = ipaddress.ip_network(self.user_subnets, strict=False)
        pieces = pool.subnets(new_prefix=28) if pool.prefixlen < 28 else iter([pool])
        for subnet in pieces:
            if any(subnet.overlaps(other) for other in taken):
                continue
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(subnet))])
            try:
                await self.docker(
                    "create_network", self.network_name, driver="bridge", internal=True,
                    labels=labels, ipam=ipam, check_duplicate=True,
                )  # fmt: skip
                return
            except APIError as exc:
                # Another user's network took it a moment ago: try the next.
                if "overlap" not in str(exc).lower():
                    raise
        raise RuntimeError(
            f"no free /28 left in docker.user_subnets ({self.user_subnets}): choose a larger range"
        )

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)
        if self.user_network_prefix and self.remove:
            await self.remove_user_network()

    async def remove_user_network(self, attempts: int = 20) -> None:
        """Leave and remove this user's network; the container's endpoint may linger a
        moment after it is removed, so retry briefly, then leave it to the next stop."""
        for container in self.shared_containers:
            with contextlib.suppress(APIError):
                await self.docker(
                    "disconnect_container_from_network", container, self.network_name, force=True
                )
        for _ in range(attempts):
            try:
                await self.docker("remove_network", self.network_name)
                return
            except APIError as exc:
                if exc.status_code == 404:
                    return
                await asyncio.sleep(0.25)
        self.log.warning(
            "Network %s still in use: `statbox up` removes it at stop", self.network_name
        )


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
