"""Grading kernels in containers: the ``docker`` isolation backend (``certify.isolation``).

Each submission's kernel runs in a container of its own from the single-user image (the
trainee role's default image: the Python and libraries trainees worked with):

* ``--network none``: no network at all, only the container's own loopback;
* a memory limit (``certify.memory``, no swap beyond it) and a pids limit
  (``certify.processes``); the kernel killed for memory is graded as such;
* as an unprivileged uid: ``uid_base`` + a host-wide leased slot when the grader is root
  (as the sandbox backend), else the grader's own; no capability, ``no-new-privileges``,
  a read-only root file system, ``/tmp`` and the working directory size-limited tmpfs;
* mounts: the job's directory at its own path (connection file, IPC sockets, inputs), its
  copy of the launcher ``_sandbox.py``, the data root and the catalog read-only. Nothing else: no
  Docker socket, no home, no curriculum, no other submission.

The kernel talks to the grader over ZeroMQ's IPC transport through the bind-mounted job
directory (the same socket inode on both sides), so no port is opened anywhere. The
container is made (not started) in :meth:`DockerIsolation.kernel_command`, which returns
the command of a small foreground launcher (``_grading_launch.py``) that starts it and lasts
as long as it does. The backend kills it when the grader stops the kernel and removes it by
id when the job ends; :meth:`close` removes any the run still holds.

Invariant: when a run has closed its backend, no container it started exists.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

from statbox.certify.isolation import (
    LAUNCHER,
    IsolationBackend,
    Job,
    LeasedUids,
    mount_tmpfs,
    unmount,
)
from statbox.contract import CATALOG_ENV, GRADING_LABEL, IMAGE_INTERPRETER, PROJECT_LABEL
from statbox.errors import EnvironmentProblem
from statbox.modes.docker.engine import docker_client

DOCKER_LAUNCHER = Path(__file__).with_name("_grading_launch.py")
SANDBOX_IN_CONTAINER = "/opt/statbox-grader/sandbox.py"
IMAGE_PATH = "/opt/statbox/bin:/usr/local/bin:/usr/bin:/bin"
DEFAULT_IMAGE = "statbox/singleuser:latest"


def engine_url(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def in_container_limits(rlimits: dict[str, int]) -> dict[str, int]:
    """The resource limits the launcher sets inside the container: the container's memory
    and pids limits replace the per-process memory and per-uid process caps (which would
    stop a kernel with MemoryError before the container's limit, and count every process
    of a shared uid)."""
    return {name: value for name, value in rlimits.items() if name not in ("as", "data", "nproc")}


def launcher_copy(job: Job) -> Path:
    """The job's own copy of the launcher ``_sandbox.py``. The engine binds host paths: in
    docker mode the grader runs in the hub's container, whose installed statbox is at no
    host path, while the job folder is at the same path on both sides (compose.yaml)."""
    return job.root / "sandbox.py"


def container_config(
    job: Job, image: str, uid: int, gid: int, command: list[str], labels: dict[str, str]
) -> dict[str, Any]:
    """``containers.create`` arguments for ``job``'s kernel (see the module docstring)."""
    limits = job.limits
    # An allow-list, as the sandbox backend's: the connection file and inputs read-only,
    # the IPC folder read-write, each declared and entitled dataset read-only on its own
    # (never the whole data root), the catalog listing only those.
    volumes: dict[str, dict[str, str]] = {
        str(job.connection_file.parent): {"bind": str(job.connection_file.parent), "mode": "ro"},
        str(job.root / "inputs"): {"bind": str(job.root / "inputs"), "mode": "ro"},
        str(job.root / "ipc"): {"bind": str(job.root / "ipc"), "mode": "rw"},
        str(launcher_copy(job)): {"bind": SANDBOX_IN_CONTAINER, "mode": "ro"},
    }
    for folder in job.datasets:
        volumes[str(folder)] = {"bind": str(folder), "mode": "ro"}
    catalog = job.env.get(CATALOG_ENV)
    if catalog and catalog == str(job.catalog) and job.catalog.is_file():
        volumes[catalog] = {"bind": catalog, "mode": "ro"}
    return {
        "image": image,
        "command": command,
        "user": f"{uid}:{gid}",
        "network_mode": "none",
        "mem_limit": limits.memory,
        "memswap_limit": limits.memory,
        "pids_limit": limits.processes,
        "nano_cpus": 10**9,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        "tmpfs": {
            "/tmp": f"size={limits.workdir},mode=1777",
            str(job.workdir): f"size={limits.workdir},mode=0700,uid={uid},gid={gid}",
        },
        "volumes": volumes,
        "working_dir": str(job.root),
        "environment": {"PATH": IMAGE_PATH, "LANG": "C.UTF-8"},
        "labels": labels,
        "stdin_open": False,
        "tty": False,
    }


class DockerIsolation(LeasedUids, IsolationBackend):
    """A container per graded kernel; see the module docstring."""

    name = "docker"
    isolates_network = True
    isolates_files = True
    stop_timeout: ClassVar[int] = 5

    def __init__(
        self,
        uid_base: int = 200000,
        image: str = DEFAULT_IMAGE,
        project: str = "statbox",
        client: Any = None,
    ):
        super().__init__(uid_base)

        self.image = image
        self.client = client or docker_client()
        self.base_url = engine_url()
        self.run_id = secrets.token_hex(6)
        self.labels = {PROJECT_LABEL: project, GRADING_LABEL: self.run_id}
        self._leases: dict[int, tuple[int, int]] = {}
        self._containers: dict[Path, str] = {}
        self._stopped: set[str] = set()
        self._lock = threading.Lock()
        self.started: list[str] = []
        """Every container id this backend made, for the record (and the tests)."""
        try:
            self.client.images.get(image)
        except Exception:
            raise EnvironmentProblem(
                f"isolation 'docker': image {image} is not in the engine: run "
                "`statbox images build` (graded kernels run in the trainee role's image)"
            ) from None

    def uid(self, job: Job) -> int | None:
        if os.geteuid() != 0:
            return None  # the grader's own: it cannot give files to another uid
        return self.uid_base + self.host_slot(job)

    def _ids(self, job: Job) -> tuple[int, int]:
        uid = self.uid(job)
        return (os.getuid(), os.getgid()) if uid is None else (uid, uid)

    def prepare(self, job: Job) -> None:
        uid = self.uid(job)
        if uid is not None:  # root: the IPC folder gets a size cap of its own
            mount_tmpfs(job.root / "ipc", job.limits.ipc, uid)
        super().prepare(job)
        copy = launcher_copy(job)
        shutil.copyfile(LAUNCHER, copy)
        copy.chmod(0o444)
        inputs = job.root / "inputs"
        for path in inputs.iterdir():
            if path.is_file() and not path.is_symlink():
                self.own_for_kernel(job, path, 0o400)
        self.own_for_kernel(job, inputs, 0o500)

    def kernel_command(self, job: Job, argv: list[str]) -> list[str]:
        uid, gid = self._ids(job)
        kernel = [IMAGE_INTERPRETER, *argv[1:]]  # the image's interpreter, not this host's
        env = {**job.env, "PATH": IMAGE_PATH}
        limits = in_container_limits(job.limits.rlimits())
        spec = self._spec(job, kernel, limits=limits, env=env)
        command = [IMAGE_INTERPRETER, "-I", "-S", SANDBOX_IN_CONTAINER, spec]
        config = container_config(job, self.image, uid, gid, command, self.labels)
        config["volumes"].update(self.extra_volumes(job))
        container_id = str(self.client.containers.create(**config).id)
        with self._lock:
            old = self._containers.pop(job.root, None)
            self._containers[job.root] = container_id
            self.started.append(container_id)
        if old is not None:  # a kernel restarted within one job
            self._remove(old)
        return [sys.executable, "-I", str(DOCKER_LAUNCHER), self.base_url, container_id]

    def extra_volumes(self, job: Job) -> dict[str, dict[str, str]]:
        """Host folders a kind of job binds besides :func:`container_config`'s allow-list
        (an indicator run's output folder): none for a graded kernel."""
        return {}

    def _container_id(self, job: Job) -> str | None:
        with self._lock:
            return self._containers.get(job.root)

    def stop_kernel(self, job: Job) -> None:
        container_id = self._container_id(job)
        if container_id is None:
            return
        self._stopped.add(container_id)
        with contextlib.suppress(Exception):  # not running (any more): nothing to stop
            self.client.api.kill(container_id)

    def memory_killed(self, job: Job) -> bool:
        container_id = self._container_id(job)
        if container_id is None:
            return False
        try:
            state = self.client.api.inspect_container(container_id)["State"]
        except Exception:
            return False
        if state.get("OOMKilled"):
            return True
        # Killed with SIGKILL (tini passes on 128 + 9) by no one of ours: the OOM killer.
        return state.get("ExitCode") == 137 and container_id not in self._stopped

    def cell_strays(self, job: Job, kernel_pid: int | None) -> list[Any]:
        """Every process in the container but its init (tini) and the kernel itself, by
        their host pids (the grader, as root, can kill them; else the container's)."""
        import psutil

        container_id = self._container_id(job)
        if container_id is None:
            return []
        try:
            top = self.client.api.top(container_id, ps_args="-eo pid,ppid,args")
        except Exception:
            return []
        titles = [title.upper() for title in top.get("Titles", [])]
        rows = [dict(zip(titles, row, strict=False)) for row in top.get("Processes") or []]
        pids = {int(row["PID"]) for row in rows}
        kernel = [int(r["PID"]) for r in rows if "ipykernel_launcher" in r.get("COMMAND", "")]
        keep = {int(r["PID"]) for r in rows if int(r["PPID"]) not in pids}  # init
        keep.update(kernel[:1])
        strays = []
        for pid in sorted(pids - keep):
            with contextlib.suppress(psutil.Error):
                strays.append(psutil.Process(pid))
        return strays

    def _remove(self, container_id: str) -> None:
        with contextlib.suppress(Exception):
            self.client.api.remove_container(container_id, force=True)

    def release(self, job: Job) -> None:
        with self._lock:
            container_id = self._containers.pop(job.root, None)
        if container_id is not None:
            self._remove(container_id)
            self._stopped.discard(container_id)
        unmount(job.root / "ipc")

    def close(self) -> None:
        with self._lock:
            left = list(self._containers.values())
            self._containers.clear()
        for container_id in left:
            self._remove(container_id)
        self.release_leases()

    def describe(self) -> str:
        return (
            f"docker (a container per kernel from {self.image}: no network, memory and pids "
            "limits, unprivileged uid, read-only image, removed afterwards)"
        )
