"""Local mode's Dask clusters: each user's scheduler and workers in that user's sandbox.

Dask Gateway's ``LocalBackend`` wants a system account per user and its ``UnsafeLocalBackend``
runs every cluster as the gateway itself, where one user's Dask code could read the gateway's
secrets and other users' cluster keys. :class:`SandboxedLocalBackend` (the gateway runs as
root) starts every scheduler and worker in :class:`statbox.sandbox.Sandbox` under the user's
own uid (the one their server has: :func:`statbox.sandbox.accounts.registry_path`), seeing the
interpreter, the datasets their role is entitled to (read-only, each on its own) and the
cluster's working folder, which alone holds the cluster's TLS key (0600, owned by that uid).

Invariants:

* A cluster's processes are in one control group capped from the user's request within their
  role (workers x (worker memory + nanny), cores, processes); each worker and the scheduler
  in a group of its own inside it, so stopping one kills exactly it, and stopping the cluster
  kills everything it started.
* Schedulers and workers are stored with their start time and control group
  (:class:`~statbox.sandbox.records.RecordedProcessesBackend`): after a restart of the gateway,
  a stored pid now held by another process is never signalled.
* The gateway itself (and its proxy) runs in a capped group of its own (:meth:`setup`), beside
  the clusters' groups, not above them: a cluster's memory is never counted against it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
from dask_gateway_server.backends.local import LocalBackend, LocalClusterConfig
from dask_gateway_server.traitlets import Type
from traitlets import Integer, List, Unicode

from statbox.sandbox import Cgroup, CgroupTree, ResourceCaps, Sandbox, interpreter_paths
from statbox.sandbox.accounts import UidRegistry
from statbox.sandbox.records import RecordedProcessesBackend

MiB = 1024**2
TMP_SIZE = 256 * MiB
"""Each scheduler's and worker's private /tmp (memory, counted against its group)."""

UPSTREAM_PRELOAD = "dask_gateway.scheduler_preload"
PROMPT_PRELOAD = "statbox.spawners.gateway_preload"
DEFERRED_DASHBOARD_ENV = "STATBOX_DASK_DASHBOARD_DEFERRED"
"""Tells :data:`PROMPT_PRELOAD` to serve the dashboard once the scheduler is reported (spelt
there too: importing that module in the gateway would patch upstream's preload there)."""

FORKED_WORKER_ENV = {
    "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD": "fork",
    # What the nanny sets before it spawns its worker (distributed.yaml's
    # distributed.nanny.pre-spawn-environ, and the hash seed Nanny adds so that every
    # worker hashes strings alike): a forked worker inherits the nanny's environment and
    # interpreter instead, so they are the nanny's from its start.
    "MALLOC_TRIM_THRESHOLD_": "65536",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "PYTHONHASHSEED": "6640",
}
"""A worker's environment: its nanny forks the worker process rather than spawning a new
interpreter that imports distributed all over again (about half of a worker's start,
bench/dask.py). The nanny stays: it restarts a worker killed at its memory cap and on
``client.restart()``, forking again."""


class SandboxedClusterConfig(LocalClusterConfig):
    """A cluster's configuration, plus the dataset folders its user may read."""

    data_paths = List(
        Unicode(), config=True, help="Dataset folders bound read-only into the cluster."
    )


class SandboxedLocalBackend(RecordedProcessesBackend, LocalBackend):
    """Local processes, each user's in their own sandbox under their own uid."""

    cluster_config_class = Type(
        "statbox.spawners.local_dask.SandboxedClusterConfig",
        klass="dask_gateway_server.backends.base.ClusterConfig",
        config=True,
        help="A cluster's configuration: a local one, plus its user's dataset folders.",
    )

    uid_registry = Unicode(config=True, help="The uid registry the hub's spawner uses too.")
    cgroup_tree = Unicode("statbox-dask", config=True, help="Control-group folder of clusters.")
    scheduler_memory = Integer(1024 * MiB, config=True, help="Memory cap of each scheduler.")
    nanny_memory = Integer(
        256 * MiB, config=True, help="Memory each worker may use beyond its Dask memory limit."
    )
    processes_per_process = Integer(
        256, config=True, help="Processes and threads each scheduler or worker may run."
    )
    gateway_memory = Integer(1024 * MiB, config=True, help="Memory cap of the gateway itself.")
    gateway_processes = Integer(512, config=True, help="Process cap of the gateway itself.")

    _tree: CgroupTree | None = None
    _members: dict[int, Cgroup]

    async def setup(self, app: Any) -> None:
        self._members = {}
        if os.geteuid() == 0:
            # Detected before the gateway leaves its start-up group: clusters' groups are
            # siblings of the gateway's, not inside it.
            self._tree = CgroupTree.detect(self.cgroup_tree)
        if self._tree is None:
            self.log.warning("No writable cgroups: Dask clusters and the gateway run uncapped")
        else:
            own = self._tree.group(
                "gateway",
                ResourceCaps(memory=self.gateway_memory, processes=self.gateway_processes),
            )
            me = psutil.Process()
            for pid in [me.pid, *(child.pid for child in me.children(recursive=True))]:
                for procs in own.procs_files:
                    procs.write_text(str(pid))
        await super().setup(app)

    def group_of(self, pid: int) -> Cgroup | None:
        return self._members.get(pid)

    def uid_for(self, username: str) -> int | None:
        if os.geteuid() != 0:
            return None
        return UidRegistry(Path(self.uid_registry)).uid(username)

    def set_file_permissions(self, paths: list[str], username: str) -> None:
        """The cluster's folder and TLS files to the user's uid, readable by it alone.

        Upstream passes the folders and then, by a slip (``paths.extend`` of a string), the
        single characters of the key's path, ``"/"`` among them: only absolute paths inside
        the clusters directory are taken, walked, and handed over.
        """
        uid = self.uid_for(username)
        if uid is None:
            return
        root = os.path.realpath(self.clusters_directory) + os.sep
        tops = {p for p in paths if os.path.isabs(p) and os.path.realpath(p).startswith(root)}
        for top in sorted(tops):
            for directory, _, files in os.walk(top):
                os.chown(directory, uid, uid)
                os.chmod(directory, 0o700)
                for name in files:
                    os.chown(os.path.join(directory, name), uid, uid)

    def setup_working_directory(self, cluster: Any) -> str:
        # The clusters' folder: root's, traversable (each cluster's own folder is 0700).
        Path(self.clusters_directory).mkdir(mode=0o711, parents=True, exist_ok=True)
        os.chmod(self.clusters_directory, 0o711)
        return str(super().setup_working_directory(cluster))

    def make_preexec_fn(self, cluster: Any) -> None:
        return None  # the sandbox sets uid, groups and folder

    def get_env(self, cluster: Any) -> dict[str, str]:
        # The user's uid has no account here: without HOME, Path.home() raises, and the
        # scheduler's dashboard (Bokeh reads ~/.bokeh at import) takes the scheduler down.
        env: dict[str, str] = super().get_env(cluster)
        env["HOME"] = cluster.state["workdir"]
        return env

    def get_worker_env(self, cluster: Any) -> dict[str, str]:
        env: dict[str, str] = super().get_worker_env(cluster)
        env.update(FORKED_WORKER_ENV)
        return env

    def get_scheduler_command(self, cluster: Any) -> list[str]:
        """Upstream's, with its preload replaced by one that reports the scheduler to the
        gateway as soon as it listens and only then imports and serves the dashboard
        (:mod:`statbox.spawners.gateway_preload`; its web server, on the same address,
        starts at once)."""
        command: list[str] = super().get_scheduler_command(cluster)
        command = [PROMPT_PRELOAD if arg == UPSTREAM_PRELOAD else arg for arg in command]
        return [*command, "--no-dashboard"]

    def get_scheduler_env(self, cluster: Any) -> dict[str, str]:
        env: dict[str, str] = super().get_scheduler_env(cluster)
        env[DEFERRED_DASHBOARD_ENV] = "1"
        return env

    def _cluster_group(self, cluster: Any) -> Cgroup | None:
        if self._tree is None:
            return None
        config = cluster.config
        workers = int(config.cluster_max_workers or 1)
        member = config.worker_memory + self.nanny_memory
        return self._tree.group(
            cluster.name,
            ResourceCaps(
                memory=workers * member + self.scheduler_memory,
                cpu=workers * float(config.worker_cores) + 1,
                processes=(workers + 1) * self.processes_per_process,
            ),
        )

    def _member_group(self, cluster: Any, name: str) -> Cgroup | None:
        group = self._cluster_group(cluster)
        if group is None or self._tree is None:
            return None
        config = cluster.config
        memory = (
            self.scheduler_memory
            if name == "scheduler"
            else config.worker_memory + self.nanny_memory
        )
        return self._tree.within(group).group(
            name, ResourceCaps(memory=memory, processes=self.processes_per_process)
        )

    async def start_process(self, cluster: Any, cmd: list[str], env: dict, name: str) -> int:
        workdir = Path(cluster.state["workdir"])
        box = Sandbox(
            argv=list(cmd),
            uid=self.uid_for(cluster.username),
            env=env,
            inherit_env=True,
            cwd=workdir,
            network=True,  # workers and clients reach the scheduler through the gateway
            cgroup=self._member_group(cluster, name),
        )
        data = [Path(p) for p in getattr(cluster.config, "data_paths", []) if Path(p).is_dir()]
        box.bind_read_only(*interpreter_paths(), *data)
        box.bind_read_write(workdir)
        box.tmpfs[Path("/tmp")] = TMP_SIZE
        box.tmpfs[Path("/dev/shm")] = TMP_SIZE  # multiprocessing's locks (Dask's nanny)
        log_path = Path(self.get_logs_directory(str(workdir))) / f"{name}.log"
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.chown(log_path, box.uid or os.getuid(), box.uid or os.getgid())
            proc = await asyncio.create_subprocess_exec(
                *box.command(),
                start_new_session=True,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=fd,
                stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            os.close(fd)
        if box.cgroup is not None:
            self._members[proc.pid] = box.cgroup
        return int(proc.pid)

    async def stop_process(self, pid: int) -> None:
        """SIGTERM to all of the process's group, then kill and remove the group."""
        group = self._members.pop(pid, None)
        if group is None:
            record = self._recorded().pop(pid, None)
            if record is not None and record.cgroup is None:
                # No control group (not root): the sandbox's whole tree, not bwrap's process
                # alone (whose end would leave the scheduler or worker running).
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, record.stop_tree, self.sigterm_timeout)
                return
            if record is not None:
                self._recorded()[pid] = record
            await super().stop_process(pid)  # started by an earlier gateway: by its record
            return
        self._recorded().pop(pid, None)
        group.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.sigterm_timeout
        while time.monotonic() < deadline and group.pids():
            await asyncio.sleep(0.1)
        await asyncio.get_running_loop().run_in_executor(None, group.remove)

    async def do_stop_cluster(self, cluster: Any) -> None:
        await super().do_stop_cluster(cluster)
        if self._tree is not None:
            group = self._tree.existing(cluster.name)
            if group is not None:
                self._tree.within(group).clear()
                await asyncio.get_running_loop().run_in_executor(None, group.remove)
