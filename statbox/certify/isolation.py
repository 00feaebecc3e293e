"""Where and how a graded kernel runs: isolation backends, chosen by name.

A backend turns a :class:`Job` (one submission's throw-away directory, the worker slot it
runs in, the limits, what to hide and what to reveal) into the command that starts the
kernel. Backends, by name (the table :data:`BACKENDS`, resolved lazily like dask-gateway's
backends, so an unused one is never imported):

``sandbox`` (this host, as root; what ``auto`` picks when it can)
    ``unshare`` gives the kernel new network, mount and PID namespaces: no network at all
    (not even loopback), the grader's files covered by empty tmpfs mounts, its own ``/proc``;
    the kernel runs as a uid of its own per worker slot (``uid_base + slot``, no account
    needed), so ``RLIMIT_NPROC``, which counts per uid, caps that kernel's processes and no
    one else's; a cgroup per slot (v1 or v2, when the grader can make one) caps its resident
    memory and processes (else ``RLIMIT_AS`` caps its address space); when the kernel ends,
    the PID namespace ends every process it started.
    The kernel talks to the grader over ZeroMQ's IPC transport (Unix sockets in the job's
    directory): no TCP port is ever chosen, so papermill#511's port race cannot happen.
``rlimits`` (what ``auto`` picks when not root)
    Resource limits, a throw-away working directory and a clean environment only: as a
    normal user Statbox cannot switch uid or make namespaces, so network access and the
    grader's files readable by that user are NOT isolated. The CLI says so when it runs.
``docker`` (:mod:`statbox.modes.docker.grading`)
    A container per kernel from the single-user image: ``--network none``, memory and pids
    limits, an unprivileged uid (leased like the sandbox's), no capability, a read-only
    image; the kernel's IPC sockets are in the bind-mounted job directory. The container is
    removed by id when the job ends.

Invariant: every backend enforces the time limits (the grader does), the output cap (the
grader does), the memory, process and file-size caps, and a working directory holding
nothing but the trainee's inputs.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from statbox.errors import BadInput, EnvironmentProblem

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
    """Address space of each kernel process (RLIMIT_AS)."""
    processes: int = 64
    """Processes and threads of the kernel's uid (RLIMIT_NPROC)."""
    output: int = 1 * MiB
    """Cell output kept in the graded notebook; output beyond it is dropped."""
    file_size: int = 64 * MiB
    """Largest file the kernel may write (RLIMIT_FSIZE)."""
    workdir: int = 256 * MiB
    """Size of the working directory and of /tmp (tmpfs, sandbox backend)."""
    open_files: int = 256

    def rlimits(self) -> dict[str, int]:
        return {
            "as": self.memory,
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
        sandbox.json       the launcher's instructions (root only)
        kernel.log         the kernel's own stdout and stderr
    """

    root: Path
    slot: int
    limits: Limits
    hidden: list[Path] = field(default_factory=list)
    data_root: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

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

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class Cgroups:
    """Per-slot control groups capping a graded kernel's memory (resident, not address
    space: RLIMIT_AS counts the address space that pyarrow, numpy and thread stacks reserve
    but never use) and its processes, made under the grader's own cgroup.

    cgroup v2 (``memory.max``, ``pids.max``) or v1 (the memory and pids hierarchies). The
    launcher joins its slot's groups before it execs the kernel, so every process the kernel
    starts is counted. None of this exists unless :meth:`detect` finds writable cgroups.
    """

    ROOT = Path("/sys/fs/cgroup")
    NAME = "statbox-certify"

    def __init__(self, version: int, bases: dict[str, Path]):
        self.version = version
        self.bases = bases  # controller -> the directory holding our slots
        self.made: list[Path] = []

    @classmethod
    def detect(cls) -> Cgroups | None:
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return None
        own = {}
        for line in lines:
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else ["unified"]:
                own[controller] = path.lstrip("/")
        try:
            if (cls.ROOT / "cgroup.controllers").is_file():  # v2 only
                base = cls.ROOT / own.get("unified", "") / cls.NAME
                base.mkdir(exist_ok=True)
                available = (base.parent / "cgroup.controllers").read_text().split()
                if not {"memory", "pids"} <= set(available):
                    return None
                (base.parent / "cgroup.subtree_control").write_text("+memory +pids")
                (base / "cgroup.subtree_control").write_text("+memory +pids")
                return cls(2, {"memory": base, "pids": base})
            bases = {}
            for controller in ("memory", "pids"):
                hierarchy = cls.ROOT / controller
                if not (hierarchy / "cgroup.procs").is_file():
                    return None
                base = hierarchy / own.get(controller, "") / cls.NAME
                base.mkdir(exist_ok=True)
                bases[controller] = base
            return cls(1, bases)
        except OSError:
            return None

    def slot(self, slot: int, limits: Limits) -> list[str]:
        """Make (or reset) the slot's groups; the ``cgroup.procs`` files the launcher joins."""
        joined = []
        name = f"slot-{slot}"
        directories = {c: base / name for c, base in self.bases.items()}
        for directory in set(directories.values()):
            if not directory.exists():
                directory.mkdir(parents=True)
                self.made.append(directory)
            joined.append(str(directory / "cgroup.procs"))
        if self.version == 2:
            directory = directories["memory"]
            (directory / "memory.max").write_text(str(limits.memory))
            swap = directory / "memory.swap.max"
            if swap.exists():
                swap.write_text("0")
            (directory / "pids.max").write_text(str(limits.processes))
        else:
            memory = directories["memory"]
            (memory / "memory.limit_in_bytes").write_text(str(limits.memory))
            swap = memory / "memory.memsw.limit_in_bytes"
            if swap.exists():
                with contextlib.suppress(OSError):  # no swap accounting
                    swap.write_text(str(limits.memory))
            (directories["pids"] / "pids.max").write_text(str(limits.processes))
        return joined

    def oom_kills(self, slot: int) -> int:
        """How many times the slot's kernels were killed for memory so far."""
        directory = self.bases["memory"] / f"slot-{slot}"
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in (directory / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def close(self) -> None:
        """Remove the slots' groups (and ours, once empty): a group still holding a process
        that is only waiting to be reaped empties within moments, so each gets a few tries;
        one still in use is left for the next run to reuse."""
        for directory in [
            *sorted(set(self.made), reverse=True),
            *{base for base in self.bases.values()},
        ]:
            for _ in range(20):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
        self.made.clear()


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

    def _spec(self, job: Job, argv: list[str], **extra: Any) -> Path:
        spec = {
            "argv": argv,
            "env": job.env,
            "workdir": str(job.workdir),
            "workdir_size": job.limits.workdir,
            "inputs": str(job.root / "inputs"),
            "limits": job.limits.rlimits(),
        }
        spec.update(extra)
        path = job.root / "sandbox.json"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(spec, handle)
        return path

    def _launcher(self, spec: Path) -> list[str]:
        return [sys.executable, "-I", "-S", str(LAUNCHER), str(spec)]


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
    """Namespaces and a per-slot uid (root only); see the module docstring."""

    name = "sandbox"
    isolates_network = True
    isolates_files = True
    SYSTEM_SCRATCH: ClassVar[tuple[str, ...]] = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")

    def __init__(self, uid_base: int = 200000):
        super().__init__(uid_base)
        problem = self.unavailable()
        if problem:
            raise EnvironmentProblem(f"isolation 'sandbox' is not available here: {problem}")
        self.unshare = shutil.which("unshare") or "unshare"
        self.cgroups = Cgroups.detect()
        self._oom_before: dict[int, int] = {}
        self._leases: dict[int, tuple[int, int]] = {}

    @staticmethod
    def unavailable() -> str | None:
        """Why this backend cannot run here, or None."""
        if os.geteuid() != 0:
            return "it needs root (to switch uid and make namespaces); use isolation 'rlimits'"
        if shutil.which("unshare") is None:
            return "the unshare program (util-linux) is missing: apt-get install util-linux"
        return None

    def uid(self, job: Job) -> int:
        return self.uid_base + self.host_slot(job)

    def kernel_command(self, job: Job, argv: list[str]) -> list[str]:
        uid = self.uid(job)
        hide: list[dict[str, Any]] = [{"path": str(p)} for p in job.hidden]
        hide += [
            {"path": p, "mode": "1777", "size": job.limits.workdir} for p in self.SYSTEM_SCRATCH
        ]
        reveal: list[dict[str, Any]] = [{"path": str(job.root)}]
        if job.data_root is not None and job.data_root.is_dir():
            reveal.append({"path": str(job.data_root), "readonly": True})
        covered = [*job.hidden, *map(Path, self.SYSTEM_SCRATCH)]
        for path in kernel_code_paths():
            # A checkout under /tmp (or under a hidden folder) would otherwise hide the very
            # interpreter and packages the kernel runs: give them back, read-only.
            if any(path.is_relative_to(cover) for cover in covered):
                reveal.append({"path": str(path), "readonly": True})
        extra: dict[str, Any] = {}
        if self.cgroups is not None:
            slot = self.host_slot(job)
            extra["cgroups"] = self.cgroups.slot(slot, job.limits)
            self._oom_before[slot] = self.cgroups.oom_kills(slot)
            limits = job.limits.rlimits()
            del limits["as"]  # the cgroup counts resident memory, which is what matters
            extra["limits"] = limits
        spec = self._spec(
            job, argv, namespaces=True, uid=uid, gid=uid, hide=hide, reveal=reveal, **extra
        )
        return [
            self.unshare,
            "--net",
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--",
            *self._launcher(spec),
        ]

    def memory_killed(self, job: Job) -> bool:
        if self.cgroups is None:
            return False
        slot = self.host_slot(job)
        return self.cgroups.oom_kills(slot) > self._oom_before.get(slot, 0)

    def close(self) -> None:
        if self.cgroups is not None:
            self.cgroups.close()
        self.release_leases()

    def describe(self) -> str:
        caps = (
            f"cgroup v{self.cgroups.version} memory and pids caps"
            if self.cgroups
            else "address-space cap"
        )
        return (
            f"sandbox (no network, private mounts and PIDs, uid {self.uid_base}+slot, "
            f"{caps}, resource limits)"
        )


class RlimitsIsolation(IsolationBackend):
    """Resource limits and a throw-away directory only; see the module docstring."""

    name = "rlimits"

    def kernel_command(self, job: Job, argv: list[str]) -> list[str]:
        limits = job.limits.rlimits()
        # RLIMIT_NPROC counts every process of this uid, the grader's own included.
        limits["nproc"] += _processes_of(os.getuid())
        spec = self._spec(job, argv, namespaces=False, limits=limits)
        return self._launcher(spec)

    def describe(self) -> str:
        return (
            "rlimits (resource limits and a throw-away directory; NOT isolated from the "
            "network or from files this user can read: run as root for the sandbox)"
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


def kernel_code_paths() -> list[Path]:
    """What a graded kernel needs to run and holds no secret: the Python environment and
    the statbox package (an editable install keeps it in the checkout)."""
    # statbox is a namespace package (no __init__.py, no __file__): find it from this module.
    return [Path(sys.prefix).resolve(), Path(__file__).resolve().parent.parent]


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
