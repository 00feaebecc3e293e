"""Settings onto Dask Gateway's traitlets, and the per-role cluster options.

Invariant, as for the hub: :func:`configure_gateway` only sets values on ``c``. The options a
user may choose, and the limits a cluster gets, come from the user's role as
:func:`statbox.roles.resolve_role` decides it from the groups JupyterHub reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from aiohttp import web
from dask_gateway_server.auth import JupyterHubAuthenticator, unauthorized
from dask_gateway_server.models import User
from dask_gateway_server.options import Float, Integer, Options

from .hub import GATEWAY_PREFIX, GATEWAY_SERVICE
from .roles import role_settings
from .runtime import Runtime
from .settings import Role, Settings

GIB = 1024**3


class HubAdminAwareUser(User):
    """A gateway user whom the hub calls an admin may reach (view, scale, stop) any cluster by
    name, as the admin role may everything; everyone else, only their own clusters."""

    def has_permissions(self, cluster: Any) -> bool:
        return self.admin or bool(super().has_permissions(cluster))


class HubTokenAuthenticator(JupyterHubAuthenticator):
    """Dask Gateway's JupyterHub authentication, answering 401 to a token the hub rejects.

    The gateway checks a user's token by calling the hub's ``/hub/api/user`` *with that
    token*. JupyterHub answers 403 to a token it does not know (forged, expired, revoked),
    which upstream turns into a 500 "Permission failure"; a refused credential is a 401.
    """

    async def authenticate(self, request: Any) -> Any:
        try:
            user = await super().authenticate(request)
            return HubAdminAwareUser(user.name, user.groups, user.admin)
        except web.HTTPInternalServerError as exc:
            if "verifying user's JupyterHub API token" in (exc.reason or ""):
                self.log.info("Refused a token the hub does not accept")
                raise unauthorized("jupyterhub") from None
            raise


def cluster_options_for(
    settings: Settings, per_user: Callable[[Any], dict[str, Any]] | None = None
) -> Callable[[Any], Options]:
    """``c.Backend.cluster_options``: the options form of each user, bounded by their role.

    ``per_user(user)``, when given, adds backend configuration to every cluster of that user
    (kubernetes mode: the user's label on the cluster's pods).
    """

    def cluster_options(user: Any) -> Options:
        extra = per_user(user) if per_user is not None else {}
        _, role = role_settings(settings, user.name, user.groups)
        limits = role.dask
        max_cores = max(1, math.floor(limits.max_worker_cores))
        max_memory = limits.max_worker_memory / GIB
        return Options(
            Integer("worker_cores", default=1, min=1, max=max_cores, label="Worker cores"),
            Float(
                "worker_memory",
                default=min(1.0, max_memory),
                min=0.25,
                max=max_memory,
                label="Worker memory (GiB)",
            ),
            handler=lambda options: {
                **cluster_limits(role, options.worker_cores, options.worker_memory),
                **extra,
            },
        )

    return cluster_options


def cluster_limits(role: Role, worker_cores: int, worker_memory_gib: float) -> dict[str, Any]:
    """Cluster configuration for a validated request: the user's sizes, the role's caps."""
    limits = role.dask
    return {
        "worker_cores": worker_cores,
        "worker_memory": int(worker_memory_gib * GIB),
        "cluster_max_workers": limits.max_workers,
        "idle_timeout": float(limits.idle_timeout),
    }


def configure_gateway(c: Any, rt: Runtime) -> None:
    """Set every Dask Gateway traitlet Statbox decides on ``c`` from the runtime ``rt``."""
    state = rt.paths.state_dir / "gateway"
    c.DaskGateway.address = f"127.0.0.1:{rt.ports.gateway_api}"
    c.Proxy.address = f"127.0.0.1:{rt.ports.gateway_http}"
    c.Proxy.tcp_address = f"127.0.0.1:{rt.ports.gateway_tcp}"
    c.Proxy.prefix = GATEWAY_PREFIX

    c.DaskGateway.authenticator_class = "statbox.gateway.HubTokenAuthenticator"
    c.JupyterHubAuthenticator.jupyterhub_api_url = rt.hub_api_url
    c.JupyterHubAuthenticator.jupyterhub_api_token = rt.secret("gateway_token")
    # Without the service name any hub token would be accepted (see ENVIRONMENT.md).
    c.JupyterHubAuthenticator.jupyterhub_service_name = GATEWAY_SERVICE

    # Unsafe by upstream's name: clusters run as the gateway's account, which `statbox up`
    # makes the unprivileged run_as account when started as root.
    c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
    c.LocalBackend.clusters_directory = str(state / "clusters")
    c.DBBackendBase.db_url = f"sqlite:///{state / 'gateway.sqlite'}"
    c.DBBackendBase.db_encrypt_keys = [rt.secret("gateway_encrypt_key")]
    c.DBBackendBase.stop_clusters_on_shutdown = True

    dask = str(rt.bin_dir / "dask")
    c.ClusterConfig.scheduler_cmd = [dask, "scheduler"]
    c.ClusterConfig.worker_cmd = [dask, "worker"]
    c.ClusterConfig.idle_timeout = float(
        rt.settings.role(rt.settings.default_role).dask.idle_timeout
    )
    c.Backend.cluster_options = cluster_options_for(rt.settings)
