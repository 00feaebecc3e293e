"""The local stack for real: login, servers, kernels, catalog, Dask Gateway, limits, isolation,
restart, and a clean stop. Tests run in file order and share one stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from statbox.catalog import load_catalog
from statbox.catalog.samples import generate, is_current
from tests.conftest import REPO
from tests.integration.conftest import assert_all_gone, make_stack
from tests.integration.hubclient import HubUser, LoginRefused

SAMPLES = REPO / "data"
CULLED_MARKER = "31337.75"
"""The argument of a ``sleep`` ines detaches before her server is culled."""

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CATALOG_AND_DASK = textwrap.dedent(
    """
    import json, os, warnings
    import intake
    from dask_gateway import Gateway

    catalog = intake.from_yaml_file(os.environ["STATBOX_CATALOG"])
    rows = len(catalog["sdg.indicators"].read())
    gateway = Gateway()
    cluster = gateway.new_cluster({options}, shutdown_on_close={shutdown})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cluster.scale({scale})
    client = cluster.get_client()
    client.wait_for_workers({expect_workers}, timeout=180)
    workers = client.scheduler_info()["workers"].values()
    total = client.submit(sum, range(1000)).result()
    print(json.dumps({{
        "rows": rows,
        "role": os.environ["STATBOX_ROLE"],
        "workers": len(workers),
        "threads": sorted(w["nthreads"] for w in workers),
        "memory": sorted(w["memory_limit"] for w in workers),
        "total": total,
        "warnings": [str(w.message) for w in caught],
        "cluster": cluster.name,
    }}))
    client.close()
    if {shutdown}:
        cluster.shutdown()
    """
)


def probe(options: str = "", scale: int = 2, expect_workers: int = 2, shutdown: bool = True) -> str:
    options = options or "worker_cores=1"
    return CATALOG_AND_DASK.format(
        options=options, scale=scale, expect_workers=expect_workers, shutdown=shutdown
    )


def expected_rows() -> int:
    """Read the same entry here, independently of the server, to know the right answer."""
    catalog = load_catalog(REPO / "catalogs" / "statbox.yaml", SAMPLES)
    return len(catalog["sdg.indicators"].read())


@pytest.fixture(scope="module", autouse=True)
def samples() -> None:
    """The stack's data root (``{repo}/data``) holds the small samples the catalog reads."""
    if not is_current(SAMPLES, "small"):
        generate(SAMPLES, "small", progress=False)


@pytest.fixture(scope="module")
def alice(local_stack, passwords):
    user = HubUser(local_stack.base_url, "alice")
    user.login(passwords["user"])
    user.create_token()
    user.start_server()
    return user


@pytest.fixture(scope="module")
def ana(local_stack, passwords):
    user = HubUser(local_stack.base_url, "ana")
    user.login(passwords["user"])
    user.create_token()
    user.start_server()
    return user


def test_wrong_password_is_refused(local_stack):
    user = HubUser(local_stack.base_url, "mallory")
    with pytest.raises(LoginRefused, match="403"):
        user.login("not-the-class-password")
    assert "jupyterhub-session-id" not in user.session.cookies


def test_instructor_needs_the_admin_password(local_stack, passwords, request):
    with pytest.raises(LoginRefused):
        HubUser(local_stack.base_url, "ines").login(passwords["user"])
    ines = HubUser(local_stack.base_url, "ines")
    ines.login(passwords["admin"])
    ines.create_token()
    model = ines.api("GET", "/hub/api/users/ines").json()
    assert model["admin"] is False
    assert "statbox-role-instructor" in model["groups"]
    # her server is left idle: test_idle_servers_are_culled_by_role checks it goes, and
    # that what she detached goes with it
    ines.start_server()
    detached = f"import subprocess\nsubprocess.Popen(['setsid', 'sleep', '{CULLED_MARKER}'])"
    assert ines.run(detached).error is None
    request.config.cache.set("statbox/ines-token", ines.token)


def test_trainee_reads_the_catalog_and_scales_a_dask_cluster(alice):
    model = alice.api("GET", "/hub/api/users/alice").json()
    assert sorted(model["groups"]) == ["cohort-test", "statbox-role-trainee"]
    result = alice.run(probe())
    assert result.error is None, result.stderr
    out = result.json()
    assert out["rows"] == expected_rows()
    assert out["role"] == "trainee"
    assert out["workers"] == 2
    assert out["total"] == sum(range(1000))
    assert out["warnings"] == []


def test_the_server_start_copies_no_course_behind_the_publishers_back(alice):
    """Courses reach a home when published and opened (statbox.classroom), never at a server
    start: a copy made then made the publisher keep it as the trainee's and write each
    trainee's variant into a look-alike beside it."""
    listing = alice.api("GET", "/user/alice/api/contents").json()
    assert "courses" not in {item["name"] for item in listing["content"]}


def test_trainee_cannot_get_bigger_workers(alice):
    code = "from dask_gateway import Gateway\nGateway().new_cluster(worker_cores=4)"
    result = alice.run(code)
    assert result.error is not None
    assert "worker_cores must be <= 1" in result.error


def test_trainee_scale_beyond_the_role_is_capped_with_a_message(alice):
    out = alice.run(probe(scale=5, expect_workers=2)).json()
    assert out["workers"] == 2
    assert out["warnings"] == [
        "Scale request of 5 workers would exceed resource limit of 2 workers. Scaling to 2 instead."
    ]


def test_analyst_is_granted_bigger_clusters(ana, request):
    result = ana.run(
        probe("worker_cores=2, worker_memory=2", scale=3, expect_workers=3, shutdown=False)
    )
    assert result.error is None, result.stderr
    out = result.json()
    assert out["role"] == "analyst"
    assert out["workers"] == 3
    assert out["threads"] == [2, 2, 2]
    assert out["memory"] == [2 * 1024**3] * 3
    assert out["warnings"] == []
    request.config.cache.set("statbox/ana-cluster", out["cluster"])


def test_one_user_cannot_reach_another_users_server_or_cluster(alice, ana, request):
    ana_cluster = request.config.cache.get("statbox/ana-cluster", None)
    assert ana_cluster
    # ana's server, with alice's token
    for path in ("/user/ana/api/contents", "/user/ana/api/kernels"):
        assert alice.api("GET", path, allow_redirects=False).status_code in (403, 404)
    # ana's cluster, with alice's token: not listed, not reachable
    gateway = "/services/dask-gateway/api/v1/clusters"
    listed = alice.api("GET", f"{gateway}/", scheme="jupyterhub")
    assert listed.status_code == 200
    assert ana_cluster not in listed.json()
    for method in ("GET", "DELETE"):
        assert alice.api(method, f"{gateway}/{ana_cluster}", scheme="jupyterhub").status_code == 403
    stolen = alice.run(f"from dask_gateway import Gateway\nGateway().connect({ana_cluster!r})")
    assert stolen.error is not None and "403" in stolen.error, stolen.error
    # a token from no one gets nothing at all
    assert (
        HubUser(alice.base_url, "x", token="forged")
        .api("GET", f"{gateway}/", scheme="jupyterhub")
        .status_code
        == 401
    )
    # ana still has it, and shuts it down herself
    assert ana_cluster in ana.api("GET", f"{gateway}/", scheme="jupyterhub").json()
    assert ana.api("DELETE", f"{gateway}/{ana_cluster}", scheme="jupyterhub").status_code == 204


def test_idle_servers_are_culled_by_role(local_stack, alice, request):
    """ines (instructor, 30 s idle timeout) loses her idle server; alice (trainee, 1 h)
    keeps hers: each role's culler sees only its own role's users."""
    ines = HubUser(
        local_stack.base_url, "ines", token=request.config.cache.get("statbox/ines-token", None)
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if not ines.api("GET", "/hub/api/users/ines").json()["servers"]:
            break
        time.sleep(2)
    else:
        pytest.fail("ines's idle server was not culled within 120 s")
    if os.geteuid() == 0:  # her server's control group went with it (4efd1c5: it stayed)
        time.sleep(1)
        survivors = [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if CULLED_MARKER in " ".join(p.info["cmdline"] or [])
        ]
        assert survivors == []
    assert alice.api("GET", "/hub/api/users/alice").json()["servers"][""]["ready"] is True


def test_doctor_finds_everything_local_mode_needs(local_stack):
    result = subprocess.run(
        [sys.executable, "-m", "statbox.cli", "doctor", "--config", str(local_stack.config)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout
    assert "[ok ] proxy: configurable-http-proxy" in result.stdout
    assert "[ok ] server account" in result.stdout


def test_stop_restart_keeps_users_and_files_and_leaves_nothing(local_stack, alice, passwords):
    alice_created = alice.api("GET", "/hub/api/users/alice").json()["created"]
    saved = alice.api(
        "PUT",
        "/user/alice/api/contents/notes.txt",
        json={"type": "file", "format": "text", "content": "port calls, week 12"},
    )
    assert saved.status_code in (200, 201), saved.text
    tree = local_stack.process_tree()
    assert any("singleuser" in " ".join(p.cmdline()) for p in tree)
    assert local_stack.stop(signal.SIGTERM) == 0
    assert_all_gone(tree)

    again = make_stack(local_stack.config, local_stack.state_dir)
    again.start()
    try:
        alice2 = HubUser(again.base_url, "alice")
        alice2.login(passwords["user"])
        alice2.create_token()
        alice2.start_server()
        note = alice2.api("GET", "/user/alice/api/contents/notes.txt").json()
        assert note["content"] == "port calls, week 12"
        assert alice2.api("GET", "/hub/api/users/alice").json()["created"] == alice_created
        tree = again.process_tree()
    finally:
        code = again.stop(signal.SIGINT)
    assert code == 0
    assert_all_gone(tree)
