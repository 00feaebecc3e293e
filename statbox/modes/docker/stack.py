"""Docker mode: run ``compose.yaml`` (proxy, hub, PostgreSQL, Dask Gateway) on one Docker engine.

``statbox up --mode docker`` is a small supervisor over the Docker API. It reads
``compose.yaml`` (the one description of the stack, also usable with ``docker compose``),
fills in its variables from the settings and secrets, and then:

* checks everything first (engine reachable, images built, folders present, passwords
  valid, no other ``statbox up`` of this state folder, no service of the project running
  that it did not start); a problem raises with what to do and nothing is created;
* creates what is missing (networks, volumes, the cgroup folder of the users' Dask
  clusters) and starts db, gateway and proxy side by side, then the hub (dependency order),
  waiting for each to answer; on any failure it stops what it started;
* then supervises: a proxy, hub, gateway or database that stops (``docker kill`` is a manual
  stop to Docker, whose restart policy then does nothing) is started again, in its own
  container so it keeps its networks (one created anew joins the users' networks again);
  user containers are never touched because a service stopped. The proxy is a container of
  its own, never restarted because the hub was: open notebooks keep working through it
  while the hub comes back. Its routing table lives in its memory only, so the supervisor
  keeps a copy (read every poll) and gives a proxy that started again its routes back at
  once, rather than leaving users' servers unreachable until the hub's next route check;
* is the only supervisor of its state folder: it holds a lock there (``flock``, released by
  the kernel however the process ends, so no pid is ever trusted or signalled). A stack left
  running by a ``statbox up`` that was killed is taken back by the next one: containers it
  started (labelled with the state folder and a digest of their settings) that still run
  with the same settings are kept as they are, with their users' containers and kernels;
  stopped ones (after a power loss) are created again and join the users' networks again;
* on stop (Ctrl-C, SIGTERM), stops and removes the stack's containers and every user
  container and user network of the project (found by label), and the networks it created.
  Named volumes (homes, database, gateway) stay: starting again takes users, servers' homes
  and the database back. If a service cannot be brought back, the stack's services are
  stopped but user containers are left running (the next start takes them back).

Only the compose keys in :data:`SUPPORTED_SERVICE_KEYS` are understood; any other key is an
error naming it, so the file and this interpreter cannot silently disagree.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from statbox.catalog.loader import read_catalog
from statbox.configure.credentials import Credentials, resolve_credentials, secret_problems
from statbox.configure.hub import GATEWAY_PREFIX
from statbox.configure.hubdb import check_docker as check_hub_database
from statbox.configure.runtime import Hosts, Ports, Runtime, write_runtime
from statbox.contract import (
    CURRICULUM_ENV,
    DATA_ROOT_ENV,
    IMAGE_INTERPRETER,
    PROJECT_LABEL,
    USER_LABEL,
    DockerNames,
    is_data_url,
)
from statbox.errors import BadInput, EnvironmentProblem, StatboxError
from statbox.modes.docker.engine import docker_client
from statbox.modes.docker.hubfolders import give_to_hub
from statbox.resources import COMPOSE, resource
from statbox.sandbox.cgroups import Cgroup, CgroupTree
from statbox.settings.model import LoadedSettings, Settings

COMPOSE_FILE = resource(COMPOSE)


DOCKER_PORTS = Ports(
    public=8000, hub_api=8081, proxy_api=8001, gateway_api=8010, gateway_http=8000, gateway_tcp=8786
)
"""Ports inside the containers (each container has its own addresses, so they may repeat)."""

SUPPORTED_SERVICE_KEYS = frozenset(
    {
        "container_name", "image", "environment", "volumes", "networks", "ports", "restart",
        "cap_drop", "cap_add", "group_add", "depends_on", "security_opt", "command", "user",
        "mem_limit", "memswap_limit", "pids_limit", "cpus", "tmpfs", "cgroup",
    }
)  # fmt: skip

START_TIMEOUT = 120.0
"""Seconds each service has to become ready."""

SHARED_SERVICES = ("proxy", "hub", "gateway")
"""Services that join every user's network (statbox.spawners.docker's shared_containers)."""

RESTART_TRIES = 5
"""Times in a row the supervisor starts a stopped service again before it gives up."""

DASK_CGROUP_VARIABLES = {
    "memory": "STATBOX_DASK_CGROUP_MEMORY",
    "pids": "STATBOX_DASK_CGROUP_PIDS",
    "cpu": "STATBOX_DASK_CGROUP_CPU",
}
"""compose.yaml's variables for the host folders (per controller) of the cgroups that cap
each user's Dask scheduler and workers, bound into the gateway (statbox.configure.gateway)."""

SUPERVISOR_LABEL = "statbox.supervisor"
"""On what ``statbox up`` creates (services' containers, networks): its state folder, the
mark that a later ``statbox up`` of the same folder may take it back (and remove it)."""

SPEC_LABEL = "statbox.spec"
"""On services' containers: :func:`spec_digest` of the settings they were created with."""

LOCK_FILE = "docker-up.lock"
"""In ``<state>/run``: held (flock) by the one ``statbox up`` supervising that state."""

_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)\}")


def singleuser_image(settings: Settings) -> str:
    """The image helper containers and graded kernels run in: the trainee role's default
    image (a Statbox single-user image: its Python, jovyan uid 1000)."""
    return settings.images[settings.roles.trainee.images[0]].image


def engine_socket(environ: dict[str, str] | None = None) -> str:
    """The host path of the engine's socket, from ``DOCKER_HOST`` (unix sockets only)."""
    env = os.environ if environ is None else environ
    host = env.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        raise BadInput(
            f"DOCKER_HOST={host}: docker mode needs the engine's unix socket on this host "
            "(the hub container mounts it); unset DOCKER_HOST or point it at unix:///..."
        )
    return host.removeprefix("unix://")


def substitute(node: Any, variables: dict[str, str], where: str = "compose.yaml") -> Any:
    """``node`` with every ``${NAME}`` replaced; an unknown name is an error naming it."""
    if isinstance(node, dict):
        return {key: substitute(value, variables, f"{where}.{key}") for key, value in node.items()}
    if isinstance(node, list):
        return [substitute(value, variables, f"{where}[{i}]") for i, value in enumerate(node)]
    if isinstance(node, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in variables:
                raise BadInput(f"{where}: ${{{name}}} is not a variable statbox provides")
            return variables[name]

        return _VARIABLE.sub(replace, node)
    return node


@dataclass(frozen=True)
class Service:
    """One compose service, ready for the Docker API."""

    key: str
    name: str
    image: str
    environment: dict[str, str]
    binds: list[str]
    networks: list[str]
    ports: dict[str, tuple[str, int]]
    host_config: dict[str, Any]
    depends_on: list[str]
    command: list[str] | None = None
    user: str | None = None
    aliases: dict[str, list[str]] = field(default_factory=dict)
    """Names the service has on one network only, by network name."""


@dataclass
class Stack:
    """The parsed compose file: services in start order, networks and volumes by key."""

    services: list[Service]
    networks: dict[str, dict[str, Any]]
    volumes: dict[str, str]


def spec_digest(service: Service) -> str:
    """A digest of everything a service's container is created from: a running container
    with another digest was made with other settings, and is created anew, not taken back."""
    text = json.dumps(asdict(service), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def images_needed(settings: Any) -> list[str]:
    """Every image a stack with these settings runs: PostgreSQL, gateway, hub, and each
    role's single-user images."""
    docker = settings.docker
    user_images = {
        settings.images[n].image for _, role in settings.roles.items() for n in role.images
    }
    return [docker.postgres_image, docker.gateway_image, docker.hub_image, *sorted(user_images)]


def parse_compose(text: str, variables: dict[str, str], publish: bool) -> Stack:
    """Turn compose.yaml into a :class:`Stack`; unsupported keys raise :class:`BadInput`.

    Without ``publish``, networks that are not internal and port publishing are left out.
    """
    data = substitute(yaml.safe_load(text), variables)
    networks = {key: dict(spec or {}) for key, spec in (data.get("networks") or {}).items()}
    if not publish:
        networks = {key: spec for key, spec in networks.items() if spec.get("internal")}
    volumes = {
        key: (spec or {}).get("name", key) for key, spec in (data.get("volumes") or {}).items()
    }
    services = []
    for key, spec in (data.get("services") or {}).items():
        unknown = sorted(set(spec) - SUPPORTED_SERVICE_KEYS)
        if unknown:
            raise BadInput(
                f"compose.yaml: services.{key}: {', '.join(unknown)} not supported by "
                f"`statbox up` (supported: {', '.join(sorted(SUPPORTED_SERVICE_KEYS))})"
            )
        binds = []
        targets: set[str] = set()
        for volume in spec.get("volumes", []):
            source = volume.split(":", 1)[0]
            if "/" not in source:
                if source not in volumes:
                    raise BadInput(f"compose.yaml: services.{key}: volume {source!r} not declared")
                volume = volumes[source] + volume[len(source) :]
            target = volume.split(":")[1] if volume.count(":") else volume
            if target in targets:  # the engine refuses the container, naming no line
                raise BadInput(f"compose.yaml: services.{key}: {target} is mounted twice")
            targets.add(target)
            binds.append(volume)
        ports: dict[str, tuple[str, int]] = {}
        if publish:
            for port in spec.get("ports", []):
                ip, host_port, container_port = port.rsplit(":", 2)
                ports[f"{container_port}/tcp"] = (ip, int(host_port))
        host_config: dict[str, Any] = {
            "cap_drop": spec.get("cap_drop"),
            "cap_add": spec.get("cap_add"),
            "security_opt": spec.get("security_opt"),
            "group_add": spec.get("group_add"),
            "restart_policy": {"Name": spec["restart"]} if spec.get("restart") else None,
            "mem_limit": spec.get("mem_limit"),
            "memswap_limit": spec.get("memswap_limit"),
            "pids_limit": spec.get("pids_limit"),
            "nano_cpus": int(float(spec["cpus"]) * 1e9) if spec.get("cpus") else None,
            "tmpfs": _tmpfs(spec.get("tmpfs", [])),
            "cgroupns": spec.get("cgroup"),
        }
        joined = spec.get("networks", [])
        # A list of network keys, or compose's long form {key: {aliases: [...]}}.
        declared = joined if isinstance(joined, list) else list(joined)
        aliases = {
            networks[net]["name"]: list((joined[net] or {}).get("aliases", []))
            for net in declared
            if isinstance(joined, dict) and net in networks
        }
        services.append(
            Service(
                key=key,
                name=spec["container_name"],
                image=spec["image"],
                environment=dict(spec.get("environment") or {}),
                binds=binds,
                networks=[networks[net]["name"] for net in declared if net in networks],
                aliases={name: names for name, names in aliases.items() if names},
                ports=ports,
                host_config={k: v for k, v in host_config.items() if v},
                depends_on=list(spec.get("depends_on", [])),
                command=spec.get("command"),
                user=spec.get("user"),
            )
        )
    return Stack(_start_order(services), networks, volumes)


def _tmpfs(entries: list[str]) -> dict[str, str] | None:
    """compose's ``tmpfs: ["/path:options"]`` as the Docker API's ``{path: options}``."""
    pairs = (entry.partition(":") for entry in entries)
    return {path: options for path, _, options in pairs} or None


def _start_order(services: list[Service]) -> list[Service]:
    by_key = {service.key: service for service in services}
    ordered: list[Service] = []

    def visit(service: Service, path: tuple[str, ...]) -> None:
        if service in ordered:
            return
        if service.key in path:
            raise BadInput(f"compose.yaml: depends_on forms a cycle: {' -> '.join(path)}")
        for dependency in service.depends_on:
            if dependency not in by_key:
                raise BadInput(f"compose.yaml: services.{service.key}: unknown {dependency!r}")
            visit(by_key[dependency], (*path, service.key))
        ordered.append(service)

    for service in services:
        visit(service, ())
    return ordered


# ---------------------------------------------------------------------------------- stack


@dataclass
class DockerStack:
    """One docker-mode run; ``prepare()`` checks and writes, ``start()``/``stop()`` act."""

    loaded: LoadedSettings
    start_timeout: float = START_TIMEOUT
    compose_file: Path = COMPOSE_FILE
    client: Any = None
    runtime: Runtime | None = None
    credentials: Credentials | None = None
    stack: Stack | None = None
    started: list[str] = field(default_factory=list)
    created_networks: list[str] = field(default_factory=list)
    dask_cgroups: CgroupTree | None = None
    keep_user_containers: bool = False
    """Set when the supervisor gives up: the stop that follows leaves users' servers running."""
    say: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    """Where the supervisor reports what it restarts."""
    leftovers: list[str] = field(default_factory=list)
    """What ``prepare()`` found of an earlier run (printed by ``statbox up``)."""
    lock_fd: int | None = None
    routes: dict[str, dict[str, Any]] | None = None
    """The proxy's routing table as last read, and (``routes_of``) the proxy container's id
    and start time it was read from: a proxy started since has lost its routes."""
    routes_of: tuple[str, str] | None = None

    @property
    def names(self) -> DockerNames:
        return DockerNames(self.loaded.settings.docker.project)

    @property
    def state_dir(self) -> Path:
        return self.loaded.paths.state_dir

    def prepare(self) -> Runtime:
        """Check everything and write the run's files; create nothing in the engine."""
        settings = self.loaded.settings
        paths = self.loaded.paths
        problems = secret_problems(settings, self.state_dir)
        if problems:
            raise BadInput(*problems)
        if is_data_url(paths.data_root):
            raise BadInput(
                f"paths.data_root: {paths.data_root} is a URL; docker mode mounts each dataset "
                "from a folder on this host: set paths.data_root to a folder"
            )
        data_root = Path(paths.data_root)
        for name, path in (
            ("catalog", paths.catalog),
            ("curriculum", paths.curriculum),
            ("data_root", data_root),
        ):
            if not path.exists():
                raise BadInput(
                    f"paths.{name}: {path} does not exist: create it, or set paths.{name}"
                )
        # An invalid catalog would make every spawn fail: refuse it now (CatalogError: exit 2).
        read_catalog(paths.catalog)
        socket_path = engine_socket()
        for name, path in (("catalog", paths.catalog.parent), ("curriculum", paths.curriculum),
                           ("data_root", data_root)):  # fmt: skip
            if Path(socket_path).resolve().is_relative_to(path.resolve()):
                raise BadInput(
                    f"paths.{name}: {path} holds the Docker engine's socket; choose a folder "
                    "that does not (it is mounted into the hub)"
                )
        self.client = self.client or docker_client()
        missing = [
            image for image in self._images_needed() if not self._exists(self.client.images, image)
        ]
        if missing:
            raise EnvironmentProblem(
                f"image {', '.join(missing)} not in the engine: run `statbox images build` first"
            )
        run_dir = self.state_dir / "run"
        for directory, mode in ((self.state_dir, 0o755), (run_dir, 0o755),
                                (self.state_dir / "logs", 0o700)):  # fmt: skip
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(mode)
        self._hold_lock(run_dir / LOCK_FILE)
        self._check_running()
        give_to_hub(self.state_dir)
        self.dask_cgroups = CgroupTree.detect(f"statbox-{self.names.project}-dask")
        if self.dask_cgroups is None or not {"memory", "pids"} <= set(self.dask_cgroups.bases):
            raise EnvironmentProblem(
                "docker mode caps each user's Dask scheduler and workers in a cgroup of their "
                "own, and cannot make cgroups here: run `statbox up` as root (cgroup v1, or v2 "
                "with the memory and pids controllers available)"
            )
        self.credentials = resolve_credentials(settings, self.state_dir)
        self.runtime = Runtime(
            settings=settings,
            paths=paths,
            ports=DOCKER_PORTS,
            proxy_command=["configurable-http-proxy"],
            python=IMAGE_INTERPRETER,
            run_as=None,
            secrets=dict(self.credentials.values),
            hosts=Hosts(
                listen="0.0.0.0", hub=self.names.hub, gateway=self.names.gateway, db=self.names.db
            ),
        )
        write_runtime(run_dir / "runtime.json", self.runtime)
        variables = self.variables(socket_path)
        self.stack = parse_compose(
            self.compose_file.read_text(), variables, settings.docker.publish
        )
        return self.runtime

    def _hold_lock(self, path: Path) -> None:
        """Be the one supervisor of this state folder, or raise naming the one that is."""
        if self.lock_fd is not None:
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise EnvironmentProblem(
                f"another `statbox up` (pid {holder}) supervises {self.state_dir} "
                f"(project {self.names.project!r}): stop it first (Ctrl-C or SIGTERM), "
                "or use another state folder"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.lock_fd = fd

    def _check_running(self) -> None:
        """Running services of this project: taken back if this state folder's ``statbox
        up`` started them (and it is gone: we hold its lock), refused otherwise."""
        running = self.client.containers.list(
            filters={"label": f"{PROJECT_LABEL}={self.names.project}"}
        )
        stack_names = {self.names.hub, self.names.proxy, self.names.gateway, self.names.db}
        found = sorted(c.name for c in running if c.name in stack_names)
        foreign = [
            c.name
            for c in running
            if c.name in stack_names and c.labels.get(SUPERVISOR_LABEL) != str(self.state_dir)
        ]
        if foreign:
            raise EnvironmentProblem(
                f"a stack of project {self.names.project!r} is already running "
                f"({', '.join(sorted(foreign))}), not started by `statbox up` with state folder "
                f"{self.state_dir}: stop it first, or choose another docker.project"
            )
        if found:
            self.leftovers = [
                f"Taking back {', '.join(found)}: left running by a `statbox up` of "
                f"{self.state_dir} that ended without stopping them. Users' containers are "
                "kept as they are."
            ]

    def variables(self, socket_path: str) -> dict[str, str]:
        """Every ``${...}`` compose.yaml uses, from the settings, paths and secrets."""
        assert self.runtime is not None and self.credentials is not None
        settings, paths = self.loaded.settings, self.loaded.paths
        env = self.credentials.environment()
        return {
            "STATBOX_PROJECT": self.names.project,
            "STATBOX_HUB_IMAGE": settings.docker.hub_image,
            "STATBOX_GATEWAY_IMAGE": settings.docker.gateway_image,
            "STATBOX_POSTGRES_IMAGE": settings.docker.postgres_image,
            "STATBOX_STATE_DIR": str(self.state_dir),
            "STATBOX_CATALOG_DIR": str(paths.catalog.parent),
            CURRICULUM_ENV: str(paths.curriculum),
            "STATBOX_INDICATORS": str(paths.indicators),
            DATA_ROOT_ENV: str(paths.data_root),
            "STATBOX_DOCKER_SOCKET": socket_path,
            "STATBOX_DOCKER_GID": str(os.stat(socket_path).st_gid),
            "STATBOX_HUB_IP": settings.hub.ip,
            "STATBOX_HUB_PORT": str(settings.hub.port),
            **self._dask_cgroup_variables(),
            **{name: env[name] for name in sorted(env)},
        }

    def _dask_cgroup_variables(self) -> dict[str, str]:
        assert self.dask_cgroups is not None
        bases = self.dask_cgroups.bases
        # Without a cpu controller (rare) the pids folder stands in: no CPU cap, nothing else.
        return {
            variable: str(bases.get(controller, bases["pids"]))
            for controller, variable in DASK_CGROUP_VARIABLES.items()
        }

    def write_compose_env(self) -> Path:
        """The variables as an env file for ``docker compose`` (mode 0600: it holds secrets)."""
        file = self.state_dir / "run" / "compose.env"
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            for name, value in self.variables(engine_socket()).items():
                out.write(f"{name}={value}\n")
        return file

    def _images_needed(self) -> list[str]:
        return images_needed(self.loaded.settings)

    @staticmethod
    def _exists(collection: Any, name: str) -> bool:
        import docker

        try:
            collection.get(name)
        except docker.errors.NotFound:
            return False
        return True

    # ------------------------------------------------------------------------ running

    def start(self) -> None:
        """Create networks and volumes, start db, gateway and hub; undo everything on failure."""
        if self.stack is None:
            self.prepare()
        assert self.stack is not None
        began = time.monotonic()
        try:
            self._ensure_networks()
            self._ensure_volumes()
            # In waves: each service once those it depends on answer, those of one wave side
            # by side (db, gateway and proxy, then the hub): a start after a power loss
            # creates them all, and one after another took 27 s under load.
            pending = list(self.stack.services)
            ready: set[str] = set()
            while pending:
                wave = [s for s in pending if set(s.depends_on) <= ready]
                launched = [s for s in wave if not self._take_back(s)]
                for service in launched:
                    self._launch(service)
                    # After a power loss the users' networks are still there: a service
                    # created anew joins them again, or the servers the hub takes back
                    # cannot reach it.
                    self._rejoin_user_networks(service)
                for service in launched:
                    self._settle(service)
                    self.say(f"The {service.key} answers ({time.monotonic() - began:.1f} s).")
                ready.update(s.key for s in wave)
                pending = [s for s in pending if s not in wave]
        except BaseException:
            if self.leftovers:
                # Taking back a running stack failed: its users' servers are not ours to end.
                self.keep_user_containers = True
            self.stop()
            raise

    def _take_back(self, service: Service) -> bool:
        """Keep ``service``'s container if it runs with the same settings (a stack left
        running by a killed ``statbox up``); False: it must be created."""
        import docker

        try:
            container = self.client.containers.get(service.name)
        except docker.errors.NotFound:
            return False
        if container.status != "running":
            return False
        if container.labels.get(SPEC_LABEL) != spec_digest(service):
            self.say(f"The {service.key} runs with other settings: creating it anew.")
            return False
        self.started.append(service.name)
        self._wait_ready(service, container.attrs["RestartCount"])
        self.say(f"The {service.key} is taken back as it runs.")
        return True

    def _labels(self) -> dict[str, str]:
        return {PROJECT_LABEL: self.names.project, SUPERVISOR_LABEL: str(self.state_dir)}

    def _ensure_networks(self) -> None:
        assert self.stack is not None
        subnet = self.loaded.settings.docker.subnet
        for key, spec in self.stack.networks.items():
            name = spec["name"]
            existing = self.client.networks.list(names=[name])
            existing = [net for net in existing if net.name == name]
            if existing:
                network = existing[0]
                if bool(network.attrs.get("Internal")) != bool(spec.get("internal")):
                    raise EnvironmentProblem(
                        f"network {name} exists with internal={network.attrs.get('Internal')}; "
                        "remove it (docker network rm) so statbox can create it"
                    )
                labels = network.attrs.get("Labels") or {}
                if labels.get(SUPERVISOR_LABEL) == str(self.state_dir):
                    # Created by a `statbox up` of this state that did not stop: ours to remove.
                    self.created_networks.append(name)
                continue
            import docker

            ipam = None
            if key == "private" and subnet:
                ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
            self.client.networks.create(
                name, driver="bridge", internal=bool(spec.get("internal")), labels=self._labels(),
                ipam=ipam, check_duplicate=True,
            )  # fmt: skip
            self.created_networks.append(name)

    def _ensure_volumes(self) -> None:
        assert self.stack is not None
        for name in self.stack.volumes.values():
            if not self._exists(self.client.volumes, name):
                self.client.volumes.create(name=name, labels=self._labels())

    def _start_service(self, service: Service) -> None:
        self._launch(service)
        self._settle(service)

    def _launch(self, service: Service) -> None:
        """Create and start a service's container (an old one of that name is removed)."""
        import docker

        with contextlib.suppress(docker.errors.NotFound):
            # A stopped leftover of an earlier run: its volumes hold the state, not it.
            self.client.containers.get(service.name).remove(force=True)
        first, *others = service.networks
        endpoint = None
        if service.aliases.get(first):
            endpoint = {
                first: self.client.api.create_endpoint_config(aliases=service.aliases[first])
            }
        container = self.client.containers.create(
            service.image,
            command=service.command,
            name=service.name,
            hostname=service.key,
            environment=service.environment,
            volumes=service.binds,
            ports=service.ports or None,
            labels={**self._labels(), SPEC_LABEL: spec_digest(service)},
            network=first,
            networking_config=endpoint,
            user=service.user,
            **service.host_config,
        )
        for network in others:
            self.client.networks.get(network).connect(
                container, aliases=service.aliases.get(network)
            )
        container.start()
        self.started.append(service.name)

    def _settle(self, service: Service) -> None:
        """Wait until a service just started answers (and check the hub's database)."""
        self._wait_ready(service)
        check_hub_database(
            service.key, self.state_dir, lambda: self.client.containers.get(self.names.db)
        )

    def _bring_back(self, service: Service) -> None:
        """Start a stopped service again, in its own container (which keeps the users'
        networks the hub and gateway joined); create it again if it is gone."""
        import docker

        try:
            container = self.client.containers.get(service.name)
        except docker.errors.NotFound:
            self._start_service(service)
            self._rejoin_user_networks(service)
            return
        restarts = container.attrs["RestartCount"]
        container.start()
        self._wait_ready(service, restarts)

    def _rejoin_user_networks(self, service: Service) -> None:
        if service.key not in SHARED_SERVICES:
            return
        import docker

        for network in self.user_networks():
            with contextlib.suppress(docker.errors.APIError):
                network.connect(service.name)

    def container_ip(self, name: str) -> str:
        """The container's address on the private network (the database's: on its own)."""
        networks = self.client.containers.get(name).attrs["NetworkSettings"]["Networks"]
        network = networks.get(self.names.network) or networks[self.names.db_network]
        return str(network["IPAddress"])

    @property
    def url(self) -> str:
        return self.hub_url + "/"

    @property
    def hub_url(self) -> str:
        """The hub as this host reaches it: the proxy's published port, else the proxy's
        private address."""
        settings = self.loaded.settings
        if settings.docker.publish:
            host = "127.0.0.1" if settings.hub.ip in ("0.0.0.0", "") else settings.hub.ip
            return f"http://{host}:{settings.hub.port}"
        return f"http://{self.container_ip(self.names.proxy)}:{DOCKER_PORTS.public}"

    def _wait_ready(self, service: Service, restarts: int = 0) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            container = self.client.containers.get(service.name)
            # A restart policy would hide a crash at start: one restart counts as a failure.
            if container.status in ("exited", "dead") or container.attrs["RestartCount"] > restarts:
                raise StatboxError(
                    f"the {service.key} container exited with code "
                    f"{container.attrs['State']['ExitCode']} while starting. Its last lines:",
                    *self.log_tail(service.name),
                )
            if self._answers(service):
                return
            time.sleep(0.3)
        raise StatboxError(
            f"the {service.key} container did not become ready within {self.start_timeout:.0f} s. "
            "Its last lines:",
            *self.log_tail(service.name),
        )

    def _answers(self, service: Service) -> bool:
        ip = self.container_ip(service.name)
        if service.key == "db":
            with contextlib.suppress(OSError), socket.create_connection((ip, 5432), timeout=1):
                result = self.client.containers.get(service.name).exec_run(
                    ["pg_isready", "--quiet", "--host=127.0.0.1"]
                )
                return bool(result.exit_code == 0)
            return False
        if service.key == "proxy":
            # Listening is ready: its routes are the hub's to add.
            with (
                contextlib.suppress(OSError),
                socket.create_connection((ip, DOCKER_PORTS.public), timeout=1),
            ):
                return True
            return False
        if service.key == "hub":
            # Through the proxy: the hub adds its route there (compose.yaml gives the proxy
            # no default) with its services' once they are up, the end of its start.
            ip = self.container_ip(self.names.proxy)
        url = {
            "gateway": f"http://{ip}:{DOCKER_PORTS.gateway_http}{GATEWAY_PREFIX}/api/health",
            "hub": f"http://{ip}:{DOCKER_PORTS.public}/hub/health",
        }[service.key]
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=2) as response,
        ):
            return bool(response.status == 200)
        return False

    def log_tail(self, name: str, lines: int = 20) -> list[str]:
        import docker

        try:
            text = self.client.containers.get(name).logs(tail=lines).decode(errors="replace")
        except docker.errors.NotFound:
            return []
        return ["  " + line for line in text.splitlines()]

    def user_containers(self) -> list[Any]:
        """Every user container of this project (running or not)."""
        return [
            c
            for c in self.client.containers.list(
                all=True, filters={"label": f"{PROJECT_LABEL}={self.names.project}"}
            )
            if USER_LABEL in c.labels
        ]

    def user_networks(self) -> list[Any]:
        """Every user's network of this project (statbox.spawners.docker makes them)."""
        return [
            n
            for n in self.client.networks.list(
                filters={"label": f"{PROJECT_LABEL}={self.names.project}"}
            )
            if USER_LABEL in (n.attrs.get("Labels") or {})
        ]

    def stop(self, timeout: int = 20) -> None:
        """Stop hub, gateway, db and (unless :attr:`keep_user_containers`) every user
        container and user network; remove them and the networks this run created."""
        import docker

        if self.client is None:
            return
        order = [self.names.hub, self.names.proxy, self.names.gateway, self.names.db]
        for name in order:
            # 409: the engine is already removing it (a stop racing a failed start).
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                container = self.client.containers.get(name)
                container.stop(timeout=timeout)
                self._save_log(name, container)
                container.remove(force=True)
        self._remove_dask_cgroups()
        if self.keep_user_containers:
            self.say("User containers are left running: the next `statbox up` takes them back.")
        else:
            for container in self.user_containers():
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    container.remove(force=True)
            for network in self.user_networks():
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    network.remove()
        for name in self.created_networks:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                self.client.networks.get(name).remove()
        self.created_networks.clear()
        self.started.clear()

    def _remove_dask_cgroups(self) -> None:
        """Remove the clusters' groups (their processes ended with the gateway's container)
        and the folder holding them."""
        tree = self.dask_cgroups
        if tree is None:
            return
        names: set[str] = set()
        for base in set(tree.bases.values()):
            with contextlib.suppress(OSError):
                names.update(child.name for child in base.iterdir() if child.is_dir())
        for name in sorted(names):
            directories = {c: base / name for c, base in tree.bases.items()}
            Cgroup(tree.version, {c: d for c, d in directories.items() if d.is_dir()}).remove()
        tree.remove()

    def _save_log(self, name: str, container: Any) -> None:
        with contextlib.suppress(Exception):
            log = self.state_dir / "logs" / f"{name}.log"
            log.write_bytes(container.logs())

    def wait(self, poll: float = 1.0) -> str:
        """Supervise the stack: start again any service that stopped, until one cannot be
        brought back :data:`RESTART_TRIES` times in a row; return its name.

        Docker's restart policy restarts a crashed container, but not one stopped by
        ``docker kill`` or ``docker stop`` (a manual stop to Docker): this does. User
        containers are never touched here; if the supervisor gives up, the stop that follows
        leaves them running.
        """
        import docker

        assert self.stack is not None
        failures = {service.key: 0 for service in self.stack.services}
        while True:
            for service in self.stack.services:
                with contextlib.suppress(docker.errors.NotFound):
                    status = self.client.containers.get(service.name).status
                    if status in ("running", "restarting"):  # restarting: Docker's own policy
                        continue
                self.say(f"The {service.key} stopped; starting it again.")
                try:
                    self._bring_back(service)
                    failures[service.key] = 0
                    self.say(f"The {service.key} is back.")
                except (StatboxError, docker.errors.APIError) as exc:
                    failures[service.key] += 1
                    self.say(f"The {service.key} did not come back: {exc}")
                    if failures[service.key] >= RESTART_TRIES:
                        self.keep_user_containers = True
                        return service.name
            with contextlib.suppress(docker.errors.APIError):
                self.keep_routes()
            time.sleep(poll)

    def keep_routes(self) -> None:
        """Read the proxy's routes; if the proxy started since the last read (killed and
        started again, here or by Docker's restart policy), first give it those routes back.

        The hub would add them too, but only at its next route check (every
        ``PROXY_ROUTES_CHECK_SECONDS``): until then every user's server is unreachable. A
        route restored that the hub has since dropped (a server stopped meanwhile) is removed
        again by that check.
        """
        import docker

        try:
            container = self.client.containers.get(self.names.proxy)
        except docker.errors.NotFound:
            return
        if container.status != "running":
            return
        started = (container.id, container.attrs["State"]["StartedAt"])
        if self.routes and self.routes_of != started:
            if not self._restore_routes(self.routes):
                return  # not listening yet: again at the next poll, with the same copy
            self.say(f"The proxy has its {len(self.routes)} routes back.")
        routes = self._proxy_api("GET", "")
        if isinstance(routes, dict):
            self.routes, self.routes_of = routes, started

    def _restore_routes(self, routes: dict[str, dict[str, Any]]) -> bool:
        current = self._proxy_api("GET", "")
        if not isinstance(current, dict):
            return False
        for path, route in routes.items():
            if path not in current:
                # last_activity is the proxy's own to keep; the rest is the hub's data.
                body = {key: value for key, value in route.items() if key != "last_activity"}
                if self._proxy_api("POST", path, body) is None:
                    return False
        return True

    def _proxy_api(self, method: str, path: str, body: Any = None) -> Any:
        """A call to the proxy's API (on its private address); None if it does not answer
        (gone, not yet on its network, not listening, or no JSON: the supervisor goes on)."""
        import docker

        assert self.runtime is not None
        try:
            ip = self.container_ip(self.names.proxy)
        except (KeyError, docker.errors.NotFound):
            return None
        request = urllib.request.Request(
            f"http://{ip}:{DOCKER_PORTS.proxy_api}/api/routes{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.runtime.secret('proxy_auth_token')}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                text = response.read()
            return json.loads(text) if text.strip() else {}
        except (OSError, ValueError):  # URLError is an OSError
            return None

    @contextlib.contextmanager
    def running(self) -> Iterator[DockerStack]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
