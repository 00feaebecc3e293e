"""Dask Gateway configuration for Statbox: ``dask-gateway-server -f`` this file.

Thin on purpose: the runtime comes from ``$STATBOX_RUNTIME`` and the secrets from the
environment (both set by ``statbox up``);
:func:`statbox.configure.gateway.configure_gateway` does the rest.
"""

from statbox.configure.gateway import configure_gateway
from statbox.configure.runtime import load_runtime

c = get_config()  # type: ignore[name-defined]  # noqa: F821 (provided by traitlets)
configure_gateway(c, load_runtime())
