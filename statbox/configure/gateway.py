"""Settings onto Dask Gateway's traitlets, and the per-role cluster options.

Invariant, as for the hub: :func:`configure_gateway` only sets values on ``c``. The options a
user may choose, and the limits a cluster gets, come from the user's role as
:func:`statbox.identity.roles.resolve_role` decides it from the groups JupyterHub reports.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from dask_gateway_server.auth import JupyterHubAuthenticator, unauthorized
from dask_gateway_server.backends.local import LocalBackend
from dask_gateway_server.models import User
from dask_gateway_server.options import Float, Integer, Options
from traitlets import Integer as IntegerTrait
from traitlets import Unicode

from statbox.catalog.access import entitled_data_paths
from statbox.configure.hub import GATEWAY_PREFIX, GATEWAY_SERVICE
from statbox.configure.runtime import Runtime
from statbox.contract import DockerNames, is_data_url
from statbox.identity.roles import role_settings
from statbox.sandbox.accounts import registry_path
from statbox.sandbox.cgroups import Cgroup, CgroupTree, ResourceCaps
from statbox.sandbox.records import RecordedProcessesBackend
from statbox.settings.model import Mode, Role, Settings

GIB = 1024**3


class HubAdminAwareUser(User):
    """A gateway user whom the hub calls an admin may reach (view, scale, stop) any cluster by
    name, as the admin role may everything; everyone else, only their own clusters."""

    def has_permissions(self, cluster: Any) -> bool:
        return self.admin or bool(super().has_permissions(cluster))


class HubTokenAuthenticator(JupyterHubAuthenticator):
    """Dask Gateway's JupyterHub authentication, answering 401 to a token the hub rejects.

    The gateway checks a user's token by calling the hub's ``/hub/api/user`` *with that
    token*. JupyterHub answers 403 to a token it does not know (forged, expired, revoked),
    which upstream turns into a 500 "Permission failure"; a refused credential is a 401.
    """

    async def authenticate(self, request: Any) -> Any:
        try:
            user = await super().authenticate(request)
            return HubAdminAwareUser(user.name, user.groups, user.admin)
        except web.HTTPInternalServerError as exc:
            if "verifying user's JupyterHub API token" in (exc.reason or ""):
                self.log.info("Refused a token the hub does not accept")
                raise unauthorized("jupyterhub") from None
            raise


def cluster_options_for(
    settings: Settings, per_user: Callable[[Any], dict[str, Any]] | None = None
) -> Callable[[Any], Options]:
    """``c.Backend.cluster_options``: the options form of each user, bounded by their role.

    ``per_user(user)``, when given, adds backend configuration to every cluster of that user
    (kubernetes mode: the user's label on the cluster's pods).
    """

    def cluster_options(user: Any) -> Options:
        extra = per_user(user) if per_user is not None else {}
        _, role = role_settings(settings, user.name, user.groups)
        limits = role.dask
        max_cores = max(1, math.floor(limits.max_worker_cores))
        max_memory = limits.max_worker_memory / GIB
        return Options(
            Integer("worker_cores", default=1, min=1, max=max_cores, label="Worker cores"),
            Float(
                "worker_memory",
                default=min(1.0, max_memory),
                min=0.25,
                max=max_memory,
                label="Worker memory (GiB)",
            ),
            handler=lambda options: {
                **cluster_limits(role, options.worker_cores, options.worker_memory),
                **extra,
            },
        )

    return cluster_options


def cluster_limits(role: Role, worker_cores: int, worker_memory_gib: float) -> dict[str, Any]:
    """Cluster configuration for a validated request: the user's sizes, the role's caps."""
    limits = role.dask
    return {
        "worker_cores": worker_cores,
        "worker_memory": int(worker_memory_gib * GIB),
        "cluster_max_workers": limits.max_workers,
        "idle_timeout": float(limits.idle_timeout),
    }


def configure_gateway(c: Any, rt: Runtime) -> None:
    """Set every Dask Gateway traitlet Statbox decides on ``c`` from the runtime ``rt``."""
    state = rt.paths.state_dir / "gateway"
    c.DaskGateway.address = f"127.0.0.1:{rt.ports.gateway_api}"
    c.Proxy.address = f"{rt.hosts.listen}:{rt.ports.gateway_http}"
    c.Proxy.tcp_address = f"{rt.hosts.listen}:{rt.ports.gateway_tcp}"
    c.Proxy.prefix = GATEWAY_PREFIX

    c.DaskGateway.authenticator_class = "statbox.configure.gateway.HubTokenAuthenticator"
    c.JupyterHubAuthenticator.jupyterhub_api_url = rt.hub_api_url
    c.JupyterHubAuthenticator.jupyterhub_api_token = rt.secret("gateway_token")
    # Without the service name, JupyterHubAuthenticator accepts any hub token.
    c.JupyterHubAuthenticator.jupyterhub_service_name = GATEWAY_SERVICE

    # Unsafe by upstream's name: clusters run as the gateway's account. Local mode replaces
    # it below (_configure_local_gateway), docker mode too.
    c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
    c.LocalBackend.clusters_directory = str(state / "clusters")
    c.DBBackendBase.db_url = f"sqlite:///{state / 'gateway.sqlite'}"
    c.DBBackendBase.db_encrypt_keys = [rt.secret("gateway_encrypt_key")]
    # Clusters outlive the gateway: a restarted gateway takes them back from its database
    # (on disk, encrypted with a kept key). The stack's final stop stops them itself.
    c.DBBackendBase.stop_clusters_on_shutdown = False

    dask = str(rt.bin_dir / "dask")
    c.ClusterConfig.scheduler_cmd = [dask, "scheduler"]
    # No worker serves a dashboard: none is proxied to its owner, and on a shared network
    # namespace it would answer anyone (upstream gives each a random port).
    c.ClusterConfig.worker_cmd = [dask, "worker", "--no-dashboard"]
    c.ClusterConfig.idle_timeout = float(
        rt.settings.role(rt.settings.default_role).dask.idle_timeout
    )
    c.Backend.cluster_options = cluster_options_for(rt.settings)
    if rt.settings.mode in SHARED_NETWORK_MODES:
        _configure_shared_network_addresses(c, rt)
    if rt.settings.mode is Mode.docker:
        _configure_docker_gateway(c, rt)
    if rt.settings.mode is Mode.local:
        _configure_local_gateway(c, rt)


SHARED_NETWORK_MODES = (Mode.local, Mode.docker)
"""Modes where every user's clusters share the gateway's network namespace (the host's, the
gateway container's): there a firewall keyed on uids keeps users off the dashboards
(:mod:`statbox.dashboards.firewall`). On Kubernetes each scheduler and worker is a pod,
and network policies do that (the chart)."""


def _configure_local_gateway(c: Any, rt: Runtime) -> None:
    """Local mode: each user's clusters in their own sandbox, under the uid their server has,
    in a control group per cluster, seeing the datasets their role is entitled to
    (statbox.spawners.local_dask)."""
    c.DaskGateway.backend_class = "statbox.spawners.local_dask.SandboxedLocalBackend"
    c.SandboxedLocalBackend.uid_registry = str(registry_path(rt.paths.state_dir))
    # one tree per stack (named for the hub's port, as the servers' tree)
    c.SandboxedLocalBackend.cgroup_tree = f"statbox-dask-{rt.ports.public}"
    settings, catalog, data_root = rt.settings, rt.paths.catalog, str(rt.paths.data_root)

    def data_paths(user: Any) -> dict[str, Any]:
        if is_data_url(data_root):
            return {}
        role, _ = role_settings(settings, user.name, user.groups)
        relative = entitled_data_paths(settings, role, list(user.groups), catalog)
        return {"data_paths": [os.path.join(data_root, p) for p in relative]}

    c.Backend.cluster_options = cluster_options_for(settings, per_user=data_paths)


def _configure_shared_network_addresses(c: Any, rt: Runtime) -> None:
    """Users' uids may not reach the gateway's HTTP proxy nor the schedulers' dashboards
    (:mod:`statbox.dashboards.firewall`); so schedulers serve their dashboards on the
    reserved ports (:mod:`statbox.dashboards.scheduler`), and report to the gateway's
    internal API on loopback, which works whatever uid a cluster runs under."""
    c.ClusterConfig.scheduler_cmd = [rt.python, "-m", "statbox.dashboards.scheduler"]
    c.DBBackendBase.api_url = f"http://127.0.0.1:{rt.ports.gateway_api}/api"


DOCKER_GATEWAY_STATE = "/var/lib/dask-gateway"
"""The gateway container's own volume: its database and the clusters' working folders."""
DOCKER_CLUSTER_CGROUPS = "/run/statbox/cgroup"
"""Where compose.yaml binds the host's cgroup folders for clusters, one per controller."""


def _configure_docker_gateway(c: Any, rt: Runtime) -> None:
    """The gateway in its container: state on its volume, clusters of each user under a uid
    of their own (see :class:`PerUserAccountBackend`), components talking over loopback."""
    c.DaskGateway.backend_class = "statbox.configure.gateway.PerUserAccountBackend"
    c.LocalBackend.clusters_directory = f"{DOCKER_GATEWAY_STATE}/clusters"
    # In a folder only root (the gateway) may enter: clusters run under other uids.
    c.DBBackendBase.db_url = f"sqlite:///{DOCKER_GATEWAY_STATE}/db/gateway.sqlite"
    # The HTTP side (API, dashboards) on the private network only, by a name that exists
    # there alone (compose.yaml): users' networks reach only the scheduler proxy.
    http = f"{DockerNames(rt.settings.docker.project).gateway_http}:{rt.ports.gateway_http}"
    c.Proxy.address = http
    # Schedulers and workers run beside the gateway in its container, each in a cgroup
    # of its own, capped by the OS (not only by Dask's nanny).
    c.PerUserAccountBackend.cgroup_root = DOCKER_CLUSTER_CGROUPS
    c.PerUserAccountBackend.process_cap = rt.settings.docker.pids_limit


class PerUserAccountBackend(RecordedProcessesBackend, LocalBackend):
    """The local backend, running each user's clusters under a uid of that user's own.

    Upstream's ``LocalBackend`` needs a system account per user; ``UnsafeLocalBackend`` runs
    every cluster as the gateway itself, which would let one user's Dask code read the
    gateway's secrets and other users' cluster keys. Here the gateway (root in its
    container) gives each username a uid from ``first_uid`` on, remembered in
    ``<clusters_directory>/../accounts.json`` (readable by root only), and starts that user's
    schedulers and workers under it with no supplementary groups.
    """

    first_uid = 20000

    cgroup_root = Unicode(
        "",
        config=True,
        help="Folder holding one cgroup folder per controller (memory, pids, cpu; the same "
        "folder three times on cgroup v2). Each scheduler and each worker runs in a group of "
        "its own there, capped at its ClusterConfig size (scheduler_memory/cores, "
        "worker_memory/cores) and at process_cap processes; if the folder is set and not "
        "usable, no cluster starts. Empty: no caps but Dask's own.",
    )
    process_cap = IntegerTrait(
        0, config=True, help="Processes and threads each scheduler or worker may run; 0: no cap."
    )

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._joining: Cgroup | None = None
        self._tree: CgroupTree | None = None
        self._groups: dict[int, Cgroup] = {}  # by the pid upstream keeps

    def cgroup_tree(self) -> CgroupTree | None:
        """The clusters' cgroup folders, or None when none is configured; raises when one is
        configured and unusable (fail closed: a cluster never starts uncapped)."""
        if not self.cgroup_root:
            return None
        if self._tree is None:
            root = Path(self.cgroup_root)
            bases = {
                c: root / c for c in CgroupTree.CONTROLLERS if (root / c / "cgroup.procs").is_file()
            }
            if not {"memory", "pids"} <= set(bases):
                raise RuntimeError(
                    f"{root}: no memory and pids cgroup folders; clusters are not started uncapped"
                )
            version = 2 if (bases["memory"] / "cgroup.controllers").is_file() else 1
            self._tree = CgroupTree(version, bases)
            # Groups of an earlier gateway's processes (gone with its container): only an
            # empty group can be removed, so a live one is never touched.
            for base in set(bases.values()):
                for child in base.iterdir():
                    if child.is_dir():
                        with contextlib.suppress(OSError):
                            child.rmdir()
        return self._tree

    def _group_for(self, cluster: Any, name: str) -> Cgroup | None:
        tree = self.cgroup_tree()
        if tree is None:
            return None
        config = cluster.config
        if name == "scheduler":
            memory, cores = config.scheduler_memory, config.scheduler_cores
        else:
            memory, cores = config.worker_memory, config.worker_cores
        caps = ResourceCaps(
            memory=int(memory), cpu=float(cores), processes=self.process_cap or None
        )
        return tree.group(f"{cluster.name}-{name}", caps)

    async def start_process(
        self, cluster: Any, cmd: list[str], env: dict[str, str], name: str
    ) -> int:
        """Upstream's, with the new process joining its own capped group before it drops to
        the user's uid (in :meth:`make_preexec_fn`)."""
        group = self._group_for(cluster, name)
        # Upstream calls make_preexec_fn before its first await: no other start can run
        # between setting and reading this.
        self._joining = group
        try:
            pid: int = await super().start_process(cluster, cmd, env, name)
        except BaseException:
            if group is not None:
                group.remove()
            raise
        finally:
            self._joining = None
        if group is not None:
            self._groups[pid] = group
        return pid

    async def stop_process(self, pid: int) -> None:
        """Upstream's, then every process left in the group (a detached one too) killed and
        the group removed."""
        await super().stop_process(pid)
        group = self._groups.pop(pid, None)
        if group is not None:
            group.remove()

    def group_of(self, pid: int) -> Cgroup | None:
        return self._groups.get(pid)

    async def do_stop_cluster(self, cluster: Any) -> None:
        """Upstream's; then the scheduler's group, found by its name if it was started by an
        earlier gateway (whose groups this one never held), emptied and removed."""
        await super().do_stop_cluster(cluster)
        self._remove_group(f"{cluster.name}-scheduler")

    async def do_stop_worker(self, worker: Any) -> None:
        await super().do_stop_worker(worker)
        self._remove_group(f"{worker.cluster.name}-worker-{worker.name}")

    def _remove_group(self, name: str) -> None:
        tree = self.cgroup_tree()
        group = tree.existing(name) if tree is not None else None
        if group is not None:
            group.remove()

    def _accounts_file(self) -> Path:
        return Path(self.clusters_directory).parent / "accounts.json"

    def uid_for(self, username: str) -> int:
        file = self._accounts_file()
        accounts: dict[str, int] = json.loads(file.read_text()) if file.exists() else {}
        if username not in accounts:
            accounts[username] = max(accounts.values(), default=self.first_uid - 1) + 1
            file.parent.mkdir(parents=True, exist_ok=True)
            partial = file.with_suffix(".partial")
            partial.write_text(json.dumps(accounts))
            partial.chmod(0o600)
            partial.replace(file)
        return accounts[username]

    def set_file_permissions(self, paths: list[str], username: str) -> None:
        """Give the cluster's working folder, and everything in it, to the user's uid.

        Upstream passes the cluster's folders and then, by a slip (``paths.extend`` of a
        string), the single characters of the key's path, ``"/"`` among them: only absolute
        folders inside the clusters directory are taken, walked, and handed over.
        """
        uid = self.uid_for(username)
        root = os.path.realpath(self.clusters_directory) + os.sep
        tops = {p for p in paths if os.path.isabs(p) and os.path.realpath(p).startswith(root)}
        for top in sorted(tops):
            for directory, _, files in os.walk(top):
                os.chown(directory, uid, uid)
                for name in files:
                    os.chown(os.path.join(directory, name), uid, uid)

    def make_preexec_fn(self, cluster: Any) -> Callable[[], None]:  # pragma: no cover
        uid = self.uid_for(cluster.username)
        workdir = cluster.state["workdir"]
        procs = [str(f) for f in self._joining.procs_files] if self._joining else []

        def preexec() -> None:
            # Into the capped group first, while still root: every process it starts is in it.
            for path in procs:
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.write(fd, str(os.getpid()).encode())
                finally:
                    os.close(fd)
            os.setgid(uid)
            os.setgroups([])
            os.setuid(uid)
            os.chdir(workdir)

        return preexec

    def get_env(self, cluster: Any) -> dict[str, str]:
        env: dict[str, str] = super().get_env(cluster)
        env["HOME"] = cluster.state["workdir"]
        return env
