"""The runtime document (``runtime.json``): what a run decided beyond the settings.

Two writers make it: ``statbox up`` (local and docker modes, :func:`statbox.configure.runtime.
write_runtime`) and the Helm chart's ``statbox.runtime`` template (kubernetes mode). One
reader loads it: ``hub_config.py`` and the gateway's configuration, through
``$STATBOX_RUNTIME``. This model is the document's one definition; its JSON schema
(:func:`runtime_schema`) is what both writers are tested against. No secret is ever in it:
secrets travel separately (:data:`statbox.contract.SECRET_ENV`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from statbox.contract import CLASSROOM_PORT, DASHBOARDS_PORT, INDICATORS_PORT

Port = Field(ge=1, le=65535)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuntimePorts(_Strict):
    """Every port the stack listens on (loopback in local mode, except the public one)."""

    public: int = Port
    hub_api: int = Port
    proxy_api: int = Port
    gateway_api: int = Port
    gateway_http: int = Port
    gateway_tcp: int = Port
    dashboards: int = Field(default=DASHBOARDS_PORT, ge=1, le=65535)
    """The dashboards' front (local mode: a free loopback port; else its container's)."""
    classroom: int = Field(default=CLASSROOM_PORT, ge=1, le=65535)
    """The classroom service (local mode: a free loopback port; else its container's)."""
    indicators: int = Field(default=INDICATORS_PORT, ge=1, le=65535)
    """The indicators service (local mode: a free loopback port; else its container's)."""


class RuntimeHosts(_Strict):
    """Where the stack's parts listen and are reached: loopback in local mode, the
    containers' names on the private network in docker mode."""

    listen: str = "127.0.0.1"
    """Address the hub's API and the gateway bind to."""
    hub: str = "127.0.0.1"
    """Host name servers and the gateway use to reach the hub's API."""
    gateway: str = "127.0.0.1"
    """Host name the hub and servers use to reach Dask Gateway."""
    db: str = ""
    """Host of the hub's PostgreSQL database (docker mode); empty: SQLite in the state dir."""


class RuntimeDocument(_Strict):
    """``runtime.json``."""

    settings: dict[str, Any]
    """The effective settings with the passwords and OAuth client secret left out, paths
    absolute (the settings model validates them when the document is loaded)."""
    ports: RuntimePorts
    proxy_command: list[str]
    """configurable-http-proxy's command (empty: the proxy runs beside the hub, as in k8s)."""
    python: str = Field(min_length=1)
    """Interpreter that runs user servers, kernels and Dask."""
    run_as: str | None
    """Unprivileged account for servers and clusters when the stack runs as root."""
    hosts: RuntimeHosts = RuntimeHosts()


def runtime_schema() -> dict[str, Any]:
    """The JSON schema of ``runtime.json``."""
    return RuntimeDocument.model_json_schema()
