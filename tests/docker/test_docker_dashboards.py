"""Docker mode: a cluster's dashboard is its owner's, through the hub's port (issue 18).

The front (statbox.dashboards) runs in the hub's container as the hub's `dask-gateway`
service. What is NOT closed yet in docker mode: the gateway container's own HTTP port, which
user containers still reach on their networks (see docs/architecture.md).
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.docker.test_docker_stack import logged_in

pytestmark = [pytest.mark.docker, pytest.mark.slow]

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
    finally:
        ana.api("DELETE", f"{PREFIX}/api/v1/clusters/{name}", scheme="jupyterhub")
