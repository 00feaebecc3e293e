"""Where and how a graded kernel runs: isolation backends, chosen by name.

A backend turns a :class:`Job` (one submission's throw-away directory, the worker slot it
runs in, the limits, what to hide and what to reveal) into the command that starts the
kernel. Backends, by name (the table :data:`BACKENDS`, resolved lazily like dask-gateway's
backends, so an unused one is never imported):

``sandbox`` (this host; what ``auto`` picks when bubblewrap can run)
    The one sandbox of :mod:`statbox.sandbox` (bubblewrap, then ``setpriv`` to a uid of its
    own per worker slot, ``uid_base + slot``, no account needed). An allow-list: a new root
    holding only the read-only system and interpreter directories, the connection file, the
    trainee's inputs, each dataset the exercise declares and the trainee's role may read
    (bound on its own, read-only) and a catalog listing only those; the working directory
    and ``/tmp`` are size-capped memory file systems, and the IPC socket folder, the one
    folder both sides see, is a small memory file system mounted on the host. Nothing else:
    not the checkout or its ``.git``, not the curriculum or any copy of it, not earlier
    rounds, not ``/run``. New network (nothing in it), IPC (System V segments die with the
    kernel), PID, UTS and mount namespaces; no capability, ``no_new_privs``. A control group
    per slot caps memory (resident memory and memory file systems together) and processes,
    and kills every process of the kernel when the job ends, detached ones included.
    The kernel talks to the grader over ZeroMQ's IPC transport (Unix sockets in the job's
    IPC folder): no TCP port is ever chosen, so papermill#511's port race cannot happen.
    Not as root, bubblewrap runs unprivileged in a user namespace: the same allow-list,
    no network and private namespaces, under the grader's own uid (other processes of that
    uid are not isolated from the kernel) and with the IPC folder on disk, not size-capped.
``rlimits`` (what ``auto`` picks when bubblewrap cannot run)
    Resource limits (memory by ``RLIMIT_DATA``, which pyarrow survives, unlike
    ``RLIMIT_AS``), a throw-away working directory and a clean environment only: network
    access and every file the grader's user can read are NOT isolated. ``describe()``
    lists what it leaves open, and the CLI prints it when it runs.
``docker`` (:mod:`statbox.modes.docker.grading`)
    A container per kernel from the single-user image: ``--network none``, memory and pids
    limits, an unprivileged uid (leased like the sandbox's), no capability, a read-only
    image. The same allow-list of mounts as the sandbox's: the connection file, the inputs,
    the IPC folder (size-capped as root) and each declared, entitled dataset, never the
    whole data root. The container is removed by id when the job ends.

Invariant: every backend enforces the time limits (the grader does), the output cap (the
grader does), the memory, process and file-size caps, and a working directory holding
nothing but the trainee's inputs.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import importlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from statbox.errors import BadInput, EnvironmentProblem
from statbox.sandbox import Cgroup, CgroupTree, ResourceCaps, Sandbox, interpreter_paths
from statbox.sandbox import available as sandbox_available

LAUNCHER = Path(__file__).with_name("_sandbox.py")

BACKENDS: dict[str, str] = {
    "sandbox": "statbox.certify.isolation:SandboxIsolation",
    "rlimits": "statbox.certify.isolation:RlimitsIsolation",
    "docker": "statbox.modes.docker.grading:DockerIsolation",
}
"""Isolation backends by name: ``module:Class``, imported only when chosen."""

MiB = 1024**2


@dataclass(frozen=True)
class Limits:
    """What one graded submission may use. Sizes in bytes, times in seconds."""

    time: int = 600
    """Whole notebook, from kernel start to the last cell."""
    cell_time: int = 120
    """One cell."""
    memory: int = 2048 * MiB
    """Memory of the kernel and everything it starts: resident memory and the memory file
    systems it writes (a cgroup, sandbox and docker); without a cgroup, each process's data
    segments (RLIMIT_DATA: unlike RLIMIT_AS it does not count the address space pyarrow and
    numpy reserve and never use)."""
    processes: int = 64
    """Processes and threads of the kernel (a cgroup, and RLIMIT_NPROC of its uid)."""
    output: int = 1 * MiB
    """Cell output kept in the graded notebook; output beyond it is dropped."""
    file_size: int = 64 * MiB
    """Largest file the kernel may write (RLIMIT_FSIZE)."""
    workdir: int = 256 * MiB
    """Size of each writable place: the working directory and /tmp (memory file systems,
    sandbox and docker backends; together still inside :attr:`memory`)."""
    ipc: int = 1 * MiB
    grader_memory: int = 4096 * MiB
    """Memory of the grader's own process while it grades (a cgroup, as root): it reads
    what kernels send, so it is capped too, well above what the output caps let in."""
    """Size of the kernel's IPC socket folder (a memory file system on the host, as root:
    sockets take no room, so this only stops writing files there)."""
    open_files: int = 256

    def rlimits(self) -> dict[str, int]:
        """The resource limits without a cgroup (with one, see :func:`cgroup_rlimits`)."""
        return {
            "data": self.memory,
            "nproc": self.processes,
            "fsize": self.file_size,
            "cpu": self.time + 30,
            "nofile": self.open_files,
            "core": 0,
        }


@dataclass
class Job:
    """One submission's run: a private directory and the facts the backend needs.

    Layout of ``root`` (mode 0711: the kernel may traverse it, not list it)::

        conn/kernel.json   connection file (readable by the kernel's uid only)
        ipc/               the kernel's IPC sockets (owned by the kernel's uid)
        inputs/            the trainee's inputs, copied into the working directory
        work/              the working directory (a fresh tmpfs in the sandbox)
        catalog.yaml       the catalog listing only ``datasets`` (when there is a catalog)
        kernel.log         the kernel's own stdout and stderr
    """

    root: Path
    slot: int
    limits: Limits
    hidden: list[Path] = field(default_factory=list)
    data_root: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    datasets: list[Path] = field(default_factory=list)
    """The dataset folders the kernel may read (declared by the exercise and entitled to
    the trainee's role), each bound read-only on its own; never the whole data root."""

    @classmethod
    def create(cls, slot: int, limits: Limits, scratch: Path | None = None, **kw: Any) -> Job:
        root = Path(tempfile.mkdtemp(prefix="sbx-", dir=scratch))
        root.chmod(0o711)
        for name in ("conn", "ipc", "inputs", "work"):
            (root / name).mkdir(mode=0o700)
        return cls(root=root, slot=slot, limits=limits, **kw)

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    @property
    def connection_file(self) -> Path:
        return self.root / "conn" / "kernel.json"

    @property
    def ipc_prefix(self) -> Path:
        return self.root / "ipc" / "k"

    @property
    def log_file(self) -> Path:
        return self.root / "kernel.log"

    def log_tail(self, limit: int = 2000) -> str:
        try:
            with open(self.log_file, "rb") as handle:
                handle.seek(max(0, self.log_file.stat().st_size - limit))
                return handle.read().decode(errors="replace").strip()
        except OSError:
            return ""

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.yaml"

    def remove(self) -> None:
        remove_tree(self.root)


class IsolationBackend(ABC):
    """How kernels are started for grading. Subclasses: one per way of isolating."""

    name: ClassVar[str]
    isolates_network: ClassVar[bool] = False
    isolates_files: ClassVar[bool] = False

    def __init__(self, uid_base: int = 200000):
        self.uid_base = uid_base

    @abstractmethod
    def kernel_command(self, job: Job, argv: list[str]) -> list[str]:
        """The command that starts ``argv`` (the kernel) isolated for ``job``."""

    def uid(self, job: Job) -> int | None:
        """The uid the kernel runs as, or None for the grader's own."""
        return None

    def own_for_kernel(self, job: Job, path: Path, mode: int) -> None:
        """Give ``path`` to the kernel's uid with ``mode``."""
        uid = self.uid(job)
        if uid is not None:
            os.chown(path, uid, uid)
        path.chmod(mode)

    def prepare(self, job: Job) -> None:
        """Hand the job's directories to the kernel's uid before the kernel starts."""
        self.own_for_kernel(job, job.root / "ipc", 0o700)
        self.own_for_kernel(job, job.workdir, 0o700)

    def describe(self) -> str:
        return self.name

    def memory_killed(self, job: Job) -> bool:
        """Whether the job's kernel was killed for using too much memory (if known)."""
        return False

    def stop_kernel(self, job: Job) -> None:  # noqa: B027 (killing the process group suffices)
        """Stop what the job's kernel runs in beyond the launched process group (docker: its
        container). Called from any thread, possibly more than once."""

    def cell_strays(self, job: Job, kernel_pid: int | None) -> list[Any]:
        """Processes a cell left running after it was interrupted: the kernel's descendants."""
        return stray_processes(kernel_pid, None) if kernel_pid is not None else []

    def release(self, job: Job) -> None:  # noqa: B027 (most backends make nothing per job)
        """Remove what was made for the job's kernel, once it is gone (docker: its container,
        by id)."""

    def close(self) -> None:  # noqa: B027 (most backends set up nothing to release)
        """Release what the backend set up for the run."""

    def _spec(self, job: Job, argv: list[str], **extra: Any) -> str:
        """The launcher's instructions (:mod:`statbox.certify._sandbox`), as JSON text."""
        spec = {
            "argv": argv,
            "env": job.env,
            "workdir": str(job.workdir),
            "inputs": str(job.root / "inputs"),
            "limits": job.limits.rlimits(),
        }
        spec.update(extra)
        return json.dumps(spec)

    def _launcher(self, spec: str) -> list[str]:
        return [sys.executable, "-I", "-S", str(LAUNCHER), spec]


class LeasedUids:
    """Grading uids leased host-wide: ``uid_base + index``, one lock file per uid in use."""

    uid_base: int
    _leases: dict[int, tuple[int, int]]

    LEASES = Path("/run/statbox-certify")
    """Lock files, one per uid in use: two grading runs on one host never share a uid (each
    sweeps its uids' processes, and RLIMIT_NPROC counts per uid)."""

    def host_slot(self, job: Job) -> int:
        """The host-wide index leased for the run's worker slot ``job.slot``."""
        lease = self._leases.get(job.slot)
        if lease is not None:
            return lease[0]
        self.LEASES.mkdir(mode=0o700, exist_ok=True)
        for index in range(4096):
            path = self.LEASES / f"uid-{self.uid_base + index}.lock"
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(descriptor)
                continue
            self._leases[job.slot] = (index, descriptor)
            return index
        raise EnvironmentProblem(f"no free grading uid from {self.uid_base} (4096 in use)")

    def release_leases(self) -> None:
        for _, descriptor in self._leases.values():
            os.close(descriptor)  # releases the lock
        self._leases.clear()


class SandboxIsolation(LeasedUids, IsolationBackend):
    """Each kernel in the one sandbox (:mod:`statbox.sandbox`); see the module docstring."""

    name = "sandbox"
    isolates_network = True
    isolates_files = True
    CGROUPS = "statbox-certify"

    def __init__(self, uid_base: int = 200000):
        super().__init__(uid_base)
        problem = self.unavailable()
        if problem:
            raise EnvironmentProblem(f"isolation 'sandbox' is not available here: {problem}")
        # memory and pids only: a graded kernel has no CPU cap (see CgroupTree.detect)
        self.cgroups = CgroupTree.detect(self.CGROUPS, ("memory", "pids"))
        self._groups: dict[int, Cgroup] = {}
        self._oom_before: dict[int, int] = {}
        self._leases: dict[int, tuple[int, int]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def unavailable() -> str | None:
        """Why this backend cannot run here, or None."""
        problem = sandbox_available()
        if problem is None and os.geteuid() != 0 and not unprivileged_namespaces():
            problem = (
                "not root, and bubblewrap cannot make a user namespace here "
                "(see kernel.unprivileged_userns_clone or user.max_user_namespaces)"
            )
        return f"{problem}; use isolation 'rlimits'" if problem else None

    @property
    def privileged(self) -> bool:
        """As root: a uid per slot, the IPC folder capped; else the grader's own uid."""
        return os.geteuid() == 0

    def uid(self, job: Job) -> int | None:
        return self.uid_base + self.host_slot(job) if self.privileged else None

    def slot(self, job: Job) -> int:
        return self.host_slot(job) if self.privileged else job.slot

    def group(self, job: Job) -> Cgroup | None:
        """The slot's control group (made on first use, its caps reset for each job)."""
        if self.cgroups is None:
            return None
        slot = self.slot(job)
        caps = ResourceCaps(memory=job.limits.memory, processes=job.limits.processes)
        with self._lock:
            group = self.cgroups.group(f"slot-{slot}", caps)
            self._groups[slot] = group
            self._oom_before[slot] = group.oom_kills()
        return group

    def prepare(self, job: Job) -> None:
        uid = self.uid(job)
        if uid is not None:
            # The IPC sockets' folder is the one place both sides see: on the host it is a
            # small memory file system of its own, so the kernel cannot fill the disk there.
            mount_tmpfs(job.root / "ipc", job.limits.ipc, uid)
        inputs = job.root / "inputs"
        for path in [inputs, *inputs.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)  # bound read-only for this kernel

    def sandbox(self, job: Job, argv: list[str]) -> Sandbox:
        """What the kernel is given, and nothing else (see the module docstring)."""
        group = self.group(job)
        limits = cgroup_rlimits(job.limits) if group is not None else job.limits.rlimits()
        if not self.privileged and "nproc" in limits:
            # RLIMIT_NPROC counts every process of this uid, the grader's own included.
            limits["nproc"] += _processes_of(os.getuid())
        launcher = self._launcher(self._spec(job, argv, env=None, limits=limits))
        read_only = [*interpreter_paths(), job.connection_file.parent, job.root / "inputs"]
        read_only += job.datasets
        if job.catalog.is_file():
            read_only.append(job.catalog)
        return Sandbox(
            argv=launcher,
            uid=self.uid(job),
            read_only=[(p, p) for p in read_only],
            read_write=[(job.root / "ipc", job.root / "ipc")],
            tmpfs={job.workdir: job.limits.workdir, Path("/tmp"): job.limits.workdir},
            env=job.env,
            cwd=job.workdir,
            network=False,
            cgroup=group,
            die_with_parent=True,
            hostname="statbox-grading",
        )

    def kernel_command(self, job: Job, argv: list[str]) -> list[str]:
        return self.sandbox(job, argv).command()

    def memory_killed(self, job: Job) -> bool:
        slot = self.slot(job)
        group = self._groups.get(slot)
        return group is not None and group.oom_kills() > self._oom_before.get(slot, 0)

    def stop_kernel(self, job: Job) -> None:
        group = self._groups.get(self.slot(job))
        if group is not None:
            group.kill()

    def cell_strays(self, job: Job, kernel_pid: int | None) -> list[Any]:
        return stray_processes(kernel_pid, None) if kernel_pid is not None else []

    def release(self, job: Job) -> None:
        self.stop_kernel(job)
        unmount(job.root / "ipc")

    def close(self) -> None:
        with self._lock:
            for group in self._groups.values():
                # up to 10 s: a kernel's last process may wait moments to be reaped, and an
                # empty group left behind outlives the run (seen on v1's pids hierarchy)
                group.remove(tries=200)
            self._groups.clear()
        if self.cgroups is not None:
            self.cgroups.remove()
        self.release_leases()

    def describe(self) -> str:
        caps = (
            f"cgroup v{self.cgroups.version} memory and pids caps"
            if self.cgroups
            else "RLIMIT_DATA and RLIMIT_NPROC caps (no writable cgroup here)"
        )
        who = (
            f"uid {self.uid_base}+slot"
            if self.privileged
            else "not root: your own uid in a user namespace, so other processes of your uid "
            "are not isolated from it and its IPC socket folder is on disk, without a size cap"
        )
        return (
            f"sandbox (bubblewrap allow-list: interpreter, inputs, declared datasets; no "
            f"network, private IPC, PIDs and mounts; {who}; {caps})"
        )


GRADER_CGROUPS = "statbox-certify-grader"


@contextlib.contextmanager
def grader_memory_cap(memory: int | None) -> Iterator[bool]:
    """Run the block with this process in a cgroup of its own capping its memory at
    ``memory`` bytes (None: no cap), yielding whether it is, and put it back where it was
    afterwards. Only for backends whose kernels leave the group (each joins its slot's
    group as it starts, or runs in a container)."""
    tree = CgroupTree.detect(GRADER_CGROUPS, ("memory",)) if memory else None
    if tree is None:
        yield False
        return
    before = Path("/proc/self/cgroup").read_text()
    group = tree.group(f"run-{os.getpid()}", ResourceCaps(memory=memory))
    # <our cgroup>/statbox-certify-grader/run-<pid>: ours is two levels up
    origins = [d.parent.parent / "cgroup.procs" for d in set(group.directories.values())]
    try:
        for procs in group.procs_files:
            procs.write_text(str(os.getpid()))
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        for procs in origins:
            with contextlib.suppress(OSError):
                procs.write_text(str(os.getpid()))
        if Path("/proc/self/cgroup").read_text() == before:  # never remove (kill) ourselves
            group.remove()
            tree.remove()


@functools.cache
def unprivileged_namespaces() -> bool:
    """Whether bubblewrap can make, for this (unprivileged) user, a sandbox of the shape a
    graded kernel gets: a user namespace, and new PID and network namespaces with a /proc of
    their own. The whole shape is tried, not the user namespace alone: inside another
    sandbox (an instructor's Dask worker in local mode) a user namespace can be made but a
    new /proc cannot be mounted over the outer sandbox's partly covered one."""
    probe = Sandbox(["true"], tmpfs={Path("/tmp"): 1024**2})
    try:
        done = subprocess.run(probe.command(), capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def cgroup_rlimits(limits: Limits) -> dict[str, int]:
    """The resource limits inside a cgroup, which caps memory and processes itself."""
    return {k: v for k, v in limits.rlimits().items() if k not in ("data", "as")}


def mount_tmpfs(path: Path, size: int, uid: int) -> None:
    """A memory file system of ``size`` bytes on ``path``, owned by ``uid`` (root only)."""
    options = f"size={size},nr_inodes=256,mode=0700,uid={uid},gid={uid},nosuid,nodev,noexec"
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "statbox-ipc", str(path)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise EnvironmentProblem(f"cannot mount the IPC folder {path}: {result.stderr.strip()}")


def unmount(path: Path) -> None:
    """Detach whatever is mounted on ``path`` (nothing: nothing happens)."""
    if os.path.ismount(path):
        subprocess.run(["umount", "--lazy", str(path)], capture_output=True)


def remove_tree(path: Path, timeout: float = 60.0) -> None:
    """Remove ``path`` and everything under it without recursing in Python (``rm`` walks
    any depth with fts; ``shutil.rmtree`` raises RecursionError on 1,500 nested folders)
    and without crossing into a mount left on it."""
    if not path.exists():
        return
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        subprocess.run(
            ["rm", "-rf", "--one-file-system", "--", str(path)],
            capture_output=True,
            timeout=timeout,
        )


class RlimitsIsolation(IsolationBackend):
    """Resource limits and a throw-away directory only; see the module docstring."""

    name = "rlimits"

    def kernel_command(self, job: Job, argv: list[str]) -> list[str]:
        limits = job.limits.rlimits()
        # RLIMIT_NPROC counts every process of this uid, the grader's own included.
        limits["nproc"] += _processes_of(os.getuid())
        spec = self._spec(job, argv, limits=limits)
        return self._launcher(spec)

    def describe(self) -> str:
        return (
            "rlimits (memory by RLIMIT_DATA per process, processes, file size, CPU time and a "
            "throw-away working directory on disk; NOT isolated: the network, every file this "
            "user can read (the checkout, the grader's solution and checks, other "
            "submissions, the whole data root), System V IPC and other processes of this "
            "user, and writes outside the working directory are not capped: run as root for "
            "the sandbox)"
        )


def _processes_of(uid: int) -> int:
    import psutil

    count = 0
    for process in psutil.process_iter(["uids", "num_threads"]):
        try:
            if process.info["uids"] and process.info["uids"].real == uid:
                count += process.info["num_threads"] or 1
        except psutil.Error:
            continue
    return count


def backend_class(name: str) -> type[IsolationBackend]:
    """The backend class called ``name`` (``auto``: sandbox when possible, else rlimits)."""
    if name == "auto":
        name = "sandbox" if SandboxIsolation.unavailable() is None else "rlimits"
    if name not in BACKENDS:
        known = ", ".join(["auto", *BACKENDS])

        raise BadInput(f"isolation {name!r} is not a backend (known: {known})")
    module_name, class_name = BACKENDS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise EnvironmentProblem(
            f"isolation {name!r} is not installed here ({module_name} is missing); "
            "docker-mode grading comes with the docker mode"
        ) from None
    return getattr(module, class_name)


def stray_processes(kernel_pid: int | None, uid: int | None) -> list[Any]:
    """Processes a graded kernel left running: its descendants, and (sandbox) anything else
    running under the slot's uid, which only graded kernels ever use."""
    import psutil

    found: dict[int, Any] = {}
    if kernel_pid is not None:
        try:
            for child in psutil.Process(kernel_pid).children(recursive=True):
                found[child.pid] = child
        except psutil.Error:
            pass
    if uid is not None:
        for process in psutil.process_iter(["uids"]):
            try:
                if process.info["uids"] and process.info["uids"].real == uid:
                    found[process.pid] = process
            except psutil.Error:
                continue
    # A zombie runs nothing: it waits for init to reap it (a sandbox's orphans go there).
    return [p for p in found.values() if _running(p)]


def kill_all(processes: list[Any], timeout: float = 5.0) -> None:
    """SIGKILL each process and wait until it is gone (a zombie waiting for its reaper
    counts as gone: it runs nothing and holds nothing but its pid)."""
    import psutil

    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    deadline = time.monotonic() + timeout
    alive = list(processes)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        if alive:
            time.sleep(0.02)


def _running(process: Any) -> bool:
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
