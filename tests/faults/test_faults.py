"""Faults on the real local stack: kill -9 the hub, the proxy, the gateway, then ``statbox up``
itself, in turn, with a class working; then a power loss; then a clean stop.

One stack for the module, faults in sequence (each test leaves the stack serving for the
next). After each fault: the hub serves again through the proxy on its own (or after one
``statbox up``, for the supervisor) within 30 s; a fresh login reaches the user's existing
server; a kernel started before the fault still holds its variables; a Dask cluster made
before it still computes; users, files and tokens are kept; a decoy process of nobody's is
never signalled. The final stop takes at most 10 s and leaves nothing.

On main before the supervisor (45db982) the first fault already failed: a killed hub took
the whole stack down with it (gateway, clusters, servers), leaving the proxy on the port.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import requests

from statbox.configure.runtime import Ports
from statbox.dashboards.firewall import dashboards_firewall, iptables
from statbox.modes.local.supervisor import RECORD_FILE, RecordBook
from tests.integration.conftest import (
    PASSWORDS,
    assert_all_gone,
    make_stack,
    stopped_whatever_happens,
)
from tests.integration.hubclient import HubUser, StatboxProcess

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

RECOVERY = 30.0
"""Seconds the stack has to serve again after a fault."""
STOP = 10.0
"""Seconds a clean stop may take, servers running."""

CLUSTER = """
from dask_gateway import Gateway
gateway = Gateway()
cluster = gateway.new_cluster(worker_cores=1, shutdown_on_close=False)
cluster.scale(1)
client = cluster.get_client()
client.wait_for_workers(1, timeout=180)
print(cluster.name, client.submit(sum, range(10)).result())
"""


class Kernel:
    """A kernel started on a user's server before the faults, used after each of them
    (by a fresh login, so through a new session and token)."""

    def __init__(self, user: HubUser):
        response = user.api("POST", f"/user/{user.name}/api/kernels", json={"name": "python3"})
        assert response.status_code == 201, response.text
        self.id = response.json()["id"]
        self.name = user.name

    def run(self, user: HubUser, code: str, timeout: float = 240) -> str:
        result = user._execute(self.id, code, timeout)
        assert result.error is None, (result.error, result.stderr)
        return result.stdout.strip()


def fresh_login(base_url: str, name: str) -> HubUser:
    user = HubUser(base_url, name)
    user.login(PASSWORDS["user"])
    user.create_token()
    return user


def serves_within(base_url: str, seconds: float, since: float) -> float:
    """Seconds from ``since`` until the hub's login page answers 200 through the proxy."""
    while time.monotonic() - since < seconds:
        try:
            if requests.get(f"{base_url}/hub/login", timeout=2).status_code == 200:
                return time.monotonic() - since
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base_url} did not serve within {seconds} s")


def own_cgroups() -> list[Path]:
    """The folders of this process's control groups (where the stack's trees are made)."""
    found = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            found.append(Path("/sys/fs/cgroup", controller, path.lstrip("/")))
    return found


def in_trees(public_port: int) -> list[psutil.Process]:
    """The processes in the stack's servers' and clusters' control groups."""
    found = []
    for base in own_cgroups():
        for tree in (f"statbox-servers-{public_port}", f"statbox-dask-{public_port}"):
            for procs in (base / tree).rglob("cgroup.procs"):
                for pid in procs.read_text().split():
                    with contextlib.suppress(psutil.Error):
                        found.append(psutil.Process(int(pid)))
    return list({p.pid: p for p in found}.values())


def recorded(state_dir: Path, name: str) -> psutil.Process:
    proc = RecordBook.load(state_dir / "run" / RECORD_FILE).living().get(name)
    assert proc is not None, f"no living {name} recorded"
    return proc


def replaced_within(state_dir: Path, name: str, dead: int, seconds: float, since: float) -> None:
    """Wait until a new process runs as ``name``, recorded in place of the ``dead`` one."""
    while time.monotonic() - since < seconds:
        proc = RecordBook.load(state_dir / "run" / RECORD_FILE).living().get(name)
        if proc is not None and proc.pid != dead:
            return
        time.sleep(0.1)
    raise AssertionError(f"the {name} was not replaced within {seconds} s")


@pytest.fixture(scope="module")
def decoy():
    """A process that is nobody's business: every fault and stop must leave it alone."""
    proc = subprocess.Popen(["sleep", "3600"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture(scope="module")
def stack(stack_settings):
    with stopped_whatever_happens(make_stack(stack_settings)) as started:
        start_in_background(started)
        yield started


def start_in_background(stack: StatboxProcess) -> None:
    """Start ``statbox up`` as ``setsid statbox up &`` from a script does: with SIGINT
    ignored, which its children inherit (JupyterHub stops its services with SIGINT and
    waits 10 s for each that ignores it: a stop took 20 s and was cut short)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stack.start()
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def classroom(stack):
    """alice (a trainee) with a kernel holding a variable and a file saved; ana (an analyst)
    with a kernel holding a client of her running Dask cluster."""
    alice = fresh_login(stack.base_url, "alice")
    alice.start_server()
    ana = fresh_login(stack.base_url, "ana")
    ana.start_server()
    saved = alice.api(
        "PUT",
        "/user/alice/api/contents/notes.txt",
        json={"type": "file", "format": "text", "content": "port calls, week 12"},
    )
    assert saved.status_code in (200, 201), saved.text
    kernels = {"alice": Kernel(alice), "ana": Kernel(ana)}
    kernels["alice"].run(alice, "answer = 41")
    name, total = kernels["ana"].run(ana, CLUSTER).split()
    assert total == "45"
    return {
        "kernels": kernels,
        "cluster": name,
        "started": {u.name: u.api("GET", f"/hub/api/users/{u.name}").json() for u in (alice, ana)},
        "tokens": {u.name: u.token for u in (alice, ana)},
        "users": {u.name: u for u in (alice, ana)},
    }


def assert_class_kept(base_url: str, classroom: dict, kernels: bool = True) -> None:
    """The class as it was: the same servers (not new ones), files, tokens, kernels, cluster."""
    alice = fresh_login(base_url, "alice")
    ana = fresh_login(base_url, "ana")
    for user in (alice, ana):
        model = user.api("GET", f"/hub/api/users/{user.name}").json()
        before = classroom["started"][user.name]
        assert model["created"] == before["created"]
        server, server_before = model["servers"][""], before["servers"][""]
        assert server["ready"], model
        assert server["started"] == server_before["started"], "a new server, not the same one"
        old_token = requests.get(
            f"{base_url}/hub/api/user",
            headers={"Authorization": f"token {classroom['tokens'][user.name]}"},
            timeout=30,
        )
        assert old_token.status_code == 200, old_token.text
    note = alice.api("GET", "/user/alice/api/contents/notes.txt").json()
    assert note["content"] == "port calls, week 12"
    if kernels:
        assert classroom["kernels"]["alice"].run(alice, "print(answer + 1)") == "42"
    computed = classroom["kernels"]["ana"].run(ana, "print(client.submit(sum, range(10)).result())")
    assert computed == "45"


@pytest.mark.parametrize("part", ["hub", "proxy", "gateway"])
def test_a_killed_part_comes_back_and_the_class_keeps_working(stack, classroom, decoy, part):
    victim = recorded(stack.state_dir, part)
    others = {
        name: recorded(stack.state_dir, name).pid
        for name in ("hub", "proxy", "gateway")
        if name != part
    }
    killed = time.monotonic()
    victim.kill()
    if part == "hub":
        # The notebook open in alice's browser works on while the hub is away: the proxy
        # did not go with it.
        victim.wait(5)
        alice = classroom["users"]["alice"]
        assert classroom["kernels"]["alice"].run(alice, "print(answer)", timeout=5) == "41"
        hub_health = f"{stack.base_url}/hub/health"
        with contextlib.suppress(requests.RequestException):
            assert requests.get(hub_health, timeout=2).status_code != 200, "hub back already"
    serves_within(stack.base_url, RECOVERY, killed)
    # The others kept running: a dead part is restarted alone.
    assert {name: recorded(stack.state_dir, name).pid for name in others} == others
    replaced_within(stack.state_dir, part, victim.pid, RECOVERY, killed)
    assert_class_kept(stack.base_url, classroom)
    if part == "gateway":
        # The restarted gateway took the cluster back: listed, running, and reachable anew.
        ana = fresh_login(stack.base_url, "ana")
        listed = classroom["kernels"]["ana"].run(
            ana,
            "from dask_gateway import Gateway\n"
            f"c = Gateway().connect({classroom['cluster']!r})\n"
            "print(c.get_client().submit(sum, range(5)).result())",
        )
        assert listed == "10"
    assert decoy.poll() is None


def test_a_killed_supervisor_is_replaced_by_one_statbox_up(stack, classroom, decoy):
    """kill -9 of ``statbox up``: hub, proxy and gateway run on, unsupervised; the next
    ``statbox up`` names them, stops them and takes the class back."""
    parts = {name: recorded(stack.state_dir, name) for name in ("hub", "proxy", "gateway")}
    assert stack.proc is not None
    stack.proc.kill()
    stack.proc.wait()
    assert all(p.is_running() for p in parts.values())  # the class works on meanwhile

    again = StatboxProcess(stack.config, stack.port, stack.state_dir, env=stack.env)
    again.log = stack.state_dir.parent / "statbox-up-again.log"  # its own "is running" line
    stack.proc = None
    killed = time.monotonic()
    start_in_background(again)
    stack.proc = again.proc  # the module's fixture stops this one
    serves_within(stack.base_url, RECOVERY, killed)
    output = again.output()
    for name, proc in parts.items():
        assert f"its {name} (pid {proc.pid}" in output
        assert not proc.is_running()
    assert_class_kept(stack.base_url, classroom)
    assert decoy.poll() is None


def test_after_a_power_loss_one_statbox_up_serves_again(stack, classroom, decoy):
    """Everything of the run killed at once (statbox up first, so nothing restarts): the
    records of the run, the hub's and the gateway's databases name processes that are gone.
    One ``statbox up`` serves again; users, files and tokens are kept; servers and clusters
    start anew; nothing else is signalled."""
    ports = Ports.model_validate_json((stack.state_dir / "run" / "ports.json").read_text())
    assert stack.proc is not None
    everything = [*stack.process_tree(), *in_trees(ports.public)]
    for proc in everything:  # the supervisor first
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _, alive = psutil.wait_procs(everything, timeout=10)
    assert alive == []
    stack.proc.wait()
    stack.proc = None
    # After the reboot the system gave the hub's pid to another process: the decoy.
    book = RecordBook.load(stack.state_dir / "run" / RECORD_FILE)
    book.records["hub"] = dataclasses.replace(book.records["hub"], pid=decoy.pid)
    book.save()

    again = StatboxProcess(stack.config, stack.port, stack.state_dir, env=stack.env)
    again.log = stack.state_dir.parent / "statbox-up-after-power-loss.log"
    powered = time.monotonic()
    start_in_background(again)
    stack.proc = again.proc
    serves_within(stack.base_url, RECOVERY, powered)
    alice = fresh_login(stack.base_url, "alice")
    alice.start_server()
    note = alice.api("GET", "/user/alice/api/contents/notes.txt").json()
    assert note["content"] == "port calls, week 12"
    old_token = requests.get(
        f"{stack.base_url}/hub/api/user",
        headers={"Authorization": f"token {classroom['tokens']['alice']}"},
        timeout=30,
    )
    assert old_token.status_code == 200, old_token.text
    ana = fresh_login(stack.base_url, "ana")
    ana.start_server()
    _, total = Kernel(ana).run(ana, CLUSTER).split()
    assert total == "45"
    assert decoy.poll() is None
    assert "previous run" not in again.output()  # nothing of it was running


def test_clean_stop_is_quick_and_leaves_nothing(stack, classroom, decoy):
    ports = Ports.model_validate_json((stack.state_dir / "run" / "ports.json").read_text())
    # Servers and clusters of an earlier run may be orphans, not the new run's descendants:
    # their control groups name them.
    tree = [*stack.process_tree(), *in_trees(ports.public)]
    assert any("singleuser" in " ".join(p.cmdline()) for p in tree)
    assert any("scheduler" in " ".join(p.cmdline()) for p in tree)
    begun = time.monotonic()
    assert stack.stop(signal.SIGTERM) == 0
    took = time.monotonic() - begun
    assert took <= STOP, f"stop took {took:.1f} s"
    assert_all_gone(tree)
    run = stack.state_dir / "run"
    assert not (run / RECORD_FILE).exists()
    assert not (run / "secrets").exists()
    for tree_name in (f"statbox-servers-{ports.public}", f"statbox-dask-{ports.public}"):
        assert [p for p in own_cgroups() if (p / tree_name).exists()] == []
    if iptables() is not None and os.geteuid() == 0:
        chain = dashboards_firewall(stack.state_dir, ports.gateway_http).chain
        listed = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
        assert chain not in listed
    # No stale server records: the hub stopped its servers before it went.
    with sqlite3.connect(stack.state_dir / "jupyterhub.sqlite") as db:
        assert db.execute("select count(*) from servers").fetchone() == (0,)
    assert decoy.poll() is None
