"""JupyterHub configuration for every Statbox mode: ``jupyterhub -f hub_config.py``.

Thin on purpose: the runtime comes from ``$STATBOX_RUNTIME`` and the secrets from the
environment (both set by ``statbox up``, or by the Helm chart on Kubernetes);
:func:`statbox.configure.hub.configure_hub` does the rest.
"""

from statbox.configure.hub import configure_hub
from statbox.configure.runtime import load_runtime

c = get_config()  # type: ignore[name-defined]  # noqa: F821 (provided by traitlets)
configure_hub(c, load_runtime())
