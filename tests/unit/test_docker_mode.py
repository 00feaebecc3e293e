"""Docker mode without an engine: hub and gateway config on a bare Config, names, mounts,
images a role may run, the compose file's interpretation, and per-user cluster accounts."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from traitlets.config import Config

from statbox.catalog.access import entitled_data_paths
from statbox.configure.gateway import PerUserAccountBackend, configure_gateway
from statbox.configure.hub import configure_hub
from statbox.configure.runtime import Hosts
from statbox.contract import USER_LABEL, DockerNames, escape_username
from statbox.errors import BadInput
from statbox.modes.docker.stack import COMPOSE_FILE, DOCKER_PORTS, DockerStack, parse_compose
from statbox.settings.model import parse_settings
from statbox.spawners.docker import MountRefused, StatboxDockerSpawner, refuse_unexpected_binds
from tests.unit.test_hub_config import plain

COMPOSE_INVALID = sorted(
    (Path(__file__).parent.parent / "fixtures" / "compose" / "invalid").glob("*.yaml")
)

REPO = Path(__file__).resolve().parent.parent.parent
REPO_CATALOGS = REPO / "catalogs"
RESTRICTED = "mobile_phone/events"
"""The repository catalog's restricted dataset: analysts are entitled, trainees are not."""


@pytest.fixture
def docker_runtime(runtime):
    settings = parse_settings(
        {
            "mode": "docker",
            "docker": {"project": "kigali", "pids_limit": 512},
            "roles": {"analyst": {"data": {"levels": ["public"], "restricted": ["census"]}}},
        }
    )
    return dataclasses.replace(
        runtime,
        settings=settings,
        ports=DOCKER_PORTS,
        secrets={**runtime.secrets, "db_password": "p@ss/word", "proxy_auth_token": "t" * 64},
        hosts=Hosts(listen="0.0.0.0", hub="kigali-hub", gateway="kigali-gateway", db="kigali-db"),
    )


def configured(rt) -> Config:
    c = Config()
    configure_hub(c, rt)
    return c


def test_docker_hub_config(docker_runtime):
    c = configured(docker_runtime)
    assert c.JupyterHub.spawner_class == "statbox.spawners.docker.StatboxDockerSpawner"
    assert c.JupyterHub.cleanup_servers is False
    assert c.JupyterHub.hub_ip == "0.0.0.0"
    # The proxy's route to the hub: its private-network-only name; servers: its plain name.
    assert c.JupyterHub.hub_connect_ip == "kigali-hub-private"
    assert c.Spawner.hub_connect_url == "http://kigali-hub:8081"
    # The proxy is a container of its own: the hub neither starts nor stops it, reaches its
    # API by a private-network-only name with the stack's kept token, and gives a restarted
    # proxy its routes back within seconds.
    proxy = c.ConfigurableHTTPProxy
    assert proxy.should_start is False
    assert proxy.api_url == "http://kigali-proxy-api:8001"
    assert proxy.auth_token == "t" * 64
    assert c.JupyterHub.last_activity_interval <= 10
    auth = c.StatboxSharedPasswordAuthenticator
    assert auth.forwarded_for_from == "proxy-host" and auth.proxy_host == "kigali-proxy-api"
    assert (
        c.JupyterHub.db_url
        == "postgresql+psycopg2://jupyterhub:p%40ss%2Fword@kigali-db:5432/jupyterhub"
    )
    assert c.Spawner.cmd is None
    spawner = c.StatboxDockerSpawner
    # Each user alone on a network of their own, with the hub and the gateway only.
    assert "network_name" not in spawner
    assert spawner.user_network_prefix == "kigali-net-"
    assert spawner.shared_containers == ["kigali-proxy", "kigali-hub", "kigali-gateway"]
    # Pid files on the hub container's tmpfs: none survives into the next start.
    assert c.ConfigurableHTTPProxy.pid_file == "/run/statbox/proxy.pid"
    assert c.JupyterHub.pid_file == "/run/statbox/jupyterhub.pid"
    assert spawner.home_volume_prefix == "kigali-home-"
    assert spawner.pids_limit == 512
    assert spawner.remove is True
    assert spawner.pull_policy == "never"
    env = c.Spawner.environment
    # the API through the dashboards' front, in the hub's container; TLS straight to the gateway;
    # the front reaches the gateway's HTTP side by its private-network-only name
    assert env["DASK_GATEWAY__ADDRESS"] == "http://kigali-hub:8010/services/dask-gateway"
    assert env["DASK_GATEWAY__PROXY_ADDRESS"] == "gateway://kigali-gateway:8786"
    service = next(s for s in c.JupyterHub.services if s["name"] == "dask-gateway")
    assert service["url"] == "http://kigali-hub:8010"
    assert service["environment"] == {
        "STATBOX_DASHBOARDS_GATEWAY": "http://kigali-gateway-http:8000",
        "STATBOX_DASHBOARDS_LISTEN": "http://0.0.0.0:8010",
    }
    # the classroom: in the hub's container, on the private network's name alone (the proxy
    # reaches it there; users' containers, on networks the hub also joins, cannot)
    classroom = next(s for s in c.JupyterHub.services if s["name"] == "classroom")
    assert classroom["url"] == "http://kigali-hub-private:8020"
    assert classroom["environment"]["STATBOX_CLASSROOM_LISTEN"] == classroom["url"]


def test_docker_hub_config_is_pure(docker_runtime):
    first, second = configured(docker_runtime), configured(docker_runtime)
    for section in ("JupyterHub", "Spawner", "StatboxDockerSpawner", "ConfigurableHTTPProxy"):
        assert plain(first[section]) == plain(second[section])


def test_local_mode_keeps_its_config(runtime):
    c = configured(runtime)
    assert "cleanup_servers" not in c.JupyterHub
    assert c.JupyterHub.db_url.startswith("sqlite:///")
    assert "StatboxDockerSpawner" not in c


def test_docker_gateway_config(docker_runtime):
    c = Config()
    configure_gateway(c, docker_runtime)
    assert c.DaskGateway.backend_class == "statbox.configure.gateway.PerUserAccountBackend"
    assert c.Proxy.address == "kigali-gateway-http:8000"  # the private network only
    assert c.Proxy.tcp_address == "0.0.0.0:8786"
    assert c.JupyterHubAuthenticator.jupyterhub_api_url == "http://kigali-hub:8081/hub/api"
    # as in local mode: users' uids share the gateway's network and are kept off its HTTP
    # side and the dashboards (statbox.dashboards.firewall), so schedulers report on loopback
    # and serve their dashboards on the reserved ports
    assert c.DBBackendBase.api_url == "http://127.0.0.1:8010/api"
    assert c.ClusterConfig.scheduler_cmd[1:] == ["-m", "statbox.dashboards.scheduler"]
    assert "--no-dashboard" in c.ClusterConfig.worker_cmd
    assert c.DBBackendBase.db_url == "sqlite:////var/lib/dask-gateway/db/gateway.sqlite"


def test_escaped_names_never_collide():
    names = ["a.b", "a-b", "a_b", "a-2eb", "a-2db", "ab", "a--b", "a.-b", "0", "a" * 63]
    escaped = [escape_username(n) for n in names]
    assert len(set(escaped)) == len(names)
    for value in escaped:
        assert set(value) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    project = DockerNames("kigali")
    assert project.home_volume("a.b") == "kigali-home-a-2eb"
    assert project.home_volume("a.b") != project.home_volume("a-2eb")


@pytest.fixture
def catalog(tmp_path):
    """The repository's catalogs, with an empty folder per dataset under a data root."""
    shutil.copytree(REPO_CATALOGS, tmp_path / "catalog")
    path = tmp_path / "catalog" / "statbox.yaml"
    for relative in entitled_data_paths(parse_settings({}), "admin", [], path):
        (tmp_path / "data" / relative).mkdir(parents=True)
    return path


def make_spawner(settings, catalog: Path, name: str, groups=()) -> StatboxDockerSpawner:
    user = SimpleNamespace(
        name=name, groups=[SimpleNamespace(name=g) for g in groups], url=f"/user/{name}/"
    )
    spawner = StatboxDockerSpawner(
        user=user,
        settings=settings,
        catalog_path=str(catalog),
        curriculum_path=str(catalog.parent.parent / "curriculum"),
        data_root=str(catalog.parent.parent / "data"),
        home_volume_prefix="kigali-home-",
    )
    return spawner


def test_spawner_mounts_by_role(docker_runtime, catalog):
    settings = docker_runtime.settings
    data = catalog.parent.parent / "data"
    alice = make_spawner(settings, catalog, "alice")
    volumes, read_only = alice.statbox_mounts("trainee")
    assert volumes == {"kigali-home-alice": {"bind": "/home/jovyan", "mode": "rw"}}
    assert str(data / RESTRICTED) not in read_only
    assert str(data / "sdg/indicators") in read_only
    assert read_only[str(catalog.parent)] == str(catalog.parent)
    ana = make_spawner(settings, catalog, "ana", groups=["analysts"])
    _, read_only = ana.statbox_mounts("analyst")
    assert str(data / RESTRICTED) in read_only


def test_a_trainees_container_gets_no_grader_folder_and_no_analyst_only_course(
    docker_runtime, catalog
):
    """The curriculum mounted whole handed trainees every solution and hidden check (and
    the analysts' courses): now each course their role may take, file by file, no grader/."""
    curriculum = catalog.parent.parent / "curriculum"
    shutil.copytree(REPO / "curriculum", curriculum)
    alice = make_spawner(docker_runtime.settings, catalog, "alice")
    _, read_only = alice.statbox_mounts("trainee")
    given = [Path(p) for p in read_only if Path(p).is_relative_to(curriculum)]
    assert curriculum / "ais-port-calls" / "exercise" in given
    assert str(curriculum) not in read_only
    assert not any("grader" in p.parts for p in given)
    assert not any(p.is_relative_to(curriculum / "mobile-phone-population") for p in given)
    assert curriculum / "README.md" not in given


def test_catalog_folder_holding_data_is_not_mounted_whole(docker_runtime, catalog):
    folder = catalog.parent
    (folder / "data").mkdir()
    spawner = StatboxDockerSpawner(
        user=SimpleNamespace(name="alice", groups=[], url="/user/alice/"),
        settings=docker_runtime.settings,
        catalog_path=str(catalog),
        curriculum_path=str(folder / "curriculum"),
        data_root=str(folder / "data"),
    )
    _, read_only = spawner.statbox_mounts("trainee")
    assert str(folder) not in read_only
    assert read_only[str(catalog)] == str(catalog)


def test_object_storage_data_root_mounts_no_data(docker_runtime, catalog):
    spawner = make_spawner(docker_runtime.settings, catalog, "ana", ["analysts"])
    spawner.data_root = "s3://statbox-data"
    _, read_only = spawner.statbox_mounts("analyst")
    assert not any(path.startswith("s3:") or "mobile_phone" in path for path in read_only)


def test_concurrent_spawns_make_their_docker_calls_side_by_side(docker_runtime, catalog):
    """DockerSpawner sends every spawner's Docker API calls through one thread; ours share a
    pool, so two users starting together do not wait for each other's create and start."""
    alice = make_spawner(docker_runtime.settings, catalog, "alice")
    bob = make_spawner(docker_runtime.settings, catalog, "bob")
    assert alice.executor is bob.executor
    both_inside = threading.Barrier(2, timeout=5)
    calls = [spawner.executor.submit(both_inside.wait) for spawner in (alice, bob)]
    assert sorted(call.result(timeout=10) for call in calls) == [0, 1]


def test_spawner_allows_only_the_roles_images(docker_runtime, catalog):
    settings = parse_settings(
        {
            "mode": "docker",
            "images": {"gpu": {"image": "statbox/gpu:1"}},
            "roles": {"analyst": {"images": ["datascience", "gpu"]}},
            "groups": {"analysts": ["ana"]},
        }
    )
    assert make_spawner(settings, catalog, "alice")._get_allowed_images() == {
        "datascience": "statbox/singleuser:latest"
    }
    assert make_spawner(settings, catalog, "ana", ["analysts"])._get_allowed_images() == {
        "datascience": "statbox/singleuser:latest",
        "gpu": "statbox/gpu:1",
    }


def test_binds_outside_the_allowed_folders_are_refused(tmp_path):
    roots = [str(tmp_path / "data")]
    (tmp_path / "data").mkdir()
    refuse_unexpected_binds({"kigali-home-alice": {"bind": "/home/jovyan"}}, roots)
    refuse_unexpected_binds({str(tmp_path / "data" / "x"): {"bind": "/x"}}, roots)
    for source in ("/var/run/docker.sock", "/var/run", "/", str(tmp_path / "data-other")):
        with pytest.raises(MountRefused):
            refuse_unexpected_binds({source: {"bind": "/x"}}, roots)
    sock_path = tmp_path / "data" / "engine.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        with pytest.raises(MountRefused, match="socket"):
            refuse_unexpected_binds({str(sock_path): {"bind": "/x"}}, roots)


PATH_VARIABLES = [
    "STATBOX_STATE_DIR",
    "STATBOX_CATALOG_DIR",
    "STATBOX_CURRICULUM",
    "STATBOX_INDICATORS",
    "STATBOX_DATA_ROOT",
    "STATBOX_DOCKER_SOCKET",
    "STATBOX_DASK_CGROUP_MEMORY",
    "STATBOX_DASK_CGROUP_PIDS",
    "STATBOX_DASK_CGROUP_CPU",
]
TOKEN_VARIABLES = [
    "STATBOX_HUB_IMAGE",
    "STATBOX_GATEWAY_IMAGE",
    "STATBOX_POSTGRES_IMAGE",
    "STATBOX_DOCKER_GID",
    "STATBOX_USER_PASSWORD",
    "STATBOX_ADMIN_PASSWORD",
    "STATBOX_GATEWAY_TOKEN",
    "STATBOX_GATEWAY_ENCRYPT_KEY",
    "STATBOX_DB_PASSWORD",
    "STATBOX_PROXY_AUTH_TOKEN",
]
VARIABLES = (
    {name: f"/srv/{name.lower()}" for name in PATH_VARIABLES}
    | {name: f"<{name.lower()}>" for name in TOKEN_VARIABLES}
    | {"STATBOX_PROJECT": "kigali", "STATBOX_HUB_IP": "127.0.0.1", "STATBOX_HUB_PORT": "8000"}
)


def test_compose_file_as_statbox_runs_it():
    stack = parse_compose(COMPOSE_FILE.read_text(), VARIABLES, publish=True)
    assert [s.key for s in stack.services] == ["db", "gateway", "proxy", "hub"]
    by_key = {s.key: s for s in stack.services}
    # The proxy, a container of its own, publishes the port; the hub publishes nothing.
    assert by_key["proxy"].ports == {"8000/tcp": ("127.0.0.1", 8000)}
    assert by_key["hub"].ports == {}
    assert by_key["proxy"].networks == ["kigali-private", "kigali-public"]
    assert by_key["proxy"].aliases == {"kigali-private": ["kigali-proxy-api"]}
    assert by_key["hub"].aliases == {"kigali-private": ["kigali-hub-private"]}
    proxy = by_key["proxy"]
    assert proxy.image == "<statbox_hub_image>" and proxy.user is None  # the image's jupyterhub
    assert proxy.host_config["cap_drop"] == ["ALL"]
    assert proxy.host_config["security_opt"] == ["no-new-privileges"]
    assert proxy.host_config["restart_policy"] == {"Name": "unless-stopped"}
    assert "--api-ip=kigali-proxy-api" in (proxy.command or [])
    # Only the hub gives the proxy its route: through it, the hub's answer means "started".
    assert not any(arg.startswith("--default-target") for arg in proxy.command or [])
    assert proxy.environment == {"CONFIGPROXY_AUTH_TOKEN": "<statbox_proxy_auth_token>"}
    assert by_key["hub"].environment["STATBOX_PROXY_AUTH_TOKEN"] == "<statbox_proxy_auth_token>"
    assert proxy.binds == []  # no socket, no state: only its routes, in memory
    # The database on a network of its own with the hub: user networks never reach it.
    assert by_key["hub"].networks == ["kigali-private", "kigali-db", "kigali-public"]
    assert by_key["db"].networks == ["kigali-db"]
    assert by_key["gateway"].networks == ["kigali-private"]
    assert by_key["gateway"].aliases == {"kigali-private": ["kigali-gateway-http"]}
    assert stack.networks["private"]["internal"] is True
    assert stack.networks["db"]["internal"] is True
    # The gateway capped, without swap beyond its memory; its clusters' groups bound in.
    gateway = by_key["gateway"].host_config
    assert gateway["mem_limit"] == gateway["memswap_limit"] == "1g"
    assert gateway["pids_limit"] == 512 and gateway["nano_cpus"] == 10**9
    assert "/srv/statbox_dask_cgroup_pids:/run/statbox/cgroup/pids" in by_key["gateway"].binds
    # The hub's pid files on a tmpfs, new at every start.
    assert "/run/statbox" in by_key["hub"].host_config["tmpfs"]
    # Only the hub holds the engine's socket.
    for key, service in by_key.items():
        holds = any(b.startswith("/srv/statbox_docker_socket:") for b in service.binds)
        assert holds is (key == "hub"), key
    assert "kigali-db:/var/lib/postgresql/data" in by_key["db"].binds
    assert by_key["gateway"].environment["STATBOX_GATEWAY_TOKEN"] == "<statbox_gateway_token>"
    assert "STATBOX_USER_PASSWORD" not in by_key["gateway"].environment


def test_compose_file_unpublished_has_no_public_network_or_ports():
    stack = parse_compose(COMPOSE_FILE.read_text(), VARIABLES, publish=False)
    assert set(stack.networks) == {"private", "db"}
    by_key = {s.key: s for s in stack.services}
    assert by_key["hub"].ports == {} and by_key["hub"].networks == ["kigali-private", "kigali-db"]
    assert by_key["proxy"].ports == {} and by_key["proxy"].networks == ["kigali-private"]


@pytest.mark.parametrize("path", COMPOSE_INVALID, ids=[p.stem for p in COMPOSE_INVALID])
def test_invalid_compose_file(path):
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    with pytest.raises(BadInput) as caught:
        parse_compose(path.read_text(), VARIABLES, publish=True)
    assert len(caught.value.messages) == 1
    assert expected in caught.value.messages[0]


def test_each_user_gets_a_cluster_account_of_their_own(tmp_path):
    backend = PerUserAccountBackend(clusters_directory=str(tmp_path / "clusters"))
    ana, alice = backend.uid_for("ana"), backend.uid_for("alice")
    assert ana != alice and min(ana, alice) >= backend.first_uid
    assert backend.uid_for("ana") == ana  # remembered
    again = PerUserAccountBackend(clusters_directory=str(tmp_path / "clusters"))
    assert again.uid_for("alice") == alice  # across gateway restarts
    accounts = tmp_path / "accounts.json"
    assert os.stat(accounts).st_mode & 0o777 == 0o600


def test_cluster_files_go_to_the_users_uid_and_nothing_else(tmp_path, monkeypatch):
    clusters = tmp_path / "clusters"
    workdir = clusters / "abc"
    (workdir / ".certs").mkdir(parents=True)
    (workdir / ".certs" / "dask.pem").write_text("key")
    backend = PerUserAccountBackend(clusters_directory=str(clusters))
    changed: list[tuple[str, int]] = []
    monkeypatch.setattr(os, "chown", lambda path, uid, gid: changed.append((str(path), uid)))
    # What upstream passes: the folders, then the characters of the key's path.
    backend.set_file_permissions(
        [str(workdir), str(workdir / ".certs"), *str(workdir / ".certs" / "dask.pem")], "ana"
    )
    uid = backend.uid_for("ana")
    assert {path for path, _ in changed} == {
        str(workdir),
        str(workdir / ".certs"),
        str(workdir / ".certs" / "dask.pem"),
    }
    assert {u for _, u in changed} == {uid}


def test_clusters_are_never_started_uncapped_when_caps_are_configured(tmp_path):
    backend = PerUserAccountBackend(
        clusters_directory=str(tmp_path / "clusters"), cgroup_root=str(tmp_path / "absent")
    )
    cluster = SimpleNamespace(
        name="c1", config=SimpleNamespace(worker_memory=2**29, worker_cores=1)
    )
    with pytest.raises(RuntimeError, match="not started uncapped"):
        backend._group_for(cluster, "worker-w1")


def test_each_dask_process_gets_a_group_sized_as_asked(tmp_path):
    # Plain folders stand in for the cgroup folders compose.yaml binds into the gateway.
    root = tmp_path / "cgroup"
    for controller in ("memory", "pids", "cpu"):
        (root / controller).mkdir(parents=True)
        (root / controller / "cgroup.procs").write_text("")
    for name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
        (root / "memory" / "c1-worker-w1").mkdir(exist_ok=True)
        (root / "memory" / "c1-worker-w1" / name).write_text("")
    (root / "pids" / "c1-worker-w1").mkdir()
    (root / "pids" / "c1-worker-w1" / "pids.max").write_text("")
    backend = PerUserAccountBackend(
        clusters_directory=str(tmp_path / "clusters"), cgroup_root=str(root), process_cap=300
    )
    config = SimpleNamespace(worker_memory=2**29, worker_cores=1)
    group = backend._group_for(SimpleNamespace(name="c1", config=config), "worker-w1")
    assert group is not None and group.version == 1
    assert (root / "memory" / "c1-worker-w1" / "memory.limit_in_bytes").read_text() == str(2**29)
    # Memory and swap together: no swap beyond the memory cap.
    assert (root / "memory" / "c1-worker-w1" / "memory.memsw.limit_in_bytes").read_text() == str(
        2**29
    )
    assert (root / "pids" / "c1-worker-w1" / "pids.max").read_text() == "300"


def test_docker_gateway_caps_clusters(docker_runtime):
    c = Config()
    configure_gateway(c, docker_runtime)
    assert c.PerUserAccountBackend.cgroup_root == "/run/statbox/cgroup"
    assert c.PerUserAccountBackend.process_cap == 512


class NeverStartingContainer:
    """A stopped stack container whose start always fails (a broken image, a full disk)."""

    status = "exited"
    attrs = {"RestartCount": 0, "State": {"ExitCode": 1}}
    labels: dict[str, str] = {}

    def __init__(self, name: str, log: list[str]):
        self.name, self.log = name, log

    def start(self) -> None:
        import docker

        self.log.append(f"start {self.name}")
        raise docker.errors.APIError("no space left on device")

    def stop(self, timeout: int = 0) -> None:
        self.log.append(f"stop {self.name}")

    def logs(self, **_: object) -> bytes:
        return b""

    def remove(self, force: bool = False) -> None:
        self.log.append(f"remove {self.name}")


def test_the_supervisor_gives_up_without_touching_user_containers():
    import docker

    log: list[str] = []
    containers = {
        name: NeverStartingContainer(name, log) for name in ("kigali-hub", "kigali-gateway")
    }
    user = NeverStartingContainer("kigali-user-alice", log)
    user.labels = {"org.statbox.project": "kigali", "org.statbox.user": "alice"}

    def get(name: str) -> NeverStartingContainer:
        if name not in containers:
            raise docker.errors.NotFound(name)
        return containers[name]

    client = SimpleNamespace(
        containers=SimpleNamespace(get=get, list=lambda **_: [user]),
        networks=SimpleNamespace(list=lambda **_: [], get=get),
    )
    stack = parse_compose(COMPOSE_FILE.read_text(), VARIABLES, publish=False)
    hub = next(s for s in stack.services if s.key == "hub")
    loaded = SimpleNamespace(
        settings=SimpleNamespace(docker=SimpleNamespace(project="kigali")),
        paths=SimpleNamespace(state_dir=Path("/nonexistent")),
    )
    said: list[str] = []
    supervisor = DockerStack(loaded, client=client, say=said.append)  # type: ignore[arg-type]
    supervisor.stack = dataclasses.replace(stack, services=[hub])
    assert supervisor.wait(poll=0) == "kigali-hub"
    assert log == ["start kigali-hub"] * 5  # five tries, then it gives up
    assert supervisor.keep_user_containers is True
    supervisor.stop()
    assert "remove kigali-user-alice" not in log and "stop kigali-user-alice" not in log
    assert any("left running" in line for line in said)


def test_a_proxy_hub_or_gateway_created_again_joins_every_users_network_again():
    joined: list[tuple[str, str]] = []

    def network(name: str) -> SimpleNamespace:
        def connect(container: str) -> None:
            joined.append((name, container))

        return SimpleNamespace(connect=connect, attrs={"Labels": {USER_LABEL: name}})

    networks = [network("kigali-net-alice"), network("kigali-net-bob")]
    client = SimpleNamespace(networks=SimpleNamespace(list=lambda **_: networks))
    loaded = SimpleNamespace(settings=SimpleNamespace(docker=SimpleNamespace(project="kigali")))
    supervisor = DockerStack(loaded, client=client)  # type: ignore[arg-type]
    supervisor.stack = parse_compose(COMPOSE_FILE.read_text(), VARIABLES, publish=False)
    for service in supervisor.stack.services:
        supervisor._rejoin_user_networks(service)
    assert sorted(joined) == sorted(
        (net, f"kigali-{key}")
        for net in ("kigali-net-alice", "kigali-net-bob")
        for key in ("proxy", "hub", "gateway")
    )


def test_a_folder_mounted_twice_is_refused_naming_the_service_and_folder():
    """Docker refuses such a container ("Duplicate mount point") only when the stack starts,
    without naming the file: the compose file is checked when it is read."""
    text = COMPOSE_FILE.read_text()
    line = "      - ${STATBOX_STATE_DIR}/hub:${STATBOX_STATE_DIR}/hub\n"
    assert line in text
    twice = r"services\.hub: /srv/statbox_state_dir/hub is mounted twice"
    with pytest.raises(BadInput, match=twice):
        parse_compose(text.replace(line, line + line), VARIABLES, publish=False)
