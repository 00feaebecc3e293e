"""Docker mode: a cluster's dashboard is its owner's, through the hub's port (issue 18).

The front (statbox.dashboards) runs in the hub's container as the hub's `dask-gateway`
service. Every user's schedulers and workers run in the gateway's container and share its
network: from another user's Dask worker, no listening socket there may answer with a
page of the cluster (tests/integration/dashscan.py).
"""

from __future__ import annotations

import json
import time

import pytest
import requests

from statbox.configure.hub import GATEWAY_PREFIX
from tests.docker.test_docker_stack import logged_in
from tests.integration.dashscan import probe

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

PREFIX = "/services/dask-gateway"


def test_another_users_dashboard_is_refused_through_the_hub(stack):
    ana = logged_in(stack, "ana", started=False)
    bob = logged_in(stack, "bob", started=False)
    made = ana.api("POST", f"{PREFIX}/api/v1/clusters/", scheme="jupyterhub", json={})
    assert made.status_code == 201, made.text
    name = made.json()["name"]
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            model = ana.api("GET", f"{PREFIX}/api/v1/clusters/{name}", scheme="jupyterhub")
            if model.json()["status"] == "RUNNING":
                break
            time.sleep(1)
        status = f"{stack.url}{PREFIX}/clusters/{name}/status"
        nobody = requests.get(status, allow_redirects=False, timeout=30)
        assert nobody.status_code == 302
        assert bob.session.get(status, timeout=60).status_code == 403
        assert bob.api("GET", f"{PREFIX}/clusters/{name}/status").status_code == 403
        mine = ana.session.get(status, timeout=60)
        assert mine.status_code == 200 and "bokeh" in mine.text.lower()
        scaled = ana.api(
            "POST", f"{PREFIX}/api/v1/clusters/{name}/scale", scheme="jupyterhub",
            json={"count": 1},
        )  # fmt: skip
        assert scaled.status_code == 200, scaled.text
        answered = from_a_worker_of(logged_in(stack, "bob"), probe([name], [GATEWAY_PREFIX]))
        assert answered == []
    finally:
        ana.api("DELETE", f"{PREFIX}/api/v1/clusters/{name}", scheme="jupyterhub")


FROM_A_WORKER = """
import json
from dask_gateway import Gateway

def scan(code):
    scope = {}
    exec(code, scope)
    return scope["answered"]

cluster = Gateway().new_cluster(worker_cores=1, worker_memory=0.5)
try:
    cluster.scale(1)
    client = cluster.get_client()
    client.wait_for_workers(1, timeout=180)
    print(json.dumps(client.submit(scan, CODE, pure=False).result(timeout=300)))
finally:
    cluster.shutdown()
"""


def from_a_worker_of(user, code: str) -> list[str]:
    """Run ``code`` (which leaves a list in ``answered``) on a worker of a new cluster of
    ``user``'s, made from their notebook; that list."""
    result = user.run(FROM_A_WORKER.replace("CODE", repr(code)), timeout=600)
    assert result.error is None, result.stderr
    return list(json.loads(result.stdout.strip().splitlines()[-1]))
