"""Control groups holding a sandbox's memory, CPU and process caps, v1 or v2.

Resident memory, not address space: ``RLIMIT_AS`` counts the address space that pyarrow,
numpy and thread stacks reserve and never use, and kills a pandas kernel at 2 GiB. A group
also knows every process started in it, detached ones included, so stopping a server or a
graded kernel ends all of them (:meth:`Cgroup.kill`).

Groups are made under the cgroup this process runs in (``/proc/self/cgroup``), in a folder
named for their owner (``statbox-servers``, ``statbox-certify`` ...): nothing outside it is
touched. None of this exists when :meth:`CgroupTree.detect` finds no writable hierarchy (not
root, or a v2 hierarchy whose controllers are not delegated); callers then say what they
cannot cap.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD = 100_000
"""Microseconds of one CPU accounting period; a cap of 1.5 CPUs is 150,000 of them."""


@dataclass(frozen=True)
class ResourceCaps:
    """What the processes of one group may use together; None: no cap."""

    memory: int | None = None
    """Bytes of resident memory (and tmpfs pages they write); swap is capped to nothing more."""
    cpu: float | None = None
    """CPUs' worth of time per period."""
    processes: int | None = None
    """Processes and threads."""


def _own_paths() -> dict[str, str]:
    own: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return own
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else ["unified"]:
            own[controller] = path.lstrip("/")
    return own


class CgroupTree:
    """The folder (per controller, v1; one folder, v2) holding one owner's groups."""

    CONTROLLERS = ("memory", "pids", "cpu")

    def __init__(self, version: int, bases: dict[str, Path]):
        self.version = version
        self.bases = bases  # controller -> the folder holding the groups

    @classmethod
    def detect(cls, name: str, controllers: tuple[str, ...] = CONTROLLERS) -> CgroupTree | None:
        """The tree called ``name`` under our own cgroup, made if needed; None if we cannot.

        ``controllers``: those of :data:`CONTROLLERS` to use (memory and pids always). Leave
        ``cpu`` out when no group caps CPU: on v1 a group weighs as much as all the
        processes beside it together, so under load its processes would get a fraction of
        the CPU they would get outside it.
        """
        own = _own_paths()
        try:
            if (ROOT / "cgroup.controllers").is_file():  # v2 only
                base = ROOT / own.get("unified", "") / name
                base.mkdir(exist_ok=True)
                if not os.access(base, os.W_OK | os.X_OK):
                    return None  # another account's tree (see below)
                available = set((base.parent / "cgroup.controllers").read_text().split())
                if not {"memory", "pids"} <= available:
                    return None
                wanted = [c for c in controllers if c in available]
                enable = " ".join(f"+{c}" for c in wanted)
                (base.parent / "cgroup.subtree_control").write_text(enable)
                (base / "cgroup.subtree_control").write_text(enable)
                return cls(2, {c: base for c in wanted})
            bases = {}
            for controller in controllers:
                hierarchy = ROOT / controller
                if not (hierarchy / "cgroup.procs").is_file():
                    if controller == "cpu":
                        continue  # CPU is shared fairly without a cap
                    return None
                base = hierarchy / own.get(controller, "") / name
                base.mkdir(exist_ok=True)
                bases[controller] = base
            # A tree another account made (root's, found by a grader running unprivileged)
            # is not ours to make groups in: none, rather than a refused mkdir later.
            if not all(os.access(base, os.W_OK | os.X_OK) for base in bases.values()):
                return None
            return cls(1, bases)
        except OSError:
            return None

    def group(self, name: str, caps: ResourceCaps) -> Cgroup:
        """Make (or reset the caps of) the group ``name``."""
        directories = {c: base / name for c, base in self.bases.items()}
        for directory in set(directories.values()):
            directory.mkdir(exist_ok=True)
        group = Cgroup(self.version, directories)
        group.set_caps(caps)
        self.reweigh()
        return group

    def reweigh(self) -> None:
        """Give the tree the CPU weight of as many processes as it holds groups.

        The scheduler shares CPU between sibling groups by weight, and a group weighs as much
        as one process by default: without this, a class of 30 sandboxed servers would get,
        together, the share of one process on a busy machine (measured: 8 servers starting
        at once took as long as without Statbox's start-up work)."""
        directory = self.bases.get("cpu")
        if directory is None:
            return
        with contextlib.suppress(OSError):
            groups = sum(1 for p in directory.iterdir() if p.is_dir())
            if self.version == 2:
                (directory / "cpu.weight").write_text(str(min(10_000, 100 * max(1, groups))))
            else:
                (directory / "cpu.shares").write_text(str(min(262_144, 1024 * max(1, groups))))

    def existing(self, name: str) -> Cgroup | None:
        directories = {c: base / name for c, base in self.bases.items()}
        if not all(d.is_dir() for d in directories.values()):
            return None
        return Cgroup(self.version, directories)

    def within(self, group: Cgroup) -> CgroupTree:
        """The groups inside ``group`` as a tree of their own (a cluster's scheduler and
        workers inside the cluster's group: the cluster's caps hold for all of them)."""
        if self.version == 2:
            enable = " ".join(f"+{c}" for c in self.bases)
            with contextlib.suppress(OSError):
                (next(iter(group.directories.values())) / "cgroup.subtree_control").write_text(
                    enable
                )
        return CgroupTree(self.version, dict(group.directories))

    def clear(self) -> None:
        """Kill and remove every group in the tree (nested ones first), then the tree."""
        relative: set[Path] = set()
        for base in set(self.bases.values()):
            with contextlib.suppress(OSError):
                relative.update(p.relative_to(base) for p in base.rglob("*") if p.is_dir())
        for name in sorted(relative, key=lambda p: -len(p.parts)):
            Cgroup(self.version, {c: b / name for c, b in self.bases.items()}).remove()
        self.remove()

    def remove(self, tries: int = 40) -> None:
        """Remove the tree's folders if no group is left in them. A folder whose last
        process is exiting stays busy for moments (v1's pids hierarchy counts a task until
        it is reaped): tried again, as :meth:`Cgroup.remove` does."""
        for base in set(self.bases.values()):
            for _ in range(tries):
                try:
                    base.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        break  # a group is still in it (someone else's run), or not ours
                    time.sleep(0.05)


class Cgroup:
    """One group: the processes of one server, cluster or graded kernel."""

    def __init__(self, version: int, directories: dict[str, Path]):
        self.version = version
        self.directories = directories

    @property
    def name(self) -> str:
        return next(iter(self.directories.values())).name

    def _write(self, controller: str, v1: str, v2: str, value: str) -> None:
        directory = self.directories.get(controller)
        if directory is None:
            return
        path = directory / (v2 if self.version == 2 else v1)
        if path.exists():
            with contextlib.suppress(OSError):  # e.g. no swap accounting
                path.write_text(value)

    def set_caps(self, caps: ResourceCaps) -> None:
        memory = str(caps.memory) if caps.memory else ("max" if self.version == 2 else "-1")
        self._write("memory", "memory.limit_in_bytes", "memory.max", memory)
        if caps.memory:
            # v2 counts swap apart (none); v1 counts memory and swap together (no more).
            self._write(
                "memory",
                "memory.memsw.limit_in_bytes",
                "memory.swap.max",
                "0" if self.version == 2 else memory,
            )
        pids = str(caps.processes) if caps.processes else "max"
        self._write("pids", "pids.max", "pids.max", pids)
        if caps.cpu:
            quota = max(1000, int(caps.cpu * CPU_PERIOD))
            if self.version == 2:
                self._write("cpu", "", "cpu.max", f"{quota} {CPU_PERIOD}")
            else:
                self._write("cpu", "cpu.cfs_period_us", "", str(CPU_PERIOD))
                self._write("cpu", "cpu.cfs_quota_us", "", str(quota))

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in sorted(set(self.directories.values()))]

    def entering(self, command: list[str]) -> list[str]:
        """``command``, started from inside this group: a shell joins it and execs
        ``command``, so every process it starts is counted from its first instruction."""
        files = [str(f) for f in self.procs_files]
        script = (
            'for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f"; done; '
            'while [ "$1" != -- ]; do shift; done; shift; exec "$@"'
        )
        return ["/bin/sh", "-c", script, "sh", *files, "--", *command]

    def pids(self) -> list[int]:
        found: set[int] = set()
        for path in self.procs_files:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(line) for line in path.read_text().split())
        return sorted(found)

    def kill(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process in the group until none is left; whether it emptied."""
        deadline = time.monotonic() + timeout
        kill_file = self.directories.get("pids", next(iter(self.directories.values())))
        while True:
            pids = self.pids()
            if not pids:
                return True
            if self.version == 2 and (kill_file / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    (kill_file / "cgroup.kill").write_text("1")
            else:
                # v1: freeze nothing, just kill repeatedly; a fork racing the loop is in
                # the group too, and is caught on the next pass.
                for pid in pids:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                return not self.pids()
            time.sleep(0.02)

    def signal_all(self, signum: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signum)

    def memory_peak(self) -> int | None:
        for name in ("memory.peak", "memory.max_usage_in_bytes"):
            path = self.directories.get("memory", Path("/nonexistent")) / name
            with contextlib.suppress(OSError, ValueError):
                return int(path.read_text())
        return None

    def oom_kills(self) -> int:
        """How many times a process of the group was killed for memory so far."""
        directory = self.directories.get("memory")
        if directory is None:
            return 0
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        with contextlib.suppress(OSError, ValueError):
            for line in (directory / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def remove(self, tries: int = 50) -> bool:
        """Remove the group (killing what is left); whether it is gone."""
        self.kill()
        gone = True
        for directory in set(self.directories.values()):
            for _ in range(tries):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # a process waiting to be reaped leaves within moments
                    time.sleep(0.05)
            else:
                gone = False
        return gone
