"""A gateway that takes clusters back knows them by the pids in its database: after a stop or
a power loss, such a pid may be another process's. The attack: a database naming a decoy's
pid as a cluster's scheduler; the gateway must neither count it as running nor signal it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from statbox.sandbox import CgroupTree, ResourceCaps
from statbox.spawners.local_dask import SandboxedLocalBackend
from tests.conftest import require_tool

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(os.geteuid() != 0, reason="clusters' control groups need root"),
]


@pytest.fixture
def backend() -> Iterator[SandboxedLocalBackend]:
    name = f"statbox-dask-test-{uuid.uuid4().hex[:8]}"
    tree = CgroupTree.detect(name)
    require_tool("writable cgroups (memory and pids)", tree is not None)
    found = SandboxedLocalBackend(cgroup_tree=name)
    found._tree = tree
    found._members = {}
    yield found
    assert tree is not None
    tree.clear()


@pytest.fixture
def decoy() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def test_only_processes_in_a_clusters_group_are_the_gateways(backend, decoy):
    assert backend._tree is not None
    cluster = backend._tree.group("c0ffee", ResourceCaps())
    member = backend._tree.within(cluster).group("scheduler", ResourceCaps())
    gateway = backend._tree.group("gateway", ResourceCaps())
    scheduler = subprocess.Popen(member.entering(["sleep", "600"]), start_new_session=True)
    helper = subprocess.Popen(gateway.entering(["sleep", "600"]), start_new_session=True)
    try:
        for _ in range(100):
            if scheduler.pid in member.pids() and helper.pid in gateway.pids():
                break
            asyncio.run(asyncio.sleep(0.02))
        assert backend.is_ours(scheduler.pid)
        assert not backend.is_ours(helper.pid)  # the gateway's own, not a cluster's
        assert not backend.is_ours(decoy.pid)
        assert backend._check_status(SimpleNamespace(state={"pid": scheduler.pid}))
        assert not backend._check_status(SimpleNamespace(state={"pid": decoy.pid}))
        asyncio.run(backend.stop_process(decoy.pid))
        assert decoy.poll() is None
    finally:
        for proc in (scheduler, helper):
            proc.kill()
            proc.wait()
        member.kill()
        gateway.kill()
