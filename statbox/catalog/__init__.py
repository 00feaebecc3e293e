"""Statbox's catalog of shared global datasets (Intake 2), loaded safely and filtered by role.

In a notebook::

    from statbox.catalog import open_catalog
    catalog = open_catalog()                 # what this user may see
    frame = catalog["sdg.indicators"].read()

``intake.from_yaml_file(os.environ["STATBOX_CATALOG"])`` works too (every user server has
STATBOX_CATALOG and STATBOX_DATA_ROOT); ``open_catalog`` adds Statbox's checks (no imports,
no environment reads, metadata and schema checked on opening an entry) and the user's access.
Opening is cheap: in a user server it imports neither pydantic nor the settings model (see
:mod:`.loader` and :mod:`.access`).

Modules: :mod:`.loader` (checks), :mod:`.opened` (the Intake catalog), :mod:`.metadata` (what
every entry declares), :mod:`.levels` (access levels), :mod:`.verify` (data against schema),
:mod:`.access` (who sees what; what is mounted), :mod:`.samples` (the sample data),
:mod:`.build` (the root catalog), :mod:`.cli`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from statbox.catalog.errors import CatalogError
from statbox.contract import CATALOG_ENV, CONFIG_ENV, DATA_ROOT_ENV, ROLE_ENV

if TYPE_CHECKING:
    from statbox.catalog.opened import StatboxCatalog
    from statbox.settings.model import Settings

__all__ = ["CatalogError", "load_catalog", "open_catalog"]


def load_catalog(path: Path | str, data_root: str | Path) -> StatboxCatalog:
    """The whole catalog at ``path`` (no access filtering) as an Intake catalog whose entries
    read from ``data_root``.

    Raises :class:`CatalogError` with every problem (file and line) if the catalog is unsafe
    or invalid, before Intake is imported; an entry whose metadata is invalid, whose files are
    missing or whose data does not match its declared schema raises it when opened
    (``catalog[name]``), before anything is read.
    """
    from statbox.catalog.loader import read_catalog

    info, data = read_catalog(path, data_root, lazy=True)
    from statbox.catalog.opened import catalog_from_checked

    return catalog_from_checked(info, data)


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
    STATBOX_DATA_ROOT (else paths.data_root), and the role's access from STATBOX_DATA_LEVELS
    and STATBOX_DATA_RESTRICTED (set by the spawner), else the settings from STATBOX_CONFIG,
    else the built-in defaults. The settings model is loaded only when the settings are a
    file or a path must come from them.
    """
    from statbox.catalog.access import (
        RoleAccess,
        builtin_role_access,
        filter_catalog,
        groups_from_environment,
        role_access_from_environment,
    )

    config = os.environ.get(CONFIG_ENV) or None
    path = path or os.environ.get(CATALOG_ENV) or None
    data_root = data_root or os.environ.get(DATA_ROOT_ENV) or None
    role = role or os.environ.get(ROLE_ENV) or None
    if path is None or data_root is None or (settings is None and config is not None):
        from statbox.settings.model import load_settings

        loaded = load_settings(config)
        settings = settings or loaded.settings
        path = path or loaded.paths.catalog
        data_root = data_root or loaded.paths.data_root
    passed = role_access_from_environment(role) if settings is None else None
    if passed is not None:
        rules = passed
    elif settings is None:
        rules = builtin_role_access(role)
    else:
        rules = RoleAccess.of(settings, role or settings.default_role)
    groups = list(groups) if groups is not None else groups_from_environment()
    return filter_catalog(load_catalog(path, data_root), rules, groups)
