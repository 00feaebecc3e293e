"""Stored pids after a crash: a pid now held by another process is never signalled.

The attack (issue 14): the hub (or the gateway) reads a server's pid from its database after
a crash or a power loss; the kernel has given that number to an unrelated process; stock
JupyterHub signals it. Here the decoy is a real process of ours and the record points at it,
which is what the hub sees when the pid has been reused. Real processes, real cgroups (root).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from statbox.sandbox import CgroupTree, ResourceCaps
from statbox.sandbox.records import ProcessRecord

ROOT = os.geteuid() == 0


@pytest.fixture
def decoy() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process: killed by SIGINT, SIGTERM or SIGKILL, whichever arrives."""
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


def _exited_record() -> ProcessRecord:
    """The record of a process that ran and was reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    record = ProcessRecord.of(proc.pid)
    proc.wait()
    return record


def _earlier(proc: subprocess.Popen[bytes], seconds: float = 60) -> float:
    """A start time ``seconds`` before ``proc``'s: the server the hub recorded, which died
    before the kernel gave its pid to ``proc``."""
    return psutil.Process(proc.pid).create_time() - seconds


def test_a_started_process_is_known_by_its_record(decoy) -> None:
    record = ProcessRecord.of(decoy.pid)
    assert record.started == psutil.Process(decoy.pid).create_time()
    assert record.mismatch() is None
    assert ProcessRecord.from_state(record.state()) == record
    assert record.signal(0) is True


def test_a_reused_pid_is_gone_and_never_signalled(decoy) -> None:
    # The hub's view after a restart: the stored pid, now the decoy's; the stored start time.
    reused = ProcessRecord(decoy.pid, _earlier(decoy))
    assert "started at" in (reused.mismatch() or "")
    for signum in (0, signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        assert reused.signal(signum) is False
    assert decoy.poll() is None


# A sandbox without a control group, as bwrap runs one without root: what it runs is in a
# session of its own and outlives a signal to bwrap's process (which is what upstream sends).
SANDBOX_LIKE = """
import subprocess, sys, time
child = subprocess.Popen(["sleep", "600"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
"""


def test_stopping_a_tree_stops_what_the_process_runs_too() -> None:
    top = subprocess.Popen([sys.executable, "-c", SANDBOX_LIKE], stdout=subprocess.PIPE)
    try:
        assert top.stdout is not None
        child = psutil.Process(int(top.stdout.readline()))
        parent = psutil.Process(top.pid)
        ProcessRecord.of(top.pid).stop_tree(timeout=5)
        assert not parent.is_running() and not child.is_running()
    finally:
        if top.poll() is None:
            top.kill()
            top.wait()
        if top.stdout is not None:
            top.stdout.close()


def test_stopping_the_tree_of_a_reused_pid_signals_nothing(decoy) -> None:
    ProcessRecord(decoy.pid, _earlier(decoy)).stop_tree(timeout=1)
    assert decoy.poll() is None


def test_a_pid_with_nothing_to_check_it_by_matches_nothing(decoy) -> None:
    bare = ProcessRecord(decoy.pid)
    assert bare.mismatch() is not None
    assert bare.signal(signal.SIGTERM) is False
    assert decoy.poll() is None


def test_an_exited_process_is_gone() -> None:
    assert _exited_record().mismatch() is not None


@pytest.mark.parametrize(
    "state",
    [{}, {"pid": "12"}, {"pid": True}, {"pid": -1}, {"pid": 0}],
)
def test_ill_typed_states_are_no_record(state) -> None:
    assert ProcessRecord.from_state(state) is None


def test_ill_typed_start_and_group_are_dropped(decoy) -> None:
    record = ProcessRecord.from_state({"pid": decoy.pid, "pid_started": "x", "pid_cgroup": 3})
    assert record == ProcessRecord(decoy.pid)
    assert record is not None and not record.is_running()


@pytest.fixture
def group() -> Iterator[object]:
    if not ROOT:
        pytest.skip("cgroups need root")
    tree = CgroupTree.detect(f"statbox-test-{uuid.uuid4().hex[:8]}")
    assert tree is not None, "root without writable cgroups"
    found = tree.group("server", ResourceCaps(processes=16))
    yield found
    found.remove()
    tree.remove()


def test_a_process_outside_the_recorded_group_is_not_the_server(group, decoy) -> None:
    """Same pid and start time (the decoy itself) but not in the server's group: a record
    whose group does not hold the pid does not match."""
    record = ProcessRecord.of(decoy.pid, group)  # type: ignore[arg-type]
    assert "control group" in (record.mismatch() or "")
    assert record.signal(signal.SIGTERM) is False
    assert decoy.poll() is None


def _wait_joined(proc: subprocess.Popen[bytes]) -> None:
    """Until the shell of ``Cgroup.entering`` has joined every controller's group (one by
    one) and exec'd its command: before that, it is in some of the group's folders only."""
    deadline = time.monotonic() + 30
    while psutil.Process(proc.pid).cmdline()[:1] != ["sleep"]:
        assert time.monotonic() < deadline, "the shell never ran its command"
        time.sleep(0.02)


def test_a_process_in_its_group_matches(group) -> None:
    proc = subprocess.Popen(group.entering(["sleep", "600"]))  # type: ignore[attr-defined]
    try:
        record = ProcessRecord.of(proc.pid, group)  # type: ignore[arg-type]
        _wait_joined(proc)
        assert proc.pid in group.pids()  # type: ignore[attr-defined]
        assert record.mismatch() is None
    finally:
        proc.kill()
        proc.wait()


def _spawner(tmp_path, name: str) -> object:
    from statbox.spawners.local import StatboxLocalSpawner

    user = SimpleNamespace(name="bob", groups=[], url="/user/bob/")
    spawner = StatboxLocalSpawner(
        user=user, home_root=str(tmp_path / "homes"), cgroup_tree=name, term_timeout=1
    )
    spawner.interrupt_timeout = 1
    spawner.kill_timeout = 1
    return spawner


def test_the_spawner_takes_a_reused_pid_for_a_stopped_server(tmp_path, decoy) -> None:
    """The hub restarts with bob's stored state pointing at the decoy: poll says stopped,
    stop signals nothing; the decoy lives (on 45db982 both signalled it)."""
    name = f"statbox-test-{uuid.uuid4().hex[:8]}"
    spawner: object = _spawner(tmp_path, name)
    try:
        spawner.load_state({"pid": decoy.pid, "pid_started": _earlier(decoy)})  # type: ignore[attr-defined]
        assert spawner.pid == decoy.pid  # type: ignore[attr-defined]
        assert asyncio.run(spawner.poll()) == 0  # type: ignore[attr-defined]
        spawner.load_state({"pid": decoy.pid})  # type: ignore[attr-defined]  # a legacy state
        asyncio.run(spawner.stop())  # type: ignore[attr-defined]
        asyncio.run(spawner.stop(now=True))  # type: ignore[attr-defined]
        assert decoy.poll() is None
    finally:
        tree = CgroupTree.detect(name) if ROOT else None
        if tree is not None:
            tree.remove()


def test_the_spawner_keeps_a_server_it_can_recognise(tmp_path, decoy) -> None:
    """The stored record of a live process (start time matching) is taken back as running,
    and stored again as it was."""
    name = f"statbox-test-{uuid.uuid4().hex[:8]}"
    spawner: object = _spawner(tmp_path, name)
    try:
        state = ProcessRecord.of(decoy.pid).state()
        spawner.load_state(state)  # type: ignore[attr-defined]
        assert asyncio.run(spawner.poll()) is None  # type: ignore[attr-defined]
        assert spawner.get_state() == state  # type: ignore[attr-defined]
    finally:
        tree = CgroupTree.detect(name) if ROOT else None
        if tree is not None:
            tree.remove()


# Dask Gateway's local backends: the same attack on the gateway's stored schedulers and workers.
BACKENDS = [
    "statbox.configure.gateway.PerUserAccountBackend",
    "statbox.spawners.local_dask.SandboxedLocalBackend",
]


def _backend(path: str) -> object:
    module, name = path.rsplit(".", 1)
    backend = getattr(__import__(module, fromlist=[name]), name)()
    backend.sigint_timeout = backend.sigterm_timeout = backend.sigkill_timeout = 1
    if not hasattr(backend, "_members"):
        backend._members = {}  # set by setup(), which starts the gateway's own group
    return backend


@pytest.mark.parametrize("path", BACKENDS)
def test_the_gateway_takes_a_reused_pid_for_a_stopped_scheduler(path, decoy) -> None:
    """The gateway restarts with a worker's and a cluster's stored pids now the decoy's:
    neither is counted alive nor stopped by a signal (upstream: alive, then SIGINT)."""
    backend: Any = _backend(path)
    reused = {"pid": decoy.pid, "pid_started": _earlier(decoy)}
    legacy = {"pid": decoy.pid}  # stored by upstream's backend, before this one
    for state in (reused, legacy):
        assert backend._check_status(SimpleNamespace(state=state)) is False
        cluster = SimpleNamespace(state=state, name="c")
        asyncio.run(backend.do_stop_worker(SimpleNamespace(state=state, name="w", cluster=cluster)))
        asyncio.run(backend.do_stop_cluster(cluster))
    assert decoy.poll() is None


@pytest.mark.parametrize("path", BACKENDS)
def test_the_gateway_stops_a_worker_it_recorded(path) -> None:
    backend: Any = _backend(path)
    proc = subprocess.Popen(["sleep", "600"])
    try:
        state = backend._with_record({"pid": proc.pid})
        assert state["pid_started"] == psutil.Process(proc.pid).create_time()
        worker = SimpleNamespace(state=state, name="w", cluster=SimpleNamespace(name="c"))
        assert backend._check_status(worker) is True
        handle = psutil.Process(proc.pid)
        asyncio.run(backend.do_stop_worker(worker))
        # SIGINT as upstream (the docker gateway's own uid per user); a sandbox without a
        # control group (local mode without root) is stopped whole, from SIGTERM on
        assert not handle.is_running() or handle.status() == psutil.STATUS_ZOMBIE
    finally:
        proc.kill()
        proc.wait()


def test_a_bare_pid_in_the_users_group_is_taken_back(tmp_path) -> None:
    """A state stored by a hub before records (the pid alone): the server is known again if
    the pid is in the user's control group, and stored with a full record from then on."""
    if not ROOT:
        pytest.skip("cgroups need root")
    name = f"statbox-test-{uuid.uuid4().hex[:8]}"
    spawner: Any = _spawner(tmp_path, name)
    tree = CgroupTree.detect(name)
    assert tree is not None
    group = tree.group("bob", ResourceCaps(processes=16))
    proc = subprocess.Popen(group.entering(["sleep", "600"]))
    try:
        _wait_joined(proc)
        spawner.load_state({"pid": proc.pid})
        assert asyncio.run(spawner.poll()) is None
        assert spawner.get_state()["pid_started"] == psutil.Process(proc.pid).create_time()
    finally:
        proc.kill()
        proc.wait()
        group.remove()
        tree.remove()


# `statbox backup restore` refuses while a hub uses the state: after a crash, the hub's pid
# file names a pid a stranger may hold now, which must not block the way back.
def test_a_stale_hub_pid_file_does_not_block_a_restore(tmp_path, decoy) -> None:
    from statbox.modes.local.deployment import LocalDeployment

    pid_file = tmp_path / "run" / "jupyterhub.pid"
    pid_file.parent.mkdir()
    pid_file.write_text(str(decoy.pid))
    before = _earlier(decoy)  # written by the hub that crashed, before the decoy started
    os.utime(pid_file, (before, before))
    LocalDeployment().check_restore(tmp_path)  # upstream's check: "a hub (pid ...) is using"


def test_a_running_hub_blocks_a_restore(tmp_path) -> None:
    from statbox.errors import EnvironmentProblem
    from statbox.modes.local.deployment import LocalDeployment

    hub = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "jupyterhub"])
    try:
        pid_file = tmp_path / "run" / "jupyterhub.pid"
        pid_file.parent.mkdir()
        pid_file.write_text(str(hub.pid))
        with pytest.raises(EnvironmentProblem, match=f"a hub \\(pid {hub.pid}\\)"):
            LocalDeployment().check_restore(tmp_path)
    finally:
        hub.kill()
        hub.wait()
