"""Settings onto JupyterHub's traitlets: the one function ``hub_config.py`` calls.

Invariant: :func:`configure_hub` only sets values on the config object it is given. It does no
I/O, appends to nothing it did not create, and gives the same result when called twice, so
tests call it with a bare ``traitlets.config.Config()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from .auth import make_post_auth_hook
from .names import USERNAME_PATTERN, role_group
from .roles import users_with_role
from .runtime import Runtime
from .settings import ROLE_NAMES, Mode

GATEWAY_SERVICE = "dask-gateway"
GATEWAY_PREFIX = f"/services/{GATEWAY_SERVICE}"

SPAWNER_CLASSES = {
    Mode.local: "statbox.spawners.local.StatboxLocalSpawner",
    Mode.docker: "statbox.spawners.docker.StatboxDockerSpawner",
}
"""Spawner per mode, by import name: a mode's spawner is imported only when it is used."""

# Scopes the idle culler of one role needs, filtered to that role's group.
CULLER_SCOPES = ("list:users", "read:users:activity", "read:servers", "delete:servers")

# Scopes added to the tokens users and their servers hold: reaching Dask Gateway, no more.
GATEWAY_ACCESS_SCOPE = f"access:services!service={GATEWAY_SERVICE}"


def configure_hub(c: Any, rt: Runtime) -> None:
    """Set every JupyterHub traitlet Statbox decides on ``c`` from the runtime ``rt``."""
    s = rt.settings
    state = rt.paths.state_dir

    c.JupyterHub.ip = s.hub.ip
    c.JupyterHub.port = rt.ports.public
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = rt.ports.hub_api
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(state / "run" / "jupyterhub.pid")
    c.JupyterHub.template_vars = {"statbox_hub": s.hub.name, "statbox_region": s.hub.region}

    c.ConfigurableHTTPProxy.command = list(rt.proxy_command)
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{rt.ports.proxy_api}"
    c.ConfigurableHTTPProxy.pid_file = str(state / "run" / "proxy.pid")

    _configure_auth(c, rt)
    _configure_spawner(c, rt)
    for section, values in MODE_TRAITS.get(s.mode, _no_traits)(rt).items():
        for name, value in values.items():
            setattr(c[section], name, value)
    c.JupyterHub.services = [_gateway_service(rt), *(_culler_services(rt))]
    c.JupyterHub.load_roles = [*_token_roles(), *_culler_roles(rt)]


def _configure_auth(c: Any, rt: Runtime) -> None:
    s = rt.settings
    c.JupyterHub.authenticator_class = "statbox.auth.StatboxSharedPasswordAuthenticator"
    c.StatboxSharedPasswordAuthenticator.user_password = rt.secret("user_password")
    c.StatboxSharedPasswordAuthenticator.admin_password = rt.secret("admin_password")
    c.StatboxSharedPasswordAuthenticator.staff_users = users_with_role(s, "instructor", "admin")
    # Anyone with the class password may pick a name: that is what a class password is for.
    c.Authenticator.allow_all = True
    c.Authenticator.admin_users = users_with_role(s, "admin")
    c.Authenticator.username_pattern = USERNAME_PATTERN
    c.Authenticator.manage_groups = True
    c.Authenticator.post_auth_hook = make_post_auth_hook(s)


def _configure_spawner(c: Any, rt: Runtime) -> None:
    s = rt.settings
    c.JupyterHub.spawner_class = SPAWNER_CLASSES[s.mode]
    c.Spawner.cmd = [rt.python, "-m", "statbox.singleuser"]
    c.Spawner.default_url = "/lab"
    c.Spawner.http_timeout = 60
    c.Spawner.start_timeout = 120
    c.Spawner.environment = gateway_client_environment(rt)
    c.StatboxSpawnerMixin.settings = s
    c.StatboxSpawnerMixin.catalog_path = str(rt.paths.catalog)
    c.StatboxSpawnerMixin.curriculum_path = str(rt.paths.curriculum)
    c.StatboxSpawnerMixin.data_root = str(rt.paths.data_root)
    c.StatboxLocalSpawner.home_root = str(rt.paths.state_dir / "homes")
    c.StatboxLocalSpawner.run_as = rt.run_as or ""


def _no_traits(rt: Runtime) -> dict[str, dict[str, Any]]:
    return {}


def _docker_traits(rt: Runtime) -> dict[str, dict[str, Any]]:
    """What docker mode changes: the hub runs in a container on the private network, its
    database is PostgreSQL, and user containers outlive a hub restart (the hub takes them
    back from its database on start)."""
    from .dockernames import DockerNames

    names = DockerNames(rt.settings.docker.project)
    hub_state = rt.paths.state_dir / "hub"
    password = quote(rt.secret("db_password"), safe="")
    return {
        "JupyterHub": {
            # The proxy and the hub's API listen inside the hub's container; only the
            # private network (and, when published, the host's port) reaches them.
            "ip": "0.0.0.0",
            "hub_ip": "0.0.0.0",
            "hub_connect_ip": names.hub,
            "db_url": f"postgresql+psycopg2://jupyterhub:{password}@{rt.hosts.db}:5432/jupyterhub",
            "cookie_secret_file": str(hub_state / "jupyterhub_cookie_secret"),
            "pid_file": str(hub_state / "jupyterhub.pid"),
            "cleanup_servers": False,
        },
        "ConfigurableHTTPProxy": {"pid_file": str(hub_state / "proxy.pid")},
        # The image's own command (statbox.singleuser in Statbox's images).
        "Spawner": {"cmd": None},
        "StatboxDockerSpawner": {
            "network_name": names.network,
            "prefix": names.project,
            "name_template": "{prefix}-user-{username}",
            "home_volume_prefix": names.home_volume_prefix,
            "pids_limit": rt.settings.docker.pids_limit,
            "use_internal_ip": True,
            "remove": True,
            # Images are built on this host (`statbox images build`); none is pulled.
            "pull_policy": "never",
        },
    }


MODE_TRAITS: dict[Mode, Callable[[Runtime], dict[str, dict[str, Any]]]] = {
    Mode.docker: _docker_traits,
}
"""Traitlets a mode sets over the shared ones, by config section (applied last)."""


def gateway_client_environment(rt: Runtime) -> dict[str, str]:
    """What makes ``dask_gateway.Gateway()`` work with no arguments inside a user server.

    The API goes straight to the gateway's proxy on loopback; the scheduler's TLS traffic
    needs its own address or clients hang (see ENVIRONMENT.md); dashboard links are relative
    to the hub's public URL so they work from the browser.
    """
    return {
        "DASK_GATEWAY__ADDRESS": f"{rt.gateway_url}{GATEWAY_PREFIX}",
        "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://{rt.hosts.gateway}:{rt.ports.gateway_tcp}",
        "DASK_GATEWAY__PUBLIC_ADDRESS": f"{GATEWAY_PREFIX}/",
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
    }


def _gateway_service(rt: Runtime) -> dict[str, Any]:
    return {
        "name": GATEWAY_SERVICE,
        "url": rt.gateway_url,
        "api_token": rt.secret("gateway_token"),
        "display": False,
    }


def _roles_by_idle_timeout(rt: Runtime) -> dict[int, list[str]]:
    """Roles grouped by their idle timeout: one culler serves every role sharing one."""
    grouped: dict[int, list[str]] = {}
    for name in ROLE_NAMES:
        grouped.setdefault(rt.settings.role(name).idle_timeout, []).append(name)
    return grouped


def _culler_name(roles: list[str]) -> str:
    return "idle-culler-" + "-".join(roles)


def _culler_services(rt: Runtime) -> list[dict[str, Any]]:
    """jupyterhub-idle-culler per distinct idle timeout, each seeing only its roles' users."""
    return [
        {
            "name": _culler_name(roles),
            "command": [
                rt.python,
                "-m",
                "jupyterhub_idle_culler",
                f"--timeout={timeout}",
                f"--cull-every={max(10, min(300, timeout // 4))}",
            ],
        }
        for timeout, roles in _roles_by_idle_timeout(rt).items()
    ]


def _culler_roles(rt: Runtime) -> list[dict[str, Any]]:
    return [
        {
            "name": f"statbox-{_culler_name(roles)}",
            "description": f"Stop idle servers of {', '.join(roles)}; nothing else",
            "scopes": [
                f"{scope}!group={role_group(role)}" for role in roles for scope in CULLER_SCOPES
            ],
            "services": [_culler_name(roles)],
        }
        for roles in _roles_by_idle_timeout(rt).values()
    ]


def _token_roles() -> list[dict[str, Any]]:
    """The built-in ``user`` and ``server`` roles, plus access to Dask Gateway only."""
    return [
        {"name": "user", "scopes": ["self", GATEWAY_ACCESS_SCOPE]},
        {
            "name": "server",
            "scopes": ["users:activity!user", "access:servers!server", GATEWAY_ACCESS_SCOPE],
        },
    ]
