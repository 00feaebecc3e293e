"""Dask Gateway configuration for Statbox: ``dask-gateway-server -f`` this file.

Thin on purpose: the runtime comes from ``$STATBOX_RUNTIME`` and the secrets from the
environment (both set by ``statbox up``);
:func:`statbox.configure.gateway.configure_gateway` does the rest.
"""

from statbox.configure.gateway import PerUserAccountBackend, configure_gateway
from statbox.configure.runtime import load_runtime
from statbox.dashboards.firewall import gateway_container_firewall
from statbox.errors import StatboxError
from statbox.settings.model import Mode

c = get_config()  # type: ignore[name-defined]  # noqa: F821 (provided by traitlets)
runtime = load_runtime()
configure_gateway(c, runtime)
if runtime.settings.mode is Mode.docker:
    # Every user's schedulers and workers share this container's network: before any can
    # start, keep their uids off the dashboards (local mode's stack does it on the host).
    firewall = gateway_container_firewall(
        PerUserAccountBackend.first_uid, runtime.ports.gateway_http
    )
    try:
        firewall.install()
    except StatboxError as exc:
        raise SystemExit(f"statbox: the gateway did not start: {exc}") from None
