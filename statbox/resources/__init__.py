"""Files Statbox reads at run time, carried inside the package.

Invariant: nothing in ``statbox`` reads a file of the checkout it was built from; whatever a
command needs at run time is here, so a wheel installed anywhere works from any directory.
In a checkout, ``catalogs`` and ``curriculum`` are links to the repository's folders of the
same name (where their authors edit them); a wheel carries copies.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEFAULT_SETTINGS = "statbox.yaml"
"""The built-in settings every ``statbox.yaml`` is merged over."""
COMPOSE = "compose.yaml"
"""The docker-mode stack, for ``docker compose`` (``statbox up --mode docker --prepare``)."""
HUB_CONFIG = "hub_config.py"
"""JupyterHub's configuration file, the same in every mode."""
GATEWAY_CONFIG = "gateway_config.py"
"""Dask Gateway's configuration file (local and docker modes)."""
CATALOGS = "catalogs"
"""The shipped Intake catalogs; ``catalogs/statbox.yaml`` is the root catalog."""
CURRICULUM = "curriculum"
"""The shipped courses."""


def resource(name: str) -> Path:
    """The path of a packaged resource (the package is always installed as plain files)."""
    return Path(str(files(__name__).joinpath(name)))
