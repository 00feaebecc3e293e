"""The docker mode for real: images, the stack, user containers, data mounts, Dask Gateway.

Everything runs on a private Docker engine (tests/docker/conftest.py); the hub is reached at
its address on the test network, which is internal with host forwarding dropped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from statbox.contract import PROJECT_LABEL, USER_LABEL
from statbox.modes.docker.stack import DASK_CGROUP_VARIABLES
from statbox.sandbox.cgroups import CgroupTree
from tests.docker.conftest import PASSWORDS, RESTRICTED, RunningStack
from tests.docker.engine import forwarding_rules_for
from tests.integration.hubclient import HubUser

# The first test also builds the images (minutes on a fresh clone): a longer limit.
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

COURSE_LIBRARIES = [
    "jupyterlab",
    "ipykernel",
    "numpy",
    "pandas",
    "pyarrow",
    "dask.dataframe",
    "distributed",
    "dask_gateway",
    "xarray",
    "zarr",
    "h5netcdf",
    "shapely",
    "geopandas",
    "matplotlib",
    "scipy",
    "sklearn",
    "papermill",
    "intake",
    "tqdm",
    "statbox.spawners.singleuser",
]


def logged_in(stack: RunningStack, name: str, started: bool = True) -> HubUser:
    user = HubUser(stack.url, name)
    password = PASSWORDS["admin"] if name in ("admin",) else PASSWORDS["user"]
    user.login(password)
    user.create_token()
    if started:
        user.start_server(timeout=180)
    return user


def in_container(container, *command: str) -> tuple[int, str]:
    result = container.exec_run(list(command))
    return result.exit_code, result.output.decode(errors="replace")


def run_throwaway(engine, image: str, code: str) -> str:
    """Run Python ``code`` in a container of ``image`` with no network; its output."""
    output = engine.client.containers.run(
        image, ["python", "-c", code], network_mode="none", remove=True, stderr=True
    )
    return output.decode()


def test_images_carry_every_course_library(engine, images):
    code = (
        f"import importlib; [importlib.import_module(m) for m in {COURSE_LIBRARIES!r}]; print('ok')"
    )
    assert run_throwaway(engine, images.tags["singleuser"], code).strip() == "ok"
    client = run_throwaway(
        engine, images.tags["singleuser"], "import dask_gateway; print(dask_gateway.__version__)"
    )
    server = run_throwaway(
        engine,
        images.tags["gateway"],
        "import dask_gateway_server; print(dask_gateway_server.__version__)",
    )
    assert client.strip() == server.strip()
    hub_modules = "statbox.spawners.docker dockerspawner kubespawner oauthenticator psycopg2"
    code = f"import importlib; [importlib.import_module(m) for m in {hub_modules.split()!r}]"
    assert run_throwaway(engine, images.tags["hub"], code + "; print('ok')").strip() == "ok"
    code = "import statbox.configure.gateway, dask_gateway_server.backends.local; print('ok')"
    assert run_throwaway(engine, images.tags["gateway"], code).strip() == "ok"
    user = run_throwaway(engine, images.tags["singleuser"], "import os; print(os.getuid())")
    assert user.strip() == "1000"
    print(f"single-user image: {images.sizes['singleuser'] / 1e9:.2f} GB")


def test_network_is_internal_and_forwarding_dropped(stack):
    stack.network.network.reload()
    assert stack.network.network.attrs["Internal"] is True
    rules = forwarding_rules_for(stack.network.bridge)
    bridge = stack.network.bridge
    assert f"-A FORWARD -i {bridge} ! -o {bridge} -j DROP" in rules
    assert f"-A FORWARD ! -i {bridge} -o {bridge} -j DROP" in rules
    hub = stack.client.containers.get(stack.names.hub)
    networks = set(hub.attrs["NetworkSettings"]["Networks"])
    assert {stack.names.network, stack.names.db_network} <= networks
    assert all(
        name.startswith(stack.names.user_network_prefix)
        for name in networks - {stack.names.network, stack.names.db_network}
    )


def test_stack_uses_postgresql(stack):
    db = stack.client.containers.get(stack.names.db)
    code, out = in_container(
        db, "psql", "--username=postgres", "--tuples-only", "--dbname=jupyterhub",
        "--command=select count(*) from information_schema.tables where table_name = 'users'",
    )  # fmt: skip
    assert code == 0, out
    assert out.strip() == "1"


def test_role_limits_on_containers(stack):
    logged_in(stack, "alice")
    logged_in(stack, "ana")
    expectations = {"alice": (0.5, 768 * 1024**2), "ana": (1.5, 1536 * 1024**2)}
    for name, (cpu, memory) in expectations.items():
        host = stack.user_container(name).attrs["HostConfig"]
        assert host["Memory"] == memory
        assert host["CpuQuota"] / host["CpuPeriod"] == cpu
        assert host["PidsLimit"] == 300
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in host["SecurityOpt"]
        networks = stack.user_container(name).attrs["NetworkSettings"]["Networks"]
        assert set(networks) == {stack.names.user_network(name)}


def test_no_user_container_gets_the_engine_socket(stack):
    logged_in(stack, "alice")
    users = stack.client.containers.list(
        filters={"label": f"{PROJECT_LABEL}={stack.names.project}"}
    )
    users = [c for c in users if USER_LABEL in c.labels]
    assert users
    for container in users:
        for mount in container.attrs["Mounts"]:
            assert "docker.sock" not in (mount.get("Source") or "")
            assert "docker.sock" not in mount["Destination"]
            if mount["Type"] == "bind":
                assert mount["RW"] is False, mount
        code, _ = in_container(container, "test", "-e", "/var/run/docker.sock")
        assert code == 1


def test_restricted_data_mounted_only_for_the_entitled(stack):
    logged_in(stack, "alice")
    logged_in(stack, "ana")
    data = stack.root / "data"
    restricted, public = data / RESTRICTED, data / "sdg" / "indicators"
    alice, ana = stack.user_container("alice"), stack.user_container("ana")

    def bind_targets(container) -> set[str]:
        return {m["Destination"] for m in container.attrs["Mounts"] if m["Type"] == "bind"}

    assert str(public) in bind_targets(alice) and str(public) in bind_targets(ana)
    assert str(restricted) not in bind_targets(alice)
    assert str(restricted) in bind_targets(ana)
    assert in_container(alice, "ls", str(restricted))[0] != 0
    code, out = in_container(ana, "ls", str(restricted))
    assert code == 0 and "date=" in out
    # Mounted data is read-only, even for the entitled.
    assert in_container(ana, "touch", str(restricted / "mine.parquet"))[0] != 0


def test_the_catalog_is_one_line_away_in_a_container(stack):
    alice = logged_in(stack, "alice")
    code = """
import json, os, intake
catalog = intake.from_yaml_file(os.environ["STATBOX_CATALOG"])
rows = len(catalog["sdg.indicators"].read())
try:
    catalog["mobile_phone.events"].read()
    restricted = "read"
except Exception as exc:
    restricted = type(exc).__name__
print(json.dumps({"rows": rows, "restricted": restricted}))
"""
    result = alice.run(code)
    assert result.error is None, result.stderr
    outcome = result.json()
    assert outcome["rows"] > 0
    assert outcome["restricted"] != "read"  # listed in the catalog, but not mounted for her


def test_home_survives_stop_start_and_hub_restart(stack):
    alice = logged_in(stack, "alice")
    put = alice.api(
        "PUT",
        "/user/alice/api/contents/kept.txt",
        json={"type": "file", "format": "text", "content": "still here"},
    )
    assert put.status_code in (200, 201), put.text
    assert alice.api("DELETE", "/hub/api/users/alice/server").status_code in (202, 204)
    deadline = time.monotonic() + 60
    while stack.client.containers.list(
        all=True, filters={"name": stack.names.user_container("alice")}
    ):
        assert time.monotonic() < deadline, "alice's container was not removed at stop"
        time.sleep(0.5)
    volumes = {v.name for v in stack.client.volumes.list()}
    assert stack.names.home_volume("alice") in volumes  # the home outlives the container

    alice.start_server(timeout=180)
    assert _read(alice, "kept.txt") == "still here"
    before = stack.user_container("alice").id

    stack.client.containers.get(stack.names.hub).restart(timeout=20)
    stack.wait_healthy()
    # The user's container was not touched by the hub's restart, and the hub took it back.
    assert stack.user_container("alice").id == before
    assert stack.user_container("alice").status == "running"
    alice = logged_in(stack, "alice", started=False)
    model = alice.api("GET", "/hub/api/users/alice").json()
    assert model["servers"][""]["ready"] is True
    assert _read(alice, "kept.txt") == "still here"


def _read(user: HubUser, path: str) -> str:
    deadline = time.monotonic() + 60
    while True:
        response = user.api("GET", f"/user/{user.name}/api/contents/{path}")
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(1)  # the proxy's route comes back a moment after the hub
    assert response.status_code == 200, response.text[:300]
    return str(response.json()["content"])


def test_unlisted_image_is_refused_and_nothing_is_created(stack):
    # a user no other test of the session starts (their servers may still run)
    erin = logged_in(stack, "erin", started=False)
    for image in ("statbox/hub:latest", "busybox", stack.names.hub):
        response = erin.api("POST", "/hub/api/users/erin/server", json={"image": image})
        assert response.status_code == 400, response.text
        assert "not in allowed list" in response.json()["message"]
    named = stack.client.containers.list(
        all=True, filters={"name": stack.names.user_container("erin")}
    )
    assert named == []
    model = erin.api("GET", "/hub/api/users/erin").json()
    assert model["servers"] == {}


def test_a_user_cannot_reach_another_users_server(stack):
    logged_in(stack, "alice")
    ana = logged_in(stack, "ana")
    for path in ("/user/alice/api/contents", "/user/alice/api/kernels"):
        response = ana.api("GET", path, allow_redirects=False)
        assert response.status_code in (403, 404), (path, response.status_code)
    # Nor around the hub: alice's server refuses ana's token when reached directly.
    alice_ip = stack.user_container("alice").attrs["NetworkSettings"]["Networks"][
        stack.names.user_network("alice")
    ]["IPAddress"]
    direct = requests.get(
        f"http://{alice_ip}:8888/user/alice/api/contents",
        headers={"Authorization": f"token {ana.token}"},
        allow_redirects=False,
        timeout=30,
    )
    assert direct.status_code in (302, 403), direct.status_code


def test_dask_gateway_cluster_from_the_analysts_container(stack):
    ana = logged_in(stack, "ana")
    code = """
import json
from dask_gateway import Gateway
gateway = Gateway()
cluster = gateway.new_cluster(worker_cores=1, worker_memory=0.5)
try:
    cluster.scale(1)
    client = cluster.get_client()
    client.wait_for_workers(1, timeout=180)
    total = client.submit(sum, range(101)).result(timeout=120)
    import os, socket
    where = client.run(lambda: (socket.gethostname(), os.getuid()))
finally:
    cluster.shutdown()
print(json.dumps({"total": total, "workers": list(where.values())}))
"""
    result = ana.run(code, timeout=400)
    assert result.error is None, result.stderr
    outcome = result.json()
    assert outcome["total"] == 5050
    # The worker ran in the gateway's container, under a uid of ana's own (not root's).
    [(host, uid)] = outcome["workers"]
    assert host == "gateway" and uid >= 20000


def test_prepare_writes_a_private_env_file_and_creates_nothing(stack, engine, tmp_path):
    config = tmp_path / "statbox.yaml"
    text = (stack.root / "statbox.yaml").read_text()
    config.write_text(
        text.replace(stack.names.project, "sbxprep").replace(
            f"{stack.root}/state", str(tmp_path / "state")
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "statbox.cli", "up", "--config", str(config), "--prepare"],
        env=stack.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    env_file = tmp_path / "state" / "run" / "compose.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    variables = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert variables["STATBOX_PROJECT"] == "sbxprep"
    assert len(variables["STATBOX_DB_PASSWORD"]) >= 32
    label = f"{PROJECT_LABEL}=sbxprep"
    assert engine.client.containers.list(all=True, filters={"label": label}) == []
    assert engine.client.networks.list(filters={"label": label}) == []
    record = json.loads((tmp_path / "state" / "run" / "runtime.json").read_text())
    assert record["hosts"]["hub"] == "sbxprep-hub"
    assert "user_password" not in record["settings"]["auth"]
    assert "admin_password" not in record["settings"]["auth"]
    # The clusters' cgroup folder that compose.env names exists (for `docker compose up`);
    # removed here, as `statbox up` would remove it at stop.
    cgroups = [variables[name] for name in DASK_CGROUP_VARIABLES.values()]
    assert all(Path(folder, "cgroup.procs").is_file() for folder in cgroups)
    tree = CgroupTree.detect("statbox-sbxprep-dask")
    assert tree is not None
    tree.remove()


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"DOCKER_HOST": "tcp://127.0.0.1:2375"}, 2, "needs the engine's unix socket"),
        ({"STATBOX_USER_PASSWORD": "short"}, 2, "at least 8 characters"),
    ],
)
def test_bad_input_is_refused_before_anything_starts(stack, tmp_path, change, code, message):
    config = tmp_path / "statbox.yaml"
    config.write_text(
        (stack.root / "statbox.yaml").read_text().replace(stack.names.project, "sbxbad")
    )
    done = subprocess.run(
        [sys.executable, "-m", "statbox.cli", "up", "--config", str(config)],
        env={**stack.env, **change}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == code, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert (
        stack.client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}=sbxbad"}) == []
    )


def test_missing_image_is_an_environment_problem(stack, tmp_path):
    config = tmp_path / "statbox.yaml"
    text = (stack.root / "statbox.yaml").read_text().replace(stack.names.project, "sbxnoimg")
    config.write_text(
        text.replace("  pids_limit: 300", "  pids_limit: 300\n  hub_image: statbox/absent:1")
    )
    done = subprocess.run(
        [sys.executable, "-m", "statbox.cli", "up", "--config", str(config)],
        env=stack.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "statbox/absent:1 not in the engine: run `statbox images build`" in done.stderr
