"""Docker mode attacked as a hostile trainee would, and as an operator's bad day would.

Each test is a finding of the production probe (issue 18) written as the attack itself, run
against the real stack on a private engine (tests/docker/conftest.py):

- a user's container opens TCP to PostgreSQL, to another user's server and to the gateway's
  HTTP side (network level; that is reached through the hub's proxy, where the dashboards'
  authentication sits);
- a trainee's Dask worker starts more processes, or holds more memory, than their caps;
- ``docker kill`` of the hub, then of the gateway, with stale pid files planted, then of the
  database: the stack must be whole again (hub and gateway within 30 s each) and the same
  user containers keep running and serving;
- ``docker kill`` of the hub with a notebook open (issue 14): its kernel keeps answering
  through the proxy while the hub is down, as under zero-to-jupyterhub; then of the proxy:
  it is back, routes and all, within 30 s, and the same kernel answers.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import time

import docker
import pytest
import requests

from statbox.configure.hub import GATEWAY_PREFIX
from tests.docker.conftest import RunningStack
from tests.docker.test_docker_stack import in_container, logged_in

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

PROBE = """
import json, socket, sys
results = {}
for name, host, port in json.loads(sys.argv[1]):
    try:
        socket.create_connection((host, port), timeout=3).close()
        results[name] = "open"
    except OSError as exc:
        results[name] = type(exc).__name__
print(json.dumps(results))
"""


def _ip(stack: RunningStack, container: str, network: str) -> str:
    attrs = stack.client.containers.get(container).attrs
    return str(attrs["NetworkSettings"]["Networks"][network]["IPAddress"])


def _probe(container, targets: list[tuple[str, str, int]]) -> dict[str, str]:
    code, out = in_container(container, "python", "-c", PROBE, json.dumps(targets))
    assert code == 0, out
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_a_users_container_reaches_the_hub_and_gateway_and_nothing_else(stack):
    logged_in(stack, "alice")
    logged_in(stack, "bob")
    names = stack.names
    alice, bob = stack.user_container("alice"), stack.user_container("bob")
    bob_network = next(iter(bob.attrs["NetworkSettings"]["Networks"]))
    db_ips = [
        net["IPAddress"]
        for net in stack.client.containers.get(names.db)
        .attrs["NetworkSettings"]["Networks"]
        .values()
    ]
    targets = [
        ("proxy", names.proxy, 8000),
        # Its API (routes, with the token) on the private network's name only.
        ("proxy api", names.proxy, 8001),
        ("proxy api by its private name", names.proxy_api, 8001),
        ("hub api", names.hub, 8081),
        ("hub api by its private name", names.hub_private, 8081),
        ("gateway scheduler proxy", names.gateway, 8786),
        # The gateway's HTTP side (API, dashboards): through the hub's proxy only.
        ("gateway http", names.gateway, 8000),
        ("gateway http by its private name", names.gateway_http, 8000),
        ("db by name", names.db, 5432),
        *[(f"db at {ip}", ip, 5432) for ip in db_ips],
        ("bob's server", _ip(stack, bob.name, bob_network), 8888),
    ]
    reached = _probe(alice, targets)
    print(reached)
    for allowed in ("proxy", "hub api", "gateway scheduler proxy"):
        assert reached[allowed] == "open", reached
    refused = {
        name: state
        for name, state in reached.items()
        if name.startswith(("db", "bob", "gateway http", "proxy api", "hub api by"))
    }
    assert "open" not in refused.values(), refused
    # Each user alone on an internal network of their own, shared only with proxy, hub and
    # gateway.
    own = names.user_network("alice")
    assert set(alice.attrs["NetworkSettings"]["Networks"]) == {own}
    network = stack.client.networks.get(own)
    assert network.attrs["Internal"] is True
    members = {c.name for c in network.containers}
    assert members == {alice.name, names.proxy, names.hub, names.gateway}


def test_swap_is_no_more_than_the_memory_limit_and_the_gateway_is_capped(stack):
    logged_in(stack, "alice")
    host = stack.user_container("alice").attrs["HostConfig"]
    assert host["Memory"] > 0 and host["MemorySwap"] == host["Memory"]
    gateway = stack.client.containers.get(stack.names.gateway).attrs["HostConfig"]
    assert gateway["Memory"] == gateway["MemorySwap"] == 1024**3
    assert gateway["PidsLimit"] == 512 and gateway["NanoCpus"] == 10**9


DASK_ATTACK = """
import json, os, subprocess, sys
from dask_gateway import Gateway

def processes(n):
    started, error = [], None
    for _ in range(n):
        try:
            started.append(subprocess.Popen(["sleep", "60"]))
        except OSError as exc:
            error = type(exc).__name__
            break
    for proc in started:
        proc.kill()
        proc.wait()
    return len(started), error

def memory(mib):
    # In a child process, where Dask's nanny (which watches the worker only) cannot see it.
    code = f"data = b'x' * ({mib} * 2**20); print('held', len(data))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return done.returncode, done.stdout.strip()

def where():
    return os.getpid(), open("/proc/self/cgroup").read()

gateway = Gateway()
cluster = gateway.new_cluster(worker_cores=1, worker_memory=0.5)
try:
    cluster.scale(1)
    client = cluster.get_client()
    client.wait_for_workers(1, timeout=180)
    outcome = {
        "processes": client.submit(processes, 400, pure=False).result(timeout=120),
        "memory": client.submit(memory, 900, pure=False).result(timeout=120),
        "cgroup": client.submit(where, pure=False).result(timeout=60),
    }
finally:
    cluster.shutdown()
print(json.dumps(outcome))
"""


def test_a_trainees_dask_worker_cannot_pass_their_process_and_memory_caps(stack):
    alice = logged_in(stack, "alice")
    result = alice.run(DASK_ATTACK, timeout=500)
    assert result.error is None, result.stderr
    outcome = result.json()
    print(outcome)
    started, error = outcome["processes"]
    # docker.pids_limit is 300 in the tests: the worker, its nanny and threads count too.
    assert started < 300 and error is not None, outcome["processes"]
    code, out = outcome["memory"]
    assert code == -9 and "held" not in out, outcome["memory"]  # killed by the OS at 512 MiB
    _, cgroups = outcome["cgroup"]
    assert "-worker-" in cgroups, cgroups  # a group of the worker's own, not the gateway's


def _wait(check, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except (requests.RequestException, KeyError, docker.errors.APIError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"not back within {timeout} s")


def test_killed_hub_and_gateway_come_back_and_user_servers_keep_serving(stack):
    alice = logged_in(stack, "alice")
    logged_in(stack, "ana")
    admin = {"Authorization": f"token {logged_in(stack, 'admin', started=False).token}"}
    names = stack.names
    before = {name: stack.user_container(name).id for name in ("alice", "ana")}
    hub = stack.client.containers.get(names.hub)
    # Stale pid files naming pid 1 (the container's init) wherever the hub keeps them, now
    # (its tmpfs) and before (its state folder): a hub that trusted one would signal it.
    hub.exec_run(
        ["sh", "-c", "echo 1 > /run/statbox/proxy.pid; echo 1 > /run/statbox/jupyterhub.pid"]
    )
    hub_state = stack.root / "state" / "hub"
    for name in ("proxy.pid", "jupyterhub.pid"):
        (hub_state / name).write_text("1")

    hub.kill()
    back = _wait(lambda: requests.get(f"{stack.url}/hub/health", timeout=2).status_code == 200, 30)
    print(f"hub back in {back:.1f} s")
    hub.reload()
    assert hub.status == "running" and hub.attrs["RestartCount"] == 0
    gateway = stack.client.containers.get(names.gateway)
    gateway.kill()
    health = f"{GATEWAY_PREFIX}/api/health"
    back = _wait(
        lambda: (
            requests.get(
                f"http://{_ip(stack, names.gateway, names.network)}:8000{health}", timeout=2
            ).status_code
            == 200
        ),
        30,
    )
    print(f"gateway back in {back:.1f} s")

    assert stack.proc.poll() is None, "statbox up stopped supervising"
    for name, container_id in before.items():
        container = stack.user_container(name)
        assert container.id == container_id and container.status == "running", name
    # alice's server still serves, through the restarted hub's proxy.
    _wait(lambda: alice.api("GET", "/user/alice/api/status").status_code == 200, 30)
    # The restarted gateway is still on the users' networks.
    gateway.reload()
    assert names.user_network("ana") in gateway.attrs["NetworkSettings"]["Networks"]
    # Nothing signalled the hub's init: it started once and stays up.
    time.sleep(3)
    hub.reload()
    assert hub.status == "running" and hub.attrs["RestartCount"] == 0
    assert "Proxy still running" not in hub.logs(tail=200).decode(errors="replace")
    # The database too: the hub must answer again (reconnecting, or restarted by its policy).
    db = stack.client.containers.get(names.db)
    db.kill()
    time.sleep(2)  # the supervisor's poll and the hub's next request see it down
    back = _wait(
        lambda: (
            db.exec_run(["pg_isready", "--quiet", "--host=127.0.0.1"]).exit_code == 0
            and requests.get(f"{stack.url}/hub/api/users", timeout=5, headers=admin).status_code
            == 200
        ),
        60,
    )
    print(f"database and hub answering again {back + 2:.1f} s after the database was killed")
    for name, container_id in before.items():
        container = stack.user_container(name)
        assert container.id == container_id and container.status == "running", name


def _hub_down(stack: RunningStack) -> bool:
    """The hub's own server does not answer (asked directly, not through the proxy)."""
    try:
        hub = f"http://{_ip(stack, stack.names.hub, stack.names.network)}:8081/hub/health"
        return requests.get(hub, timeout=1).status_code != 200
    except (requests.RequestException, KeyError, docker.errors.APIError):
        return True


def _started(stack: RunningStack, name: str) -> str | None:
    """When the container last started; None if there is no such container."""
    try:
        return str(stack.client.containers.get(name).attrs["State"]["StartedAt"])
    except docker.errors.NotFound:
        return None


def test_open_notebooks_keep_working_while_the_hub_restarts_and_the_proxy_comes_back(stack):
    alice = logged_in(stack, "alice")
    names = stack.names
    before = stack.user_container("alice").id
    kernel = alice.api("POST", "/user/alice/api/kernels", json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    kernel_id = kernel.json()["id"]
    try:
        assert alice._execute(kernel_id, "x = 41; print(x + 1)", 60).stdout.strip() == "42"
        proxy_started = _started(stack, names.proxy)

        stack.client.containers.get(names.hub).kill()
        down = _hub_down(stack)
        # The same kernel, through the proxy, over a new websocket, while the hub is down.
        during = alice._execute(kernel_id, "x += 1; print(x + 1)", 20)
        assert down and _hub_down(stack), "the hub came back too soon to tell"
        assert during.stdout.strip() == "43", during
        # The proxy was not restarted because the hub was.
        assert proxy_started is not None and _started(stack, names.proxy) == proxy_started
        back = _wait(lambda: not _hub_down(stack), 30)
        print(f"hub back in {back:.1f} s; the kernel answered meanwhile")

        proxy = stack.client.containers.get(names.proxy)
        proxy.kill()
        token = {"Authorization": f"token {alice.token}"}

        def served() -> bool:
            # A restarted proxy may have another address; no redirects: the hub's answer
            # for a route it has not given back yet is one.
            url = f"{stack.url}/user/alice/api/status"
            response = requests.get(url, headers=token, timeout=2, allow_redirects=False)
            return response.status_code == 200 and "kernels" in response.json()

        back = _wait(served, 30)
        print(f"proxy back, routes and all, in {back:.1f} s")
        alice.base_url = stack.url
        after = alice._execute(kernel_id, "x += 1; print(x + 1)", 60)
        assert after.stdout.strip() == "44", after  # the same kernel: nothing was lost
        container = stack.user_container("alice")
        assert container.id == before and container.status == "running"
        assert stack.proc.poll() is None, "statbox up stopped supervising"
        # The proxy started again is on alice's network again (she reached it above).
        proxy.reload()
        assert names.user_network("alice") in proxy.attrs["NetworkSettings"]["Networks"]

        # Gone altogether: created again, joined to alice's network again, serving her.
        proxy.remove(force=True)
        back = _wait(served, 30)
        print(f"proxy created again and serving in {back:.1f} s")
        created = stack.client.containers.get(names.proxy)
        assert created.id != proxy.id
        assert names.user_network("alice") in created.attrs["NetworkSettings"]["Networks"]
        alice.base_url = stack.url
        assert alice._execute(kernel_id, "print(x + 1)", 60).stdout.strip() == "44"
        assert stack.user_container("alice").id == before
    finally:
        # Best effort: the kernel ends with alice's container at the stack's stop anyway.
        with contextlib.suppress(requests.RequestException, docker.errors.APIError):
            alice.base_url = stack.url
            alice.api("DELETE", f"/user/alice/api/kernels/{kernel_id}")


GUESSES = """
import json, sys, requests
base, forged, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
session = requests.Session()
# On every request: the hub ties an anonymous form's xsrf token to the address it believes.
session.headers["X-Forwarded-For"] = forged
session.get(f"{base}/hub/login", timeout=10)
xsrf = session.cookies.get("_xsrf")
codes = []
for i in range(count):
    response = session.post(
        f"{base}/hub/login",
        data={"username": f"guess{i}", "password": "not-the-password", "_xsrf": xsrf},
        allow_redirects=False,
        timeout=10,
    )
    codes.append(response.status_code)
print(json.dumps(codes))
"""


def test_a_trainee_cannot_spend_the_class_addresss_sign_in_budget(stack):
    """70 failed sign-ins from alice's container naming the class's address (the host's, as
    the proxy sees it) in X-Forwarded-For, straight to the hub's API and then through the
    proxy: each time her own address runs out, and the class still signs in."""
    logged_in(stack, "alice")
    alice = stack.user_container("alice")
    private = stack.network.network.attrs["IPAM"]["Config"][0]
    # Where the host's requests come from on the private network: its bridge's address.
    host = private.get("Gateway") or str(next(ipaddress.ip_network(private["Subnet"]).hosts()))
    names = stack.names
    for way_in in (f"http://{names.hub}:8081", f"http://{names.proxy}:8000"):
        code, out = in_container(alice, "python", "-c", GUESSES, way_in, host, "70")
        assert code == 0, out
        codes = json.loads(out.strip().splitlines()[-1])
        assert codes[-1] == 429, (way_in, codes)  # her own address's budget is spent
        # The class, behind the address she named, is not locked out.
        logged_in(stack, "bob", started=False)
