"""Settings onto JupyterHub's traitlets: the one function ``hub_config.py`` calls.

Invariant: :func:`configure_hub` only sets values on the config object it is given. It does no
I/O, appends to nothing it did not create, and gives the same result when called twice, so
tests call it with a bare ``traitlets.config.Config()``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import quote

from statbox.configure.hubdb import sqlite_database
from statbox.configure.runtime import Runtime
from statbox.contract import (
    CLASSROOM_LISTEN_ENV,
    CLASSROOM_SERVICE,
    DASHBOARDS_GATEWAY_ENV,
    DASHBOARDS_LISTEN_ENV,
    DOCKER_GRADING_SCRATCH,
    INDICATORS_LISTEN_ENV,
    INDICATORS_SERVICE,
    KUBE_PROXY_PEERS,
    RUNTIME_ENV,
    DockerNames,
)
from statbox.i18n import LANGUAGE_ENV, Speaker, direction
from statbox.identity.roles import GATEWAY_ACCESS_SCOPE, cohort_roles, token_roles, users_with_role
from statbox.settings.model import ROLE_NAMES, GitHubAuth, Mode, OIDCAuth
from statbox.settings.names import GATEWAY_SERVICE, USERNAME_PATTERN, role_group

__all__ = ["GATEWAY_ACCESS_SCOPE", "GATEWAY_PREFIX", "GATEWAY_SERVICE", "configure_hub"]

GATEWAY_PREFIX = f"/services/{GATEWAY_SERVICE}"

SPAWNER_CLASSES = {
    Mode.local: "statbox.spawners.local.StatboxLocalSpawner",
    Mode.docker: "statbox.spawners.docker.StatboxDockerSpawner",
    Mode.kubernetes: "statbox.spawners.kubernetes.StatboxKubeSpawner",
}
"""Spawner per mode, by import name: a mode's spawner is imported only when it is used."""

LEFT_TO_THE_DEPLOYMENT: dict[Mode, frozenset[str]] = {
    # zero-to-jupyterhub's own jupyterhub_config.py runs first and owns the hub's addresses,
    # database, cookie secret and proxy. Sign-in stays Statbox's (auth: in statbox.yaml), so
    # one settings file decides who may enter in every mode.
    Mode.kubernetes: frozenset({"network"}),
}
"""Parts of the hub's configuration that a mode's deployment sets instead of Statbox."""

# Scopes the idle culler of one role needs, filtered to that role's group.
CULLER_SCOPES = ("list:users", "read:users:activity", "read:servers", "delete:servers")


@dataclass(frozen=True)
class HubPagesText:
    """The ``_`` of the hub's templates: JupyterHub calls a callable template variable with
    the user, and gets the translator of the hub's language. A value (equal when the
    language is), so configuring twice sets the same thing."""

    language: str

    def __call__(self, user: Any) -> Callable[..., str]:
        return Speaker(self.language).text


def configure_hub(c: Any, rt: Runtime) -> None:
    """Set every JupyterHub traitlet Statbox decides on ``c`` from the runtime ``rt``."""
    s = rt.settings
    left = LEFT_TO_THE_DEPLOYMENT.get(s.mode, frozenset())
    if "network" not in left:
        _configure_network(c, rt)
    c.JupyterHub.template_vars = {
        "statbox_hub": s.hub.name,
        "statbox_region": s.hub.region,
        "statbox_hub_language": s.hub.language,
        "statbox_hub_dir": direction(s.hub.language),
        # the error pages' translator (statbox/identity/templates/error.html); the sign-in
        # page replaces it with the person's (statbox.identity.auth.StatboxLoginHandler).
        "_": HubPagesText(s.hub.language),
    }
    # Statbox's sign-in page and page frame (the person's language, right to left in Arabic)
    c.JupyterHub.template_paths = [str(resources.files("statbox.identity") / "templates")]

    _configure_auth(c, rt)
    _configure_limits(c, rt)
    _configure_spawner(c, rt)
    for section, values in MODE_TRAITS.get(s.mode, _no_traits)(rt).items():
        for name, value in values.items():
            setattr(c[section], name, value)
    c.JupyterHub.services = [
        _gateway_service(rt),
        _classroom_service(rt),
        _indicators_service(rt),
        *(_culler_services(rt)),
    ]
    c.JupyterHub.load_roles = [*token_roles(), *_culler_roles(rt), *cohort_roles(s)]


def _configure_network(c: Any, rt: Runtime) -> None:
    state = rt.paths.state_dir
    c.JupyterHub.ip = rt.settings.hub.ip
    c.JupyterHub.port = rt.ports.public
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = rt.ports.hub_api
    c.JupyterHub.db_url = f"sqlite:///{sqlite_database(state)}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(state / "run" / "jupyterhub.pid")

    c.ConfigurableHTTPProxy.command = list(rt.proxy_command)
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{rt.ports.proxy_api}"
    c.ConfigurableHTTPProxy.pid_file = str(state / "run" / "proxy.pid")


FORWARDED_FOR_FROM = {
    # The hub starts the proxy beside itself: its socket's owner is known (local.run_as as
    # root; in docker mode, the hub container's own account).
    Mode.local: "proxy-socket",
    # The proxy is a container of its own: known by its address on the private network.
    Mode.docker: "proxy-host",
    # zero-to-jupyterhub's proxy pods, known by their addresses (the chart's headless Service):
    # user pods reach the hub's API directly too.
    Mode.kubernetes: "proxy-host",
}
"""Per mode: whose X-Forwarded-For names the client of a sign-in (statbox.identity.auth)."""


def _configure_limits(c: Any, rt: Runtime) -> None:
    """Sizes of requests, errors and sign-in attempts (statbox.identity.hubapi, .throttle).

    The request limits and the checked API handlers come with Statbox's authenticators (their
    handlers stand first); error messages are cut by an output transform of the hub's app."""
    # Here, not at the top: the command line imports this module, and Tornado is heavy.
    from statbox.identity.limits import MAX_TOKEN_LIFETIME_SECONDS, BoundedErrors

    # `transforms` is web.Application's own argument, which JupyterHub passes tornado_settings to
    c.JupyterHub.tornado_settings.update({"transforms": [BoundedErrors]})
    c.StatboxSharedPasswordAuthenticator.forwarded_for_from = FORWARDED_FOR_FROM[rt.settings.mode]
    c.StatboxSharedPasswordAuthenticator.proxy_account = (
        rt.settings.local.run_as if rt.settings.mode is Mode.local else ""
    )
    if rt.settings.mode is Mode.docker:
        proxy_host = DockerNames(rt.settings.docker.project).proxy_api
        c.StatboxSharedPasswordAuthenticator.proxy_host = proxy_host
    if rt.settings.mode is Mode.kubernetes:
        c.StatboxSharedPasswordAuthenticator.proxy_host = KUBE_PROXY_PEERS
    # Upstream's own bound on token lifetimes (a longer `expires_in` is a 400 there too)
    c.JupyterHub.token_expires_in_max_seconds = MAX_TOKEN_LIFETIME_SECONDS


AUTHENTICATOR_CLASSES = {
    "shared-password": "StatboxSharedPasswordAuthenticator",
    "oidc": "StatboxOIDCAuthenticator",
    "github": "StatboxGitHubAuthenticator",
}
"""Authenticator per ``auth.type``, in :mod:`statbox.identity.auth`."""


def _configure_auth(c: Any, rt: Runtime) -> None:
    s = rt.settings
    name = AUTHENTICATOR_CLASSES[s.auth.type]
    c.JupyterHub.authenticator_class = f"statbox.identity.auth.{name}"
    c.StatboxAuthMixin.settings = s
    c.Authenticator.admin_users = users_with_role(s, "admin")
    c.Authenticator.username_pattern = USERNAME_PATTERN
    c.Authenticator.manage_groups = True
    AUTH_CONFIGURERS[s.auth.type](c[name], c, rt)


def hub_public_url(rt: Runtime) -> str:
    """The address users type: ``hub.public_url``, else from the local stack's ip and port."""
    if rt.settings.hub.public_url:
        return rt.settings.hub.public_url.rstrip("/")
    host = rt.settings.hub.ip
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{rt.ports.public}"


def _shared_password_auth(a: Any, c: Any, rt: Runtime) -> None:
    a.user_password = rt.secret("user_password")
    a.admin_password = rt.secret("admin_password")
    a.staff_users = users_with_role(rt.settings, "instructor", "admin")
    # Anyone with the class password may pick a name: that is what a class password is for.
    c.Authenticator.allow_all = True


def _oauth_auth(a: Any, rt: Runtime) -> None:
    """What OIDC and GitHub share: the client, the callback, and explicit allow rules."""
    auth = rt.settings.auth
    assert isinstance(auth, OIDCAuth | GitHubAuth)
    a.client_id = auth.client_id
    a.client_secret = rt.secret("oauth_client_secret")
    a.oauth_callback_url = f"{hub_public_url(rt)}/hub/oauth_callback"
    a.allow_all = False
    a.enable_auth_state = False  # tokens are not kept: groups are read at every sign-in


def _oidc_auth(a: Any, c: Any, rt: Runtime) -> None:
    auth = rt.settings.auth
    assert isinstance(auth, OIDCAuth)
    _oauth_auth(a, rt)
    a.issuer = auth.issuer
    a.identity_realm = auth.issuer
    a.authorize_url = auth.authorize_url or ""
    a.token_url = auth.token_url or ""
    a.userdata_url = auth.userdata_url or ""
    a.userdata_from_id_token = auth.userdata_from_id_token
    a.scope = list(auth.scopes)
    a.username_claim = auth.username_claim
    a.identity_claim = auth.identity_claim
    a.groups_claim = auth.groups_claim
    a.login_service = auth.login_service


def _github_auth(a: Any, c: Any, rt: Runtime) -> None:
    auth = rt.settings.auth
    assert isinstance(auth, GitHubAuth)
    _oauth_auth(a, rt)
    a.identity_realm = "github"
    a.identity_claim = "id"
    a.allowed_organizations = set(auth.allowed_organizations)
    a.scope = ["read:user", "read:org"]
    a.populate_teams_in_auth_state = True


AUTH_CONFIGURERS = {
    "shared-password": _shared_password_auth,
    "oidc": _oidc_auth,
    "github": _github_auth,
}
"""Per ``auth.type``: sets the authenticator's own section (first argument) and, rarely, ``c``."""


def _configure_spawner(c: Any, rt: Runtime) -> None:
    s = rt.settings
    c.JupyterHub.spawner_class = SPAWNER_CLASSES[s.mode]
    c.Spawner.cmd = [rt.python, "-m", "statbox.spawners.singleuser"]
    # zero-to-jupyterhub sets KubeSpawner.cmd from singleuser.cmd (a null in our values does
    # not remove its default): the most specific class wins, so say it there too.
    c.StatboxKubeSpawner.cmd = [rt.python, "-m", "statbox.spawners.singleuser"]
    c.Spawner.default_url = "/lab"
    c.Spawner.http_timeout = 60
    c.Spawner.start_timeout = 120
    c.Spawner.environment = {
        **gateway_client_environment(rt),
        LANGUAGE_ENV: s.hub.language,  # JupyterLab's default language
    }
    c.StatboxSpawnerMixin.settings = s
    c.StatboxSpawnerMixin.catalog_path = str(rt.paths.catalog)
    c.StatboxSpawnerMixin.curriculum_path = str(rt.paths.curriculum)
    c.StatboxSpawnerMixin.data_root = str(rt.paths.data_root)
    c.StatboxLocalSpawner.home_root = str(rt.paths.state_dir / "homes")
    # Local mode: a uid per user and a control group per server (statbox.spawners.local);
    # the tree is named for the hub's port, so two stacks on one machine never share one.
    c.StatboxLocalSpawner.state_dir = str(rt.paths.state_dir)
    c.StatboxLocalSpawner.cgroup_tree = f"statbox-servers-{rt.ports.public}"
    # zero-to-jupyterhub sets KubeSpawner.environment (from singleuser.extraEnv), which
    # shadows Spawner.environment: the Kubernetes spawner adds the gateway's on top itself.
    c.StatboxKubeSpawner.gateway_environment = gateway_client_environment(rt)


def _stack_gateway(rt: Runtime) -> tuple[str, str]:
    """The gateway ``statbox up`` runs: on loopback (local) or its container (docker)."""
    return rt.gateway_url, f"gateway://{rt.hosts.gateway}:{rt.ports.gateway_tcp}"


def _chart_gateway(rt: Runtime) -> tuple[str, str]:
    kube = rt.settings.kubernetes
    return kube.gateway_url, kube.gateway_proxy_address


def _docker_gateway(rt: Runtime) -> tuple[str, str]:
    """The hub reaches the gateway's HTTP side by its private-network-only name."""
    names = DockerNames(rt.settings.docker.project)
    _, proxy_address = _stack_gateway(rt)
    return f"http://{names.gateway_http}:{rt.ports.gateway_http}", proxy_address


GATEWAY_ADDRESSES = {
    Mode.local: _stack_gateway,
    Mode.docker: _docker_gateway,
    Mode.kubernetes: _chart_gateway,
}
"""Per mode: (URL of the gateway's HTTP proxy, as the dashboards' front reaches it; address
of its TLS proxy for schedulers, as user servers reach it)."""


def _beside_hub(rt: Runtime, port: int) -> tuple[str, str]:
    """A hub-managed service on ``port`` beside the hub: (its URL, as the hub's proxy and
    user servers reach it; the address it listens on)."""
    mode = rt.settings.mode
    if mode is Mode.local:
        url = f"http://127.0.0.1:{port}"
        return url, url
    # Docker: the hub container's private-network name; Kubernetes: zero-to-jupyterhub's hub
    # Service, on which the chart opens the port (hub.service.extraPorts).
    host = DockerNames(rt.settings.docker.project).hub if mode is Mode.docker else "hub"
    return f"http://{host}:{port}", f"http://0.0.0.0:{port}"


def front_addresses(rt: Runtime) -> tuple[str, str]:
    """The dashboards' front (see :func:`_beside_hub`)."""
    return _beside_hub(rt, rt.ports.dashboards)


def _no_traits(rt: Runtime) -> dict[str, dict[str, Any]]:
    return {}


PROXY_ROUTES_CHECK_SECONDS = 10
"""Docker mode: how often the hub gives a proxy that was started again its routes back."""

DOCKER_HUB_RUN = "/run/statbox"
"""A tmpfs in the hub's container (compose.yaml) for its pid files."""


def _docker_traits(rt: Runtime) -> dict[str, dict[str, Any]]:
    """What docker mode changes: the hub runs in a container on the private network, its
    database is PostgreSQL, and user containers outlive a hub restart (the hub takes them
    back from its database on start)."""

    names = DockerNames(rt.settings.docker.project)
    hub_state = rt.paths.state_dir / "hub"
    password = quote(rt.secret("db_password"), safe="")
    return {
        "JupyterHub": {
            # The proxy and the hub's API listen inside the hub's container; only the
            # private network (and, when published, the host's port) reaches them.
            "ip": "0.0.0.0",
            "hub_ip": "0.0.0.0",
            # The proxy's route to the hub, by its private-network-only name (compose.yaml):
            # the hub sees the proxy come from the proxy's private address alone.
            "hub_connect_ip": names.hub_private,
            "db_url": f"postgresql+psycopg2://jupyterhub:{password}@{rt.hosts.db}:5432/jupyterhub",
            "cookie_secret_file": str(hub_state / "jupyterhub_cookie_secret"),
            # On the container's tmpfs (compose.yaml), new at every start: a pid file left by
            # a killed hub can never make the next one signal whatever has that pid now.
            "pid_file": f"{DOCKER_HUB_RUN}/jupyterhub.pid",
            "cleanup_servers": False,
            # The proxy's routes are compared with the servers' this often (seconds): a
            # proxy started again has none but its default, to the hub, until then.
            "last_activity_interval": PROXY_ROUTES_CHECK_SECONDS,
        },
        # The proxy is a container of its own (compose.yaml), started before the hub and
        # outliving it: a restarted hub finds its routes there and adds any missing. Stopping
        # the hub (cleanup_proxy) therefore never touches it.
        "ConfigurableHTTPProxy": {
            "should_start": False,
            "api_url": f"http://{names.proxy_api}:{rt.ports.proxy_api}",
            "auth_token": rt.secret("proxy_auth_token"),
            "pid_file": f"{DOCKER_HUB_RUN}/proxy.pid",
        },
        # The image's own command (statbox.spawners.singleuser in Statbox's images). Servers
        # reach the hub's API by the hub's name on their own network.
        "Spawner": {"cmd": None, "hub_connect_url": f"http://{names.hub}:{rt.ports.hub_api}"},
        "StatboxDockerSpawner": {
            # Each user's container alone on its own internal network with the hub and the
            # gateway: not the database's network, not another user's.
            "user_network_prefix": names.user_network_prefix,
            "user_subnets": rt.settings.docker.user_subnets or "",
            "shared_containers": [names.proxy, names.hub, names.gateway],
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


def _local_traits(rt: Runtime) -> dict[str, dict[str, Any]]:
    """What local mode changes: ``statbox up`` starts and supervises the proxy itself
    (statbox.modes.local.stack), so a hub that dies and comes back never takes the proxy,
    and the users' open notebooks, with it; the token between them is a kept secret."""
    return {
        "ConfigurableHTTPProxy": {
            "should_start": False,
            "auth_token": rt.secret("proxy_auth_token"),
        },
    }


MODE_TRAITS: dict[Mode, Callable[[Runtime], dict[str, dict[str, Any]]]] = {
    Mode.local: _local_traits,
    Mode.docker: _docker_traits,
}
"""Traitlets a mode sets over the shared ones, by config section (applied last)."""


def gateway_client_environment(rt: Runtime) -> dict[str, str]:
    """What makes ``dask_gateway.Gateway()`` work with no arguments inside a user server.

    The API goes through the dashboards' front (which passes it on unchanged); the
    scheduler's TLS traffic needs its own address (DASK_GATEWAY__PROXY_ADDRESS) or clients
    hang for 30 s; dashboard links are relative to the hub's public URL so they work from
    the browser, through the hub's proxy to the front, which shows them to their owner only.
    """
    _, proxy_address = GATEWAY_ADDRESSES[rt.settings.mode](rt)
    front_url, _ = front_addresses(rt)
    return {
        "DASK_GATEWAY__ADDRESS": f"{front_url}{GATEWAY_PREFIX}",
        "DASK_GATEWAY__PROXY_ADDRESS": proxy_address,
        "DASK_GATEWAY__PUBLIC_ADDRESS": f"{GATEWAY_PREFIX}/",
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
    }


FRONT_OAUTH_SCOPES = (GATEWAY_ACCESS_SCOPE, "read:users!user")
"""What a browser's OAuth token for the front may do: reach the gateway (which requires
this scope of every token), and read the user's own model, whose ``admin`` flag lets the
gateway show an admin any cluster (identify scopes alone leave it out)."""


def _gateway_service(rt: Runtime) -> dict[str, Any]:
    """The ``dask-gateway`` service users reach is the dashboards' front
    (:mod:`statbox.dashboards`), started and stopped by the hub; the gateway's own HTTP side
    sits behind it, reached by the front alone."""
    gateway_url, _ = GATEWAY_ADDRESSES[rt.settings.mode](rt)
    url, listen = front_addresses(rt)
    return {
        "name": GATEWAY_SERVICE,
        "url": url,
        "command": [rt.python, "-m", "statbox.dashboards"],
        "environment": {DASHBOARDS_GATEWAY_ENV: gateway_url, DASHBOARDS_LISTEN_ENV: listen},
        "api_token": rt.secret("gateway_token"),
        "oauth_client_allowed_scopes": list(FRONT_OAUTH_SCOPES),
        # Statbox's own front: no "authorize this application?" page on the way to a dashboard
        "oauth_no_confirm": True,
        "display": False,
        # No `user`: the front runs as the hub's account. The hub hands a managed service its
        # token in the environment, which any process of the same uid may read; local.run_as
        # (often `nobody`) is shared with the proxy and with other daemons.
    }


@dataclass(frozen=True)
class FromHubEnvironment:
    """A service's environment value read from the hub's own environment when the hub
    starts the service (JupyterHub calls callables there), not when it is configured; equal
    by name, so configuring twice gives the same configuration."""

    name: str

    def __call__(self, spawner: Any) -> str:
        return os.environ.get(self.name, "")


def _pages_service(
    rt: Runtime, name: str, module: str, port: int, listen_env: str, description: str
) -> dict[str, Any]:
    """A service of Statbox's own pages beside the hub (the classroom, the indicators),
    started and stopped by the hub, reached by people through the hub's proxy only."""
    url, listen = _beside_hub(rt, port)
    if rt.settings.mode is Mode.docker:
        # Only the proxy needs it: the hub's name on the private network alone, which users'
        # containers (on networks the hub also joins) cannot reach.
        url = listen = f"http://{DockerNames(rt.settings.docker.project).hub_private}:{port}"
    # A managed service gets only the variables named here. It reads the run's settings (no
    # secret in them) from the file the hub reads them from, known when the hub starts it.
    environment: dict[str, Any] = {
        listen_env: listen,
        RUNTIME_ENV: FromHubEnvironment(RUNTIME_ENV),
    }
    if rt.settings.mode is Mode.docker:
        # Graded kernels' (and indicator runs') job folders: their containers bind them by
        # path, which must name the same folder on the host as in the hub's container.
        environment["TMPDIR"] = str(rt.paths.state_dir / DOCKER_GRADING_SCRATCH)
    return {
        "name": name,
        "url": url,
        "command": [rt.python, "-m", module],
        "environment": environment,
        # All a browser's OAuth token for it may do: reach it (the hub adds the identify
        # scopes, name and groups). What a person may do there the service's library decides.
        "oauth_client_allowed_scopes": [f"access:services!service={name}"],
        # Statbox's own pages: no "authorize this application?" page on the way in
        "oauth_no_confirm": True,
        "display": True,
        "info": {"description": description},
    }


def _classroom_service(rt: Runtime) -> dict[str, Any]:
    """The classroom (:mod:`statbox.classroom.web`): pages and API for trainees and
    instructors, and the public verification page."""
    return _pages_service(
        rt,
        CLASSROOM_SERVICE,
        "statbox.classroom.web",
        rt.ports.classroom,
        CLASSROOM_LISTEN_ENV,
        "Courses, submissions, grades and certificates",
    )


def _indicators_service(rt: Runtime) -> dict[str, Any]:
    """The indicators (:mod:`statbox.indicators.web`): their scheduler, the published
    indicators' pages (public ones without login) and JSON API."""
    return _pages_service(
        rt,
        INDICATORS_SERVICE,
        "statbox.indicators.web",
        rt.ports.indicators,
        INDICATORS_LISTEN_ENV,
        "Published indicators: series, runs, revisions, downloads",
    )


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
