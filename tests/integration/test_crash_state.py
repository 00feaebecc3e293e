"""What a crash leaves in the state, met by the next start (issue 14).

Stored pids: after a crash the hub reads its servers' pids from its database, and a pid the
kernel has given to an unrelated process in the meantime must never be signalled (a reused
pid made the hub kill an unrelated root process 60 s after start). The attack, on the real
stack: bob's server runs; everything is killed at once (a power loss: the server's control
group is gone too); an unrelated root process (the decoy) now holds the pid the hub stored,
which is written into the hub's database as the kernel would have reused it; the stack starts
again on the same state. The hub must take bob's server for stopped, say why, and leave the
decoy alone.

The hub's database: truncated to 0 bytes it made the hub start silently empty (16 users
gone). ``statbox up`` must refuse it with the way out, change nothing, and the way out
(``statbox backup restore``) must bring the users back.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from statbox.configure.hubdb import MARKER, check_local
from statbox.modes.local.stack import free_port
from tests.integration.conftest import assert_all_gone, make_stack
from tests.integration.hubclient import HubUser

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CGROUPS = Path("/sys/fs/cgroup")


def stored_state(database: Path, user: str) -> dict:
    with contextlib.closing(sqlite3.connect(database)) as db:
        row = db.execute(
            "SELECT spawners.state FROM spawners JOIN users ON spawners.user_id = users.id "
            "WHERE users.name = ? AND spawners.name = ''",
            (user,),
        ).fetchone()
    return json.loads(row[0]) if row and row[0] else {}


def store_state(database: Path, user: str, state: dict) -> None:
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute(
            "UPDATE spawners SET state = ? WHERE name = '' AND user_id = "
            "(SELECT id FROM users WHERE name = ?)",
            (json.dumps(state), user),
        )


def cgroup_folders(pid: int) -> list[Path]:
    """The control-group folders (one per v1 controller, or the v2 one) ``pid`` is in."""
    folders = []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            folder = CGROUPS / controller.removeprefix("name=") / path.lstrip("/")
            if path.strip("/") and folder.is_dir() and folder not in folders:
                folders.append(folder)
    return folders


def power_loss(stack, server_pid: int) -> None:
    """Kill -9 the whole stack, the server with everything in its group, and remove the
    server's group, as a reboot would."""
    folders = [f for f in cgroup_folders(server_pid) if "statbox-servers" in str(f)]
    for process in stack.process_tree():
        with contextlib.suppress(psutil.Error):
            process.kill()
    for folder in folders:
        with contextlib.suppress(OSError):
            for pid in (folder / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)
    stack.proc.wait(10)
    # The crashed stack's trees, as a reboot leaves none: the server's and the clusters'
    # (the gateway's own group is in it). Only empty groups can be removed.
    trees = [f.parent for f in folders]
    trees += [t.with_name(t.name.replace("statbox-servers-", "statbox-dask-")) for t in trees]
    deadline = time.monotonic() + 10
    for tree in trees:
        for folder in [*sorted(tree.rglob("*"), key=lambda p: -len(p.parts)), tree]:
            while folder.is_dir() and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    folder.rmdir()
                time.sleep(0.05)
            assert not folder.is_dir(), f"{folder} still holds processes"


def test_a_reused_pid_is_never_signalled_after_a_crash(local_stack, passwords):
    bob = HubUser(local_stack.base_url, "bob")
    bob.login(passwords["user"])
    bob.create_token()
    bob.start_server()
    database = local_stack.state_dir / "jupyterhub.sqlite"
    state = stored_state(database, "bob")
    server_pid = state["pid"]
    assert psutil.Process(server_pid).is_running()
    # What the hub keeps to know its server again (not the pid alone).
    assert state.get("pid_started") == psutil.Process(server_pid).create_time()
    assert state.get("pid_cgroup") in {str(f) for f in cgroup_folders(server_pid)}

    power_loss(local_stack, server_pid)
    # An unrelated root process, killed by any of SIGINT, SIGTERM or SIGKILL, holds the
    # server's pid now.
    decoy = subprocess.Popen(["sleep", "600"], start_new_session=True)
    again = None
    try:
        store_state(database, "bob", {**state, "pid": decoy.pid})
        again = make_stack(local_stack.config, local_stack.state_dir)
        again.start()
        bob = HubUser(again.base_url, "bob")
        bob.login(passwords["user"])
        bob.create_token()
        # The hub decides bob's server is gone (stock JupyterHub: "running" until its URL
        # fails to answer for http_timeout, then SIGINT, SIGTERM, SIGKILL to the decoy).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if bob.api("GET", "/hub/api/users/bob").json().get("servers") == {}:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the hub still counts bob's server as running")
        assert decoy.poll() is None, f"the decoy got signal {-decoy.returncode}"
        hub_log = (local_stack.state_dir / "logs" / "hub.log").read_text(errors="replace")
        assert f"bob's server (pid {decoy.pid}) is gone: it started at" in hub_log
        # bob is not locked out: a new server starts.
        bob.start_server()
        assert decoy.poll() is None
        tree = again.process_tree()
        assert again.stop(signal.SIGTERM) == 0
        assert_all_gone(tree)
    finally:
        decoy.kill()
        decoy.wait()
        if again is not None and again.proc is not None and again.proc.poll() is None:
            tree = again.process_tree()
            with contextlib.suppress(Exception):
                again.stop(signal.SIGTERM, timeout=30)
            for process in tree:
                with contextlib.suppress(psutil.Error):
                    process.kill()


def statbox(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "statbox.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def users(database: Path) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return db.execute("SELECT name, created FROM users ORDER BY name").fetchall()


def test_an_emptied_hub_database_is_refused_and_a_backup_brings_it_back(
    local_stack, passwords, tmp_path
):
    if local_stack.proc.poll() is None:  # run alone: bob has not been here yet
        bob = HubUser(local_stack.base_url, "bob")
        bob.login(passwords["user"])
        assert local_stack.stop(signal.SIGTERM) == 0
    state, config = local_stack.state_dir, str(local_stack.config)
    database = state / "jupyterhub.sqlite"
    assert (state / MARKER).exists(), "the hub ran, and its tables were not marked"
    known = users(database)
    assert "bob" in [name for name, _ in known]
    made = statbox(
        "backup", "create", "--config", config, "--state-dir", str(state),
        "--out", str(tmp_path / "backup"),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr

    os.truncate(database, 0)
    up = subprocess.Popen(
        [sys.executable, "-m", "statbox.cli", "up", "--config", config,
         "--port", str(free_port()), "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "STATBOX_USER_PASSWORD": passwords["user"],
             "STATBOX_ADMIN_PASSWORD": passwords["admin"]},
    )  # fmt: skip
    try:
        out, err = up.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        # It started on the emptied database (45db982): stop all of it, then fail.
        tree = [psutil.Process(up.pid), *psutil.Process(up.pid).children(recursive=True)]
        up.send_signal(signal.SIGTERM)
        out, err = up.communicate(timeout=60)
        assert_all_gone(tree)
        pytest.fail(f"statbox up started on an emptied hub database:\n{out[-2000:]}")
    said = out + err
    assert up.returncode == 4, said
    assert f"the hub database {database} is empty (0 bytes)" in said
    assert "statbox backup restore" in said
    assert "Traceback" not in said
    assert database.stat().st_size == 0, "the refused start wrote to the database"

    restored = statbox(
        "backup", "restore", str(tmp_path / "backup"), "--config", config,
        "--state-dir", str(state),
    )  # fmt: skip
    assert restored.returncode == 0, restored.stderr
    assert users(database) == known
    # The restored database passes the check `statbox up` makes; a restored stack serving
    # its users is tests/integration/test_backup_live.py's (one stack start less here).
    check_local(state)
