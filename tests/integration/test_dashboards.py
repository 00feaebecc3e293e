"""A Dask cluster's dashboard is its owner's (and admins'), in local mode, for real.

The attack (issue 18): another user, or nobody at all, opened a cluster's pages
(``/clusters/<name>/status``, worker and log pages) through the hub's port and through the
gateway's own address, knowing only the cluster's name. Here alice makes a cluster from her
notebook with ``Gateway()``; bob, a stranger without a session, and a process under a user's
uid on this machine then try every way in. Tests run in file order and share one stack.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap

import psutil
import pytest
import requests
import websocket

from statbox.contract.runtime import RuntimeDocument
from statbox.dashboards.firewall import UidFirewall, dashboards_firewall
from statbox.sandbox.accounts import FIRST_UID
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, require_tool
from tests.integration.dashscan import probe
from tests.integration.hubclient import HubUser

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "/services/dask-gateway"

NEW_CLUSTER = textwrap.dedent(
    """
    import json
    from dask_gateway import Gateway
    cluster = Gateway().new_cluster(shutdown_on_close=False)
    print(json.dumps({"name": cluster.name, "link": cluster.dashboard_link}))
    """
)


@pytest.fixture(scope="module")
def stack_settings(stack_settings):
    """The integration settings with an admin, ada, added."""
    text = stack_settings.read_text()
    stack_settings.write_text(text.replace("roles:\n", "roles:\n  admin:\n    users: [ada]\n", 1))
    return stack_settings


def logged_in(stack, name: str, password: str) -> HubUser:
    user = HubUser(stack.base_url, name)
    user.login(password)
    user.create_token()
    return user


@pytest.fixture(scope="module")
def alice(local_stack, passwords):
    user = logged_in(local_stack, "alice", passwords["user"])
    user.start_server()
    return user


@pytest.fixture(scope="module")
def bob(local_stack, passwords):
    return logged_in(local_stack, "bob", passwords["user"])


@pytest.fixture(scope="module")
def cluster(local_stack, alice):
    """alice's cluster, made in her kernel with ``Gateway()`` and no arguments (stopped with
    the stack when the last test has stopped it already)."""
    result = alice.run(NEW_CLUSTER)
    assert result.error is None, result.stderr
    made = result.json()
    yield made
    if local_stack.proc.poll() is None:
        alice.api("DELETE", f"{PREFIX}/api/v1/clusters/{made['name']}", scheme="jupyterhub")


@pytest.fixture(scope="module")
def runtime(local_stack) -> RuntimeDocument:
    return RuntimeDocument.model_validate_json(
        (local_stack.state_dir / "run" / "runtime.json").read_text()
    )


def status_path(cluster: dict) -> str:
    return f"{PREFIX}/clusters/{cluster['name']}/status"


def test_dashboard_link_points_through_the_hub(cluster):
    assert cluster["link"] == status_path(cluster)


def test_nobody_without_a_session_is_sent_to_log_in(local_stack, cluster):
    for page in ("status", "workers", "info/main/workers.html", "individual-progress"):
        path = f"{PREFIX}/clusters/{cluster['name']}/{page}"
        response = requests.get(f"{local_stack.base_url}{path}", allow_redirects=False, timeout=30)
        assert response.status_code == 302, (path, response.status_code)
        assert "/hub/api/oauth2/authorize" in response.headers["Location"]


def test_another_user_is_refused_by_session_and_by_token(local_stack, bob, cluster):
    url = f"{local_stack.base_url}{status_path(cluster)}"
    # a browser with bob's hub session goes through the OAuth dance and is refused
    by_session = bob.session.get(url, timeout=60)
    assert by_session.status_code == 403, by_session.url
    assert f"{PREFIX}/oauth_callback" in " ".join(r.url for r in by_session.history)
    by_token = bob.api("GET", status_path(cluster))
    assert by_token.status_code == 403
    # the gateway's own scheme, and a websocket, are refused too
    other_scheme = bob.api("GET", status_path(cluster), scheme="jupyterhub", allow_redirects=False)
    assert other_scheme.status_code == 302
    ws_url = url.replace("http", "ws", 1) + "/ws"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(
            ws_url, header=[f"Authorization: token {bob.token}"], timeout=30
        )
    assert refused.value.status_code == 403


def raw_get(base_url: str, path: str, headers: dict[str, str] | None = None) -> int:
    """GET ``path`` exactly as written (no client-side clean-up of dot segments)."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        return connection.getresponse().status
    finally:
        connection.close()


def test_dot_segments_do_not_lead_around_the_check(local_stack, runtime, bob, cluster):
    """bob asks for alice's pages through the API's pass-through, or through a cluster of
    his own, with ``..`` (plain or escaped) in the path: a proxy that cleans paths would
    otherwise serve alice's dashboard to a request checked as something else. Through the
    hub's port (whose proxy cleans paths first) and at the front's own address, which user
    servers use for the API."""
    bobs = bob.api("POST", f"{PREFIX}/api/v1/clusters/", scheme="jupyterhub", json={})
    assert bobs.status_code == 201, bobs.text
    try:
        alice_status = f"clusters/{cluster['name']}/status"
        for path in (
            f"{PREFIX}/api/../{alice_status}",
            f"{PREFIX}/api/%2e%2e/{alice_status}",
            f"{PREFIX}/clusters/{bobs.json()['name']}/../../{alice_status}",
            f"{PREFIX}/clusters/{bobs.json()['name']}/%2E%2E/%2E%2E/{alice_status}",
        ):
            for base in (local_stack.base_url, f"http://127.0.0.1:{runtime.ports.dashboards}"):
                for headers in ({}, {"Authorization": f"token {bob.token}"}):
                    status = raw_get(base, path, headers)
                    assert status in (302, 400, 403, 404), (base, path, headers, status)
    finally:
        bob.api("DELETE", f"{PREFIX}/api/v1/clusters/{bobs.json()['name']}", scheme="jupyterhub")


def test_the_owner_sees_her_dashboard_and_its_websocket(local_stack, alice, cluster):
    url = f"{local_stack.base_url}{status_path(cluster)}"
    page = alice.session.get(url, timeout=60)
    assert page.status_code == 200, page.url
    assert "bokeh" in page.text.lower()
    # Bokeh's page carries a session token; its websocket answers with an ACK message.
    token = re.search(r'"token":\s*"([^"]+)"', page.text)
    assert token, page.text[:500]
    cookies = "; ".join(f"{c.name}={c.value}" for c in alice.session.cookies)
    ws = websocket.create_connection(
        url.replace("http", "ws", 1) + "/ws",
        header=[f"Cookie: {cookies}"],
        subprotocols=["bokeh", token.group(1)],
        timeout=30,
    )
    try:
        header = json.loads(ws.recv())
        assert header["msgtype"] == "ACK"
    finally:
        ws.close()


def test_an_admin_sees_any_dashboard(local_stack, passwords, cluster):
    ada = logged_in(local_stack, "ada", passwords["admin"])
    assert ada.api("GET", "/hub/api/user").json()["admin"] is True
    url = f"{local_stack.base_url}{status_path(cluster)}"
    page = ada.session.get(url, timeout=60)
    assert page.status_code == 200, page.url
    assert ada.api("GET", status_path(cluster)).status_code == 200


def browser_login(context, base_url: str, name: str, password: str):
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{base_url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(f"{base_url}/**/{name}/**")
    return page


@pytest.mark.browser
def test_in_a_browser_the_link_opens_for_the_owner_only(local_stack, passwords, alice, cluster):
    """alice's dashboard_link, opened in Chromium: Bokeh draws the page over its websocket
    for her; bob's browser gets the refusal."""
    require_tool("chromium", CHROMIUM.exists())
    sync_api = pytest.importorskip("playwright.sync_api")
    url = f"{local_stack.base_url}{cluster['link']}"
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            frames: list[str] = []
            owner = chromium.new_context()
            page = browser_login(owner, local_stack.base_url, "alice", passwords["user"])
            page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(f)))
            response = page.goto(url)
            assert response is not None and response.status == 200
            page.locator("canvas").first.wait_for()  # drawn from the websocket's document
            assert frames
            stranger = chromium.new_context()
            page = browser_login(stranger, local_stack.base_url, "bob", passwords["user"])
            response = page.goto(url)
            assert response is not None and response.status == 403
            assert page.locator("canvas").count() == 0
        finally:
            chromium.close()


PROBE = textwrap.dedent(
    """
    import json, socket, sys
    results = {}
    for port in map(int, sys.argv[1:]):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            results[port] = "open"
        except OSError as exc:
            results[port] = type(exc).__name__
    print(json.dumps(results))
    """
)


def connect_as(uid: int, ports: list[int]) -> dict[str, str]:
    """Try a TCP connection to each port from a process under ``uid``."""
    out = subprocess.run(
        [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            sys.executable,
            "-I",
            "-c",
            PROBE,
            *map(str, ports),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        check=True,
    )
    return json.loads(out.stdout)


def scheduler_dashboard_port(cluster: dict) -> int:
    """The port alice's scheduler serves its dashboard on (found by its listening sockets)."""
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "scheduler" not in cmdline or "--preload" not in cmdline:
            continue
        if cluster["name"] not in " ".join(f"{k}={v}" for k, v in proc.environ().items()):
            continue
        for conn in proc.net_connections("tcp"):
            if conn.status != psutil.CONN_LISTEN:
                continue
            port = conn.laddr.port
            try:
                r = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
            except requests.RequestException:
                continue
            if r.status_code == 200 and r.text == "ok":
                return port
    raise AssertionError(f"no scheduler of {cluster['name']} serves a dashboard")


@pytest.mark.skipif(os.geteuid() != 0, reason="a process under a user's uid needs root")
def test_a_user_uid_cannot_reach_the_gateway_or_dashboards_directly(runtime, cluster):
    dashboard = scheduler_dashboard_port(cluster)
    user_uid = FIRST_UID + 4242
    results = connect_as(user_uid, [runtime.ports.gateway_http, dashboard])
    assert results == {
        str(runtime.ports.gateway_http): "ConnectionRefusedError",
        str(dashboard): "ConnectionRefusedError",
    }
    # what a user needs stays open: the hub, and the gateway's TLS entrypoint for schedulers
    assert connect_as(user_uid, [runtime.ports.public, runtime.ports.gateway_tcp]) == {
        str(runtime.ports.public): "open",
        str(runtime.ports.gateway_tcp): "open",
    }


def test_from_alices_kernel_the_gateway_and_dashboards_are_closed(alice, runtime, cluster):
    """The same attack from where a user's code really runs. Before local mode ran servers
    under per-user uids (issue 13), they ran as the one account the gateway also runs as,
    which no rule can tell apart: then there is nothing to check here, and it says so."""
    dashboard = scheduler_dashboard_port(cluster)
    ports = [runtime.ports.gateway_http, dashboard, runtime.ports.dashboards]
    probe = PROBE.replace("sys.argv[1:]", repr(ports)) + "\nimport os; print(os.getuid())"
    result = alice.run(probe)
    assert result.error is None, result.stderr
    uid = int(result.stdout.split()[-1])
    if uid < FIRST_UID:
        pytest.skip(f"alice's kernel runs as uid {uid}, shared with the gateway: no per-user uid")
    reached = json.loads(result.stdout.strip().splitlines()[-2])
    assert reached == {
        str(runtime.ports.gateway_http): "ConnectionRefusedError",
        str(dashboard): "ConnectionRefusedError",
        str(runtime.ports.dashboards): "open",  # the front, which checks who asks
    }


SCALE_TO_ONE = textwrap.dedent(
    """
    from dask_gateway import Gateway
    client = Gateway().connect(NAME).get_client()
    client.cluster.scale(1)
    client.wait_for_workers(1, timeout=180)
    print(len(client.scheduler_info()["workers"]))
    """
)


def test_from_bobs_kernel_no_page_of_alices_cluster_answers(alice, bob, cluster):
    """Not only the scheduler's dashboard: every listening socket on the machine is asked
    for Dask pages (a worker serves its own on a random port unless told not to)."""
    scaled = alice.run(SCALE_TO_ONE.replace("NAME", repr(cluster["name"])), timeout=300)
    assert scaled.error is None, scaled.stderr
    assert scaled.stdout.split()[-1] == "1"
    bob.start_server()
    scan = probe([cluster["name"]], [PREFIX]) + "\nimport json; print(json.dumps(answered))"
    result = bob.run(scan, timeout=300)
    assert result.error is None, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def chain_exists(chain: str) -> bool:
    listed = subprocess.run(["iptables", "-w", "-S", chain], capture_output=True, timeout=60)
    return listed.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="iptables rules need root")
def test_the_rule_rejects_only_the_given_uids_and_ports_and_goes_away():
    """The firewall on its own, against a listener of this test's: no stack needed."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        first = FIRST_UID + 10
        firewall = UidFirewall(f"STATBOX-TEST-{os.getpid()}", (first, first + 9), (port,))
        try:
            firewall.install()
            firewall.install()  # again, as after a crash: replaced, not doubled
            assert chain_exists(firewall.chain)
            assert connect_as(first + 5, [port]) == {str(port): "ConnectionRefusedError"}
            assert connect_as(first + 10, [port]) == {str(port): "open"}  # outside the range
        finally:
            firewall.remove()
        assert not chain_exists(firewall.chain)
        assert connect_as(first + 5, [port]) == {str(port): "open"}


@pytest.mark.skipif(os.geteuid() != 0, reason="iptables rules need root")
def test_stopping_the_stack_removes_its_rule(local_stack, runtime):
    """Last in the file: it stops the module's stack."""
    chain = dashboards_firewall(local_stack.state_dir, runtime.ports.gateway_http).chain
    assert chain_exists(chain)
    assert local_stack.stop(signal.SIGTERM) == 0
    assert not chain_exists(chain)
