"""configure_hub on a bare traitlets Config: what each setting becomes, and purity."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from traitlets.config import Config
from traitlets.config.loader import LazyConfigValue

from statbox.configure.hub import GATEWAY_ACCESS_SCOPE, configure_hub, gateway_client_environment
from statbox.configure.runtime import MissingEnvironment


def configured(runtime) -> Config:
    c = Config()
    configure_hub(c, runtime)
    return c


def test_network_and_state(runtime):
    c = configured(runtime)
    state = runtime.paths.state_dir
    assert c.JupyterHub.port == 8080
    assert c.JupyterHub.ip == "127.0.0.1"
    assert c.JupyterHub.hub_ip == "127.0.0.1"
    assert c.JupyterHub.hub_port == 9001
    assert c.JupyterHub.db_url == f"sqlite:///{state}/jupyterhub.sqlite"
    assert c.JupyterHub.cookie_secret_file == f"{state}/jupyterhub_cookie_secret"
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:9002"
    assert c.ConfigurableHTTPProxy.command == ["/opt/chp"]
    # statbox up starts the proxy and keeps it through hub restarts; the hub never reads a
    # proxy pid file (a stale one made it kill whatever had that pid after a crash).
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.ConfigurableHTTPProxy.auth_token == "t" * 64


def test_local_mode_spawner(runtime):
    c = configured(runtime)
    assert c.JupyterHub.spawner_class == "statbox.spawners.local.StatboxLocalSpawner"
    assert c.Spawner.cmd == ["/opt/venv/bin/python", "-m", "statbox.spawners.singleuser"]
    assert c.StatboxLocalSpawner.home_root == f"{runtime.paths.state_dir}/homes"
    assert c.StatboxLocalSpawner.state_dir == str(runtime.paths.state_dir)
    # one tree per stack: two stacks on one machine never share a user's control group
    assert c.StatboxLocalSpawner.cgroup_tree == f"statbox-servers-{runtime.ports.public}"
    assert c.StatboxSpawnerMixin.catalog_path == str(runtime.paths.catalog)


def test_shared_password_auth(runtime):
    c = configured(runtime)
    auth = c.StatboxSharedPasswordAuthenticator
    assert auth.user_password == "class-password"
    assert auth.staff_users == {"ines", "admin"}
    assert c.Authenticator.admin_users == {"admin"}
    assert c.Authenticator.manage_groups is True
    assert c.Authenticator.username_pattern.startswith("^[a-z0-9]")


def test_notebook_tokens_reach_the_gateway_and_nothing_more(runtime):
    roles = {role["name"]: role for role in configured(runtime).JupyterHub.load_roles}
    assert roles["user"]["scopes"] == [
        "self",
        GATEWAY_ACCESS_SCOPE,
        "access:services!service=classroom",
        "access:services!service=indicators",
    ]
    assert roles["server"]["scopes"] == [
        "users:activity!user",
        "access:servers!server",
        GATEWAY_ACCESS_SCOPE,
    ]


def test_one_culler_per_idle_timeout_scoped_to_its_roles(runtime):
    c = configured(runtime)
    services = {s["name"]: s for s in c.JupyterHub.services}
    # the fixture's analyst and admin share 4h: one culler serves both
    assert set(services) == {
        "dask-gateway",
        "classroom",
        "indicators",
        "idle-culler-admin-analyst",
        "idle-culler-instructor",
        "idle-culler-trainee",
    }
    assert "--timeout=3600" in services["idle-culler-trainee"]["command"]
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    trainee = roles["statbox-idle-culler-trainee"]
    assert trainee["services"] == ["idle-culler-trainee"]
    assert sorted(trainee["scopes"]) == sorted(
        f"{scope}!group=statbox-role-trainee"
        for scope in ("list:users", "read:users:activity", "read:servers", "delete:servers")
    )


def test_gateway_service_is_the_dashboards_front_and_clients_use_it(runtime):
    c = configured(runtime)
    gateway = next(s for s in c.JupyterHub.services if s["name"] == "dask-gateway")
    # the hub's proxy sends /services/dask-gateway/ to the front, which the hub starts
    assert gateway["url"] == "http://127.0.0.1:9006"
    assert gateway["command"] == ["/opt/venv/bin/python", "-m", "statbox.dashboards"]
    assert gateway["environment"] == {
        "STATBOX_DASHBOARDS_GATEWAY": "http://127.0.0.1:9004",
        "STATBOX_DASHBOARDS_LISTEN": "http://127.0.0.1:9006",
    }
    assert gateway["api_token"] == "f" * 64
    assert GATEWAY_ACCESS_SCOPE in gateway["oauth_client_allowed_scopes"]
    env = gateway_client_environment(runtime)
    assert c.Spawner.environment == {**env, "STATBOX_LANGUAGE": runtime.settings.hub.language}
    assert env["DASK_GATEWAY__ADDRESS"] == "http://127.0.0.1:9006/services/dask-gateway"
    assert env["DASK_GATEWAY__PUBLIC_ADDRESS"] == "/services/dask-gateway/"
    assert env["DASK_GATEWAY__PROXY_ADDRESS"] == "gateway://127.0.0.1:9005"
    assert env["DASK_GATEWAY__AUTH__TYPE"] == "jupyterhub"


def test_classroom_is_a_managed_service_asking_only_to_be_reached(runtime, monkeypatch):
    c = configured(runtime)
    classroom = next(s for s in c.JupyterHub.services if s["name"] == "classroom")
    assert classroom["url"] == f"http://127.0.0.1:{runtime.ports.classroom}"
    assert classroom["command"] == ["/opt/venv/bin/python", "-m", "statbox.classroom.web"]
    # no hub API token: the service acts on nothing in the hub, it only identifies people
    assert "api_token" not in classroom
    assert classroom["oauth_client_allowed_scopes"] == ["access:services!service=classroom"]
    env = classroom["environment"]
    assert env["STATBOX_CLASSROOM_LISTEN"] == classroom["url"]
    # the runtime file is the hub's own, read when the hub starts the service
    monkeypatch.setenv("STATBOX_RUNTIME", "/state/run/runtime.json")
    assert env["STATBOX_RUNTIME"](None) == "/state/run/runtime.json"


def test_pure_and_idempotent(runtime):
    once = configured(runtime)
    c = Config()
    configure_hub(c, runtime)
    configure_hub(c, runtime)
    assert set(c) == set(once)
    for section in once:
        assert plain(once[section]) == plain(c[section]), section


def plain(section) -> dict:
    """A config section with its lazy values (``.update`` of a dict trait) as what they add."""
    return {k: v.to_dict() if isinstance(v, LazyConfigValue) else v for k, v in section.items()}


def test_missing_secret_names_its_variable(runtime):
    rt = dataclasses.replace(runtime, secrets={})
    with pytest.raises(MissingEnvironment, match="STATBOX_USER_PASSWORD"):
        configure_hub(Config(), rt)


def test_spawner_applies_role(runtime, tmp_path):
    """The local spawner sizes and equips a server from the user's role at start."""
    from statbox.spawners.local import StatboxLocalSpawner

    c = configured(runtime)
    c.StatboxLocalSpawner.home_root = str(tmp_path)
    user = SimpleNamespace(name="ana", groups=[SimpleNamespace(name="analysts")], url="/user/ana/")
    spawner = StatboxLocalSpawner(config=c, user=user)
    assert spawner.apply_role() == "analyst"
    assert spawner.mem_limit == runtime.settings.roles.analyst.server.memory
    assert spawner.cpu_limit == runtime.settings.roles.analyst.server.cpu
    assert spawner.home_dir == str(tmp_path / "ana")
    env = spawner.statbox_environment("analyst")
    assert env["STATBOX_CATALOG"] == str(runtime.paths.catalog)
    assert env["STATBOX_ROLE"] == "analyst"
    # what open_catalog() in the server filters by: this deployment's role, not the defaults
    assert env["STATBOX_GROUPS"] == "analysts"
    data = runtime.settings.roles.analyst.data
    assert env["STATBOX_DATA_LEVELS"] == ",".join(sorted(level.value for level in data.levels))
    assert env["STATBOX_DATA_RESTRICTED"] == ",".join(sorted(data.restricted))
