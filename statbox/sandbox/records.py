"""Process ids that a hub or gateway stores, checked before anything is signalled.

A pid alone names whatever process has it now. After a crash or a power loss the hub and the
gateway read the pids of servers, schedulers and workers from their databases; by then the
kernel may have given those numbers to unrelated processes (measured: a reused pid made the
hub kill an unrelated root process 60 s after start). So a stored process is its pid *and*
its start time (psutil's ``create_time``, from the kernel: the same for as long as the process
lives, different for any later holder of the pid) *and*, where it was started in one, its
control group (only processes started inside a group are in it). A process matches only if
everything recorded matches; a pid recorded with nothing else to check it by matches nothing.

The same record serves local mode's supervisor (``<state>/run/processes.json``), which also
records its parts' command lines and the control groups the kernel lists for them
(:meth:`ProcessRecord.of` with ``command=True``): its parts run in no group of Statbox's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import psutil

from statbox.sandbox.cgroups import Cgroup

PID_KEY = "pid"
STARTED_KEY = "pid_started"
CGROUP_KEY = "pid_cgroup"
CMDLINE_KEY = "pid_cmdline"
PROC_CGROUP_KEY = "pid_proc_cgroup"

START_TOLERANCE = 1.0
"""Seconds. psutil's start time is the kernel's (ticks since boot, fixed for the process's
life) plus the boot time, which the kernel recomputes from the wall clock: a clock step can
move it by a second. A later holder of the pid started after the recorded process died, in
practice long after (the kernel hands pids out in turn); and in a control group, the group
tells them apart too."""


@dataclass(frozen=True)
class ProcessRecord:
    """What a spawner or backend stores of a process it started, to know it again."""

    pid: int
    started: float | None = None
    """``psutil.Process(pid).create_time()`` when it was started."""
    cgroup: str | None = None
    """The folder (one controller's) of the control group it was started in."""
    cmdline: tuple[str, ...] | None = None
    """Its command line, where recorded."""
    proc_cgroup: str | None = None
    """Its control groups as ``/proc/<pid>/cgroup`` listed them, where recorded."""

    @classmethod
    def of(cls, pid: int, cgroup: Cgroup | None = None, *, command: bool = False) -> ProcessRecord:
        """The record of ``pid``, a child just started (not yet waited for: its pid cannot
        have been reused), in ``cgroup`` if given; with ``command``, its command line and
        the control groups the kernel lists for it are recorded and checked too."""
        started: float | None
        cmdline: tuple[str, ...] | None = None
        try:
            process = psutil.Process(pid)
            started = process.create_time()
            if command:
                cmdline = tuple(process.cmdline())
        except psutil.Error:
            started = None  # already gone: the record then matches nothing
        return cls(
            pid,
            started,
            str(_membership_folder(cgroup)) if cgroup else None,
            cmdline,
            cgroup_of(pid) if command else None,
        )

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ProcessRecord | None:
        """The record in a stored state (None without a pid); ill-typed values are dropped,
        so a record read from a damaged database matches nothing rather than raising."""
        pid = state.get(PID_KEY)
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            return None
        started = state.get(STARTED_KEY)
        cgroup = state.get(CGROUP_KEY)
        cmdline = state.get(CMDLINE_KEY)
        proc_cgroup = state.get(PROC_CGROUP_KEY)
        return cls(
            pid,
            float(started) if isinstance(started, int | float) else None,
            cgroup if isinstance(cgroup, str) and cgroup else None,
            tuple(str(arg) for arg in cmdline) if isinstance(cmdline, list) else None,
            proc_cgroup if isinstance(proc_cgroup, str) else None,
        )

    def state(self) -> dict[str, Any]:
        """The keys to store beside the rest of a spawner's or cluster's state."""
        found: dict[str, Any] = {PID_KEY: self.pid}
        if self.started is not None:
            found[STARTED_KEY] = self.started
        if self.cgroup is not None:
            found[CGROUP_KEY] = self.cgroup
        if self.cmdline is not None:
            found[CMDLINE_KEY] = list(self.cmdline)
        if self.proc_cgroup is not None:
            found[PROC_CGROUP_KEY] = self.proc_cgroup
        return found

    def mismatch(self) -> str | None:
        """Why the process now holding the pid is not the one recorded (it is gone, or it is
        another one); None when it is the recorded one, alive."""
        if self.started is None and self.cgroup is None:
            return "nothing recorded but the pid (its start time and control group unknown)"
        try:
            process = psutil.Process(self.pid)
            started = process.create_time()
            if process.status() == psutil.STATUS_ZOMBIE:
                return "it has exited"
        except psutil.NoSuchProcess:
            return "no process has it"
        except psutil.Error as error:
            return f"it cannot be inspected ({error})"
        if self.started is not None and abs(started - self.started) > START_TOLERANCE:
            return f"it started at {started:.2f}, the recorded process at {self.started:.2f}"
        if self.cgroup is not None and self.pid not in _members(Path(self.cgroup)):
            return f"it is not in the control group {self.cgroup}"
        try:
            if self.cmdline is not None and tuple(process.cmdline()) != self.cmdline:
                return "it runs another command"
        except psutil.Error as error:
            return f"it cannot be inspected ({error})"
        if self.proc_cgroup is not None and cgroup_of(self.pid) != self.proc_cgroup:
            return "it is in other control groups"
        return None

    def is_running(self) -> bool:
        return self.mismatch() is None

    def find(self) -> psutil.Process | None:
        """The recorded process if it still runs and is still the same one; else None."""
        if self.mismatch() is not None:
            return None
        try:
            return psutil.Process(self.pid)
        except psutil.Error:
            return None

    def describe(self) -> str:
        """The pid and, where recorded, the start of the command line: for messages."""
        if self.cmdline is None:
            return f"pid {self.pid}"
        return f"pid {self.pid}, `{' '.join(self.cmdline)[:100]}`"

    def stop_tree(self, timeout: float) -> None:
        """Stop the recorded process and everything it runs: SIGTERM to all, then SIGKILL to
        what is left after ``timeout`` seconds. Nothing if the pid's holder is not the
        recorded process.

        For a sandbox with no control group (Statbox run without root): a signal to bwrap's
        own process ends it alone, and what it runs, reparented away, would live on. The
        tree is taken before any signal; psutil never signals a pid reused since."""
        if self.mismatch() is not None:
            return
        try:
            top = psutil.Process(self.pid)
            tree = [top, *top.children(recursive=True)]
        except psutil.Error:
            return
        for process in reversed(tree):  # the command first, then bwrap around it
            with contextlib.suppress(psutil.Error):
                process.terminate()
        _, alive = psutil.wait_procs(tree, timeout=timeout)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(alive, timeout=5)

    def signal(self, signum: int) -> bool:
        """Send ``signum`` to the recorded process if it is still the one holding the pid;
        whether it was (a pid now held by another process is never signalled)."""
        try:
            # A descriptor of the process holding the pid now, taken before the check: what
            # is checked is what is signalled, even if the pid changes hands in between.
            handle = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return False
        try:
            if self.mismatch() is not None:
                return False
            signal.pidfd_send_signal(handle, signum)
        except ProcessLookupError:
            return False
        finally:
            os.close(handle)
        return True


def cgroup_of(pid: int) -> str:
    """The process's control groups as the kernel lists them ('' where it cannot say)."""
    try:
        return Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return ""


def _membership_folder(cgroup: Cgroup) -> Path:
    # The pids controller's folder: every tree has it (CgroupTree.detect requires it).
    return cgroup.directories.get("pids", next(iter(cgroup.directories.values())))


def _members(folder: Path) -> set[int]:
    with contextlib.suppress(OSError, ValueError):
        return {int(line) for line in (folder / "cgroup.procs").read_text().split()}
    return set()


class RecordedProcessesBackend:
    """For Dask Gateway's ``LocalBackend`` (put first among the bases): schedulers and
    workers are stored as :class:`ProcessRecord`, and only a process matching its record is
    ever checked alive or signalled.

    Upstream stores a bare pid in each cluster's and worker's state, in the gateway's
    database on disk, and after a restart polls it with signal 0 and stops it with SIGINT,
    SIGTERM then SIGKILL: a reused pid would be taken for a live scheduler, then signalled.
    Here a pid whose holder does not match its record is a process gone (the gateway then
    marks the cluster or worker failed), and nothing is sent to it. ``group_of(pid)``: the
    control group a process was just started in (subclasses that start them in one)."""

    sigint_timeout: float
    sigterm_timeout: float
    sigkill_timeout: float
    log: Any
    _stopping: dict[int, ProcessRecord]

    def group_of(self, pid: int) -> Cgroup | None:
        return None

    def _recorded(self) -> dict[int, ProcessRecord]:
        """Records of the processes being stopped, by pid (for :meth:`stop_process`)."""
        found: dict[int, ProcessRecord] | None = getattr(self, "_stopping", None)
        if found is None:
            found = {}
            self._stopping = found
        return found

    def _with_record(self, state: dict[str, Any]) -> dict[str, Any]:
        pid = state.get(PID_KEY)
        if not isinstance(pid, int):
            return state
        return {**state, **ProcessRecord.of(pid, self.group_of(pid)).state()}

    async def do_start_cluster(self, cluster: Any) -> AsyncIterator[dict[str, Any]]:
        async for state in cast(Any, super()).do_start_cluster(cluster):
            yield self._with_record(state)

    async def do_start_worker(self, worker: Any) -> AsyncIterator[dict[str, Any]]:
        async for state in cast(Any, super()).do_start_worker(worker):
            yield self._with_record(state)

    def _check_status(self, o: Any) -> bool:
        record = ProcessRecord.from_state(o.state)
        return record is not None and record.is_running()

    async def _stop_recorded(self, state: dict[str, Any], what: str) -> None:
        record = ProcessRecord.from_state(state)
        if record is None:
            return
        why = record.mismatch()
        if why is not None:
            self.log.warning("%s (pid %d) is gone: %s; not signalled", what, record.pid, why)
            return
        self._recorded()[record.pid] = record
        await cast(Any, self).stop_process(record.pid)

    async def do_stop_cluster(self, cluster: Any) -> None:
        """Upstream's, stopping the scheduler only if it is still the recorded process."""
        await self._stop_recorded(cluster.state, f"cluster {cluster.name}'s scheduler")
        workdir = cluster.state.get("workdir")
        if workdir is not None:
            cast(Any, self).cleanup_working_directory(workdir)

    async def do_stop_worker(self, worker: Any) -> None:
        await self._stop_recorded(worker.state, f"worker {worker.name}")

    async def stop_process(self, pid: int) -> None:
        """SIGINT, SIGTERM then SIGKILL, each sent only while the pid's holder is still the
        recorded process (upstream's sends them to the pid, whoever holds it by then)."""
        record = self._recorded().pop(pid, None)
        if record is None:
            self.log.warning("pid %d: no record of the process; not signalled", pid)
            return
        for signum, timeout in (
            (signal.SIGINT, self.sigint_timeout),
            (signal.SIGTERM, self.sigterm_timeout),
            (signal.SIGKILL, self.sigkill_timeout),
        ):
            if not record.signal(signum):
                return
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not record.is_running():
                    return
                await asyncio.sleep(0.1)
        self.log.warning("pid %d did not stop", pid)


def pid_file_process(pid_file: Path, command_word: str) -> int | None:
    """The live process a pid file names, if it is still the one that wrote it: started no
    later than the file was written, ``command_word`` in its command line; else None (no
    file, or its pid reused since by a process that started after it)."""
    try:
        written = pid_file.stat().st_mtime
        pid = int(pid_file.read_text().strip())
        process = psutil.Process(pid)
        started = process.create_time()
        command = " ".join(process.cmdline())
    except (OSError, ValueError, psutil.Error):
        return None
    if started > written + START_TOLERANCE or command_word not in command:
        return None
    return pid
