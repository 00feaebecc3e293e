"""Who may see and read which catalog entry: one rule, used for listing and for mounting.

Rule, for a user with role ``role`` and groups ``groups``:

- a ``public`` or ``registered`` entry is entitled when its level is in the role's
  ``data.levels``;
- a ``restricted`` entry is entitled when the role's ``data.restricted`` names it (or is
  ``"*"``), or the entry's own ``access.roles`` lists the role, or its ``access.groups``
  shares a group with the user.

The catalog is not access control: anyone who can read the files can read the data. The
docker and Kubernetes modes mount, read-only, exactly the directories
:func:`entitled_data_paths` returns, so restricted data is never mounted for someone not
entitled to it. Local mode has no mounts (its users share one account; see the README).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..settings import AccessLevel, Settings
from .loader import EntryInfo, StatboxCatalog, read_catalog


@dataclass(frozen=True)
class EntryAccess:
    """An entry a user is entitled to, and the dataset directory they may read."""

    name: str
    domain: str
    title: str
    level: str
    """public, registered or restricted."""
    data_path: str
    """The dataset directory relative to the data root, with forward slashes."""
    reason: str
    """Why the user is entitled (for `statbox catalog list --as-role` and audits)."""


def entitlement(settings: Settings, role: str, groups: Iterable[str], entry: EntryInfo) -> str:
    """Why ``role`` with ``groups`` may read ``entry``, or "" when they may not."""
    data = settings.role(role).data
    access = entry.metadata.access
    if access.level is not AccessLevel.restricted:
        levels = {level.value for level in data.levels}
        return (
            f"{access.level.value} entries are in roles.{role}.data.levels"
            if access.level.value in levels
            else ""
        )
    if "*" in data.restricted or entry.name in data.restricted:
        return f"named in roles.{role}.data.restricted"
    if role in access.roles:
        return f"the entry's access.roles lists {role}"
    shared = sorted(set(groups) & set(access.groups))
    if shared:
        return f"the entry's access.groups lists {shared[0]}"
    return ""


def _access(entry: EntryInfo, reason: str) -> EntryAccess:
    return EntryAccess(
        name=entry.name,
        domain=entry.domain,
        title=entry.metadata.title,
        level=entry.metadata.access.level.value,
        data_path=entry.data_path,
        reason=reason,
    )


def entitled_entries(
    settings: Settings, role: str, groups: Iterable[str], catalog_path: Path
) -> list[EntryAccess]:
    """The entries of the catalog at ``catalog_path`` that the user may see, by name.

    Raises :class:`~statbox.catalog.errors.CatalogError` if the catalog is invalid (an
    invalid catalog entitles nobody to anything).
    """
    groups = list(groups)
    info, _ = read_catalog(catalog_path)
    found = []
    for name in sorted(info.entries):
        reason = entitlement(settings, role, groups, info.entries[name])
        if reason:
            found.append(_access(info.entries[name], reason))
    return found


def entitled_data_paths(
    settings: Settings, role: str, groups: Iterable[str], catalog_path: Path
) -> list[str]:
    """The dataset directories (relative to the data root) the user may read: what the
    docker and Kubernetes modes mount read-only, and nothing else."""
    return sorted({e.data_path for e in entitled_entries(settings, role, groups, catalog_path)})


def filter_catalog(
    catalog: StatboxCatalog, settings: Settings, role: str, groups: Iterable[str]
) -> StatboxCatalog:
    """The entries of a loaded catalog the user may see."""
    groups = list(groups)
    keep = [
        name
        for name, entry in catalog.info.entries.items()
        if entitlement(settings, role, groups, entry)
    ]
    return catalog.subset(keep)


def groups_from_environment() -> list[str]:
    """The user's groups as the spawner passes them (STATBOX_GROUPS, comma-separated)."""
    return [g for g in os.environ.get("STATBOX_GROUPS", "").split(",") if g.strip()]
