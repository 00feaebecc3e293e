"""Files Statbox reads at run time, carried inside the package.

Invariant: nothing in ``statbox`` reads a file of the checkout it was built from; whatever a
command needs at run time is here, so a wheel installed anywhere works from any directory.
In a checkout, ``catalogs``, ``curriculum`` and ``indicators`` are links to the repository's
folders of the same name (where their authors edit them); a wheel carries copies.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from statbox.errors import EnvironmentProblem

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
INDICATORS = "indicators"
"""The shipped fast indicators (weekly AIS port calls, a monthly food price index)."""


def resource(name: str) -> Path:
    """The path of a packaged resource (the package is always installed as plain files)."""
    return Path(str(files(__name__).joinpath(name)))


CHECKOUT = Path(__file__).resolve().parents[2]
"""The source checkout this package was imported from, when it was (an editable install).
Building images and bundles reads the checkout's ``images/``, ``requirements/`` and chart;
nothing else does."""


def checkout(purpose: str) -> Path:
    """:data:`CHECKOUT`, or EnvironmentProblem when Statbox does not run from a checkout."""
    if not ((CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "images").is_dir()):
        raise EnvironmentProblem(
            f"{purpose} needs a Statbox source checkout (its images/ and requirements/ "
            "folders); run it from the statbox installed by `make install` in a checkout"
        )
    return CHECKOUT
