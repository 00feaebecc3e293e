"""Docker mode: a user's Dask cluster outlives the death of the gateway's server (issue 14).

Every user's schedulers and workers run in the gateway's container as children of its
server. The server is killed (SIGKILL, as a crash would end it; not the container, whose
``docker kill`` ends every cluster with it and is tested in test_docker_isolation.py): the
container's loop (statbox.modes.docker.gatewayd) starts it again in place, the container is
not restarted, and ana's cluster, made before, still computes through the new server.
"""

from __future__ import annotations

import time

import pytest
import requests

from statbox.configure.hub import GATEWAY_PREFIX
from tests.docker.test_docker_isolation import _ip, _wait
from tests.docker.test_docker_stack import logged_in

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

MAKE_CLUSTER = """
import json
from dask_gateway import Gateway
cluster = Gateway().new_cluster(worker_cores=1, worker_memory=0.5, shutdown_on_close=False)
cluster.scale(1)
client = cluster.get_client()
client.wait_for_workers(1, timeout=180)
print(json.dumps({"name": cluster.name, "sum": client.submit(sum, [1, 2, 3]).result()}))
"""

COMPUTE_AND_STOP = """
import json
from dask_gateway import Gateway
cluster = Gateway().connect(NAME)
client = cluster.get_client()
client.wait_for_workers(1, timeout=120)
print(json.dumps(client.submit(sum, [4, 5, 6], pure=False).result(timeout=120)))
cluster.shutdown()
"""

KILL_SERVER = """
import os, signal
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
    except OSError:
        continue
    if argv[1:3] == [b"-m", b"dask_gateway_server"]:
        os.kill(int(pid), signal.SIGKILL)
        print(pid)
"""


def test_a_cluster_outlives_the_death_of_the_gateways_server(stack):
    ana = logged_in(stack, "ana")
    made = ana.run(MAKE_CLUSTER, timeout=600)
    assert made.error is None, made.stderr
    cluster = made.json()
    assert cluster["sum"] == 6
    gateway = stack.client.containers.get(stack.names.gateway)
    started = gateway.attrs["State"]["StartedAt"]
    killed = gateway.exec_run(["python", "-c", KILL_SERVER])
    assert killed.exit_code == 0 and killed.output.split(), killed.output
    health = f"http://{_ip(stack, stack.names.gateway, stack.names.network)}:8000"
    time.sleep(1)
    back = _wait(
        lambda: requests.get(f"{health}{GATEWAY_PREFIX}/api/health", timeout=2).status_code == 200,
        30,
    )
    print(f"gateway's server back in {back:.1f} s")
    gateway.reload()
    # the same container, not restarted: the server came back inside it
    assert gateway.status == "running" and gateway.attrs["State"]["StartedAt"] == started
    assert "starting it again" in gateway.logs(tail=200).decode(errors="replace")
    computed = ana.run(COMPUTE_AND_STOP.replace("NAME", repr(cluster["name"])), timeout=300)
    assert computed.error is None, computed.stderr
    assert computed.json() == 15
