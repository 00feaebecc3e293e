"""What a running stack knows beyond the settings: ports, commands and secrets.

``statbox up`` decides these once and writes them to ``<state>/run/runtime.json`` (no secrets
in it); ``hub_config.py`` and the gateway's config read that file through the
``STATBOX_RUNTIME`` environment variable, and secrets from their own environment. Reading
happens here, at the edge, so the configure functions stay pure.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from statbox.contract import RUNTIME_ENV, SECRET_ENV, SECRETS_DIR_ENV
from statbox.contract.runtime import RuntimeDocument, RuntimeHosts, RuntimePorts
from statbox.settings.model import Paths, Settings, parse_settings


class MissingEnvironment(RuntimeError):
    """A variable a configuration needs is not set."""


Ports = RuntimePorts
"""Every port a stack listens on (the runtime document's ``ports``)."""
Hosts = RuntimeHosts
"""Where the stack's parts listen and are reached (the runtime document's ``hosts``)."""


@dataclass(frozen=True)
class Runtime:
    """Settings plus what ``statbox up`` decided for this run."""

    settings: Settings
    paths: Paths
    ports: Ports
    proxy_command: list[str]
    python: str
    """Interpreter that runs user servers, kernels and Dask (the one Statbox runs in)."""
    run_as: str | None
    """Unprivileged account for servers and clusters when the stack runs as root; else None."""
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    hosts: Hosts = field(default_factory=Hosts)

    def secret(self, name: str) -> str:
        """A secret by name; raises naming the variable when it was not provided."""
        value = self.secrets.get(name)
        if not value:
            raise MissingEnvironment(f"{SECRET_ENV[name]} is not set")
        return value

    @property
    def bin_dir(self) -> Path:
        return Path(self.python).parent

    @property
    def hub_api_url(self) -> str:
        return f"http://{self.hosts.hub}:{self.ports.hub_api}/hub/api"

    @property
    def gateway_url(self) -> str:
        """Where the hub and servers reach Dask Gateway's HTTP proxy (with its prefix)."""
        return f"http://{self.hosts.gateway}:{self.ports.gateway_http}"


def write_runtime(file: Path, rt: Runtime) -> None:
    """Record the run so that the hub and gateway rebuild the same :class:`Runtime`.

    The record holds the effective settings with the passwords and the OAuth client secret
    left out, and absolute paths:
    the gateway runs as an unprivileged account that must not need the operator's settings
    file (which may hold passwords) and may start in another directory.
    """
    settings = rt.settings.model_dump(
        mode="json", exclude={"auth": {"user_password", "admin_password", "client_secret"}}
    )
    settings["paths"] = {key: str(value) for key, value in rt.paths}
    document = RuntimeDocument(
        settings=settings,
        ports=rt.ports,
        proxy_command=rt.proxy_command,
        python=rt.python,
        run_as=rt.run_as,
        hosts=rt.hosts,
    )
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(document.model_dump_json(indent=2))
    file.chmod(0o644)


def load_runtime(environ: dict[str, str] | None = None) -> Runtime:
    """The :class:`Runtime` of the current run, from ``$STATBOX_RUNTIME`` and secrets in env."""
    env = os.environ if environ is None else environ
    path = env.get(RUNTIME_ENV)
    if not path:
        raise MissingEnvironment(
            f"{RUNTIME_ENV} is not set: start Statbox with `statbox up`, which sets it"
        )
    try:
        document = RuntimeDocument.model_validate_json(Path(path).read_text())
    except (OSError, ValidationError) as exc:
        raise MissingEnvironment(
            f"{RUNTIME_ENV}={path}: not a runtime document ({str(exc).splitlines()[0]}); "
            "start Statbox with `statbox up`, which writes it"
        ) from None
    settings = parse_settings(document.settings, source=path)
    return Runtime(
        settings=settings,
        paths=settings.resolved_paths(Path("/")),
        ports=document.ports,
        proxy_command=document.proxy_command,
        python=document.python,
        run_as=document.run_as,
        secrets=_secrets(env),
        hosts=document.hosts,
    )


def _secrets(env: Mapping[str, str]) -> dict[str, str]:
    """Secrets from the environment, and from the files of ``$STATBOX_SECRETS_DIR``."""
    found = {name: env[var] for name, var in SECRET_ENV.items() if env.get(var)}
    folder = env.get(SECRETS_DIR_ENV)
    if folder:
        for name in SECRET_ENV:
            with contextlib.suppress(FileNotFoundError):
                found.setdefault(name, (Path(folder) / name).read_text().strip())
    return found


def runtime_problem() -> str | None:
    """Why a hub-managed service cannot load the runtime (one sentence), or None: what
    :func:`statbox.contract.service.run_service` checks before serving."""
    try:
        load_runtime()
    except MissingEnvironment as exc:
        return str(exc)
    return None
