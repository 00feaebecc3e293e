"""Which dataset directories a user's server may mount: the catalog's access rules.

The catalog work (``statbox.catalog.access.entitled_data_paths``) decides this; until that
module is present, :func:`fallback_entitled_data_paths` reads the catalog the same way with
the same signature, so the spawner never mounts more than the role is entitled to.

Fallback format: an Intake 2 catalog whose ``entries.<name>.metadata`` carry ``access``
(public, registered or restricted), ``path`` (the dataset's directory relative to the data
root, ``<domain>/<dataset>``) and, for restricted entries, optionally ``allowed_roles`` and
``allowed_groups``. A restricted entry is mounted only for a role whose
``data.restricted`` names it (or ``"*"``), a listed role, or a member of a listed group.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

import yaml

from ..settings import AccessLevel, Settings

EntitledPaths = Callable[[Settings, str, Iterable[str], str], list[str]]


def fallback_entitled_data_paths(
    settings: Settings, role: str, groups: Iterable[str], catalog_path: str
) -> list[str]:
    """Dataset directories (relative to the data root) that ``role`` with ``groups`` may
    mount, in catalog order; entries without a safe relative ``path`` are skipped."""
    with open(catalog_path) as file:
        catalog = yaml.safe_load(file) or {}
    rules = settings.role(role).data
    group_set = set(groups)
    entitled = []
    for name, entry in (catalog.get("entries") or {}).items():
        metadata = (entry or {}).get("metadata") or {}
        path = metadata.get("path")
        if not isinstance(path, str) or not _is_safe_relative(path):
            continue
        access = metadata.get("access", AccessLevel.restricted.value)
        if access == AccessLevel.restricted.value:
            allowed = (
                "*" in rules.restricted
                or name in rules.restricted
                or role in (metadata.get("allowed_roles") or [])
                or bool(group_set.intersection(metadata.get("allowed_groups") or []))
            )
        else:
            allowed = access in {level.value for level in rules.levels}
        if allowed and path not in entitled:
            entitled.append(path)
    return entitled


def _is_safe_relative(path: str) -> bool:
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts


def _entitled_data_paths() -> EntitledPaths:
    try:
        from ..catalog.access import entitled_data_paths
    except ImportError:
        return fallback_entitled_data_paths
    return entitled_data_paths


entitled_data_paths: EntitledPaths = _entitled_data_paths()
"""The catalog's rule when ``statbox.catalog.access`` exists, else the fallback above."""
