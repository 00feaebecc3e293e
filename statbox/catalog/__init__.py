"""Statbox's catalog of shared global datasets (Intake 2), loaded safely and filtered by role.

In a notebook::

    from statbox.catalog import open_catalog
    catalog = open_catalog()                 # what this user may see
    frame = catalog["sdg.indicators"].read()

``intake.from_yaml_file(os.environ["STATBOX_CATALOG"])`` works too (every user server has
STATBOX_CATALOG and STATBOX_DATA_ROOT); ``open_catalog`` adds Statbox's checks (no imports,
no environment reads, schema checked on opening an entry) and the user's access.

Modules: :mod:`.loader` (checks and loading), :mod:`.metadata` (what every entry declares),
:mod:`.verify` (data against schema), :mod:`.access` (who sees what; what is mounted),
:mod:`.samples` (the sample data), :mod:`.build` (the root catalog), :mod:`.cli`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CatalogError

if TYPE_CHECKING:
    from ..settings import Settings
    from .loader import StatboxCatalog

__all__ = ["CatalogError", "load_catalog", "open_catalog"]


def load_catalog(path: Path | str, data_root: str | Path) -> StatboxCatalog:
    """The whole catalog at ``path`` (no access filtering), reading from ``data_root``."""
    from .loader import load_catalog as load

    return load(path, data_root)


def open_catalog(
    path: Path | str | None = None,
    *,
    role: str | None = None,
    groups: Iterable[str] | None = None,
    settings: Settings | None = None,
    data_root: str | Path | None = None,
) -> StatboxCatalog:
    """The catalog filtered to what the user may see.

    Each argument left out comes from the user server's environment, else the settings:
    ``path`` from STATBOX_CATALOG (else paths.catalog), ``role`` from STATBOX_ROLE (else
    default_role), ``groups`` from STATBOX_GROUPS (comma-separated), ``data_root`` from
    STATBOX_DATA_ROOT (else paths.data_root), and the settings from STATBOX_CONFIG (else
    the built-in defaults).
    """
    from ..errors import BadInput
    from ..settings import ROLE_NAMES, load_settings
    from .access import filter_catalog, groups_from_environment
    from .loader import load_catalog as load

    loaded = None
    if settings is None:
        loaded = load_settings(os.environ.get("STATBOX_CONFIG") or None)
        settings = loaded.settings
    role = role or os.environ.get("STATBOX_ROLE") or settings.default_role
    if role not in ROLE_NAMES:
        raise BadInput(f"role {role!r} is not one of {', '.join(ROLE_NAMES)}")
    if path is None:
        chosen = os.environ.get("STATBOX_CATALOG")
        path = chosen or (loaded or load_settings(None)).paths.catalog
    if data_root is None:
        chosen = os.environ.get("STATBOX_DATA_ROOT")
        data_root = chosen or (loaded or load_settings(None)).paths.data_root
    groups = list(groups) if groups is not None else groups_from_environment()
    return filter_catalog(load(path, data_root), settings, role, groups)
