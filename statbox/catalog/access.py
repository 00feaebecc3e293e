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
entitled to it; local mode binds the same directories, each on its own, into each user's
sandbox (statbox.spawners.local).

What a role may read comes from the settings (:class:`RoleAccess`). In a user server the
spawner passes the role's ``data`` settings as STATBOX_DATA_LEVELS and STATBOX_DATA_RESTRICTED
(:func:`role_access_environment`), so ``open_catalog()`` follows the deployment's settings
without loading them; with neither set, the built-in defaults apply
(:func:`builtin_role_access`, read without building the settings model).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from statbox.catalog.levels import RESTRICTED
from statbox.catalog.loader import EntryInfo, read_catalog
from statbox.contract import DATA_LEVELS_ENV, DATA_RESTRICTED_ENV, GROUPS_ENV
from statbox.errors import BadInput
from statbox.resources import DEFAULT_SETTINGS, resource

if TYPE_CHECKING:
    from statbox.catalog.opened import StatboxCatalog
    from statbox.settings.model import Settings

BUILTIN_DEFAULTS = resource(DEFAULT_SETTINGS)
"""The same file as :data:`statbox.settings.model.DEFAULTS_FILE`, read without the model."""


@dataclass(frozen=True)
class RoleAccess:
    """What one role may read, from its ``data`` settings."""

    role: str
    levels: frozenset[str]
    """The access levels (public, registered) of the entries it sees."""
    restricted: frozenset[str]
    """The restricted entries named for it ("*": all)."""

    @classmethod
    def of(cls, settings: Settings, role: str) -> RoleAccess:
        """Role ``role`` of validated settings."""
        from statbox.settings.model import ROLE_NAMES

        if role not in ROLE_NAMES:
            raise BadInput(f"role {role!r} is not one of {', '.join(ROLE_NAMES)}")
        data = settings.role(role).data
        return cls(role, frozenset(str(v.value) for v in data.levels), frozenset(data.restricted))


ACCESS_ENV = {"levels": DATA_LEVELS_ENV, "restricted": DATA_RESTRICTED_ENV}
"""The role's ``data`` settings, comma-separated, as user servers receive them."""


def role_access_environment(rules: RoleAccess) -> dict[str, str]:
    """The environment that hands ``rules`` to a user server's ``open_catalog()``."""
    return {
        ACCESS_ENV["levels"]: ",".join(sorted(rules.levels)),
        ACCESS_ENV["restricted"]: ",".join(sorted(rules.restricted)),
    }


def role_access_from_environment(role: str | None) -> RoleAccess | None:
    """The role's access as the spawner passed it, or None when it passed none."""
    if ACCESS_ENV["levels"] not in os.environ or not role:
        return None
    levels, restricted = (
        frozenset(v for v in os.environ.get(var, "").split(",") if v) for var in ACCESS_ENV.values()
    )
    return RoleAccess(role, levels, restricted)


def builtin_role_access(role: str | None) -> RoleAccess:
    """Role ``role`` (None: the default role) as the built-in defaults give it.

    The same as ``RoleAccess.of(load_settings(None).settings, role)`` (a test checks every
    role), read from the packaged defaults file without the settings model: the defaults are
    validated by every hub start and by the tests, so nothing goes unchecked.
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    defaults = yaml.load(BUILTIN_DEFAULTS.read_text(), Loader=loader)
    roles = defaults["roles"]
    role = role or defaults["default_role"]
    if role not in roles:
        raise BadInput(f"role {role!r} is not one of {', '.join(roles)}")
    data = roles[role]["data"]
    return RoleAccess(role, frozenset(data["levels"]), frozenset(data["restricted"]))


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


def entitlement(rules: RoleAccess, groups: Iterable[str], entry: EntryInfo) -> str:
    """Why a user of role ``rules.role`` with ``groups`` may read ``entry``, or "" when they
    may not."""
    role, access = rules.role, entry.access
    if access.level != RESTRICTED:
        return (
            f"{access.level} entries are in roles.{role}.data.levels"
            if access.level in rules.levels
            else ""
        )
    if "*" in rules.restricted or entry.name in rules.restricted:
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
        level=entry.access.level,
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
    rules = RoleAccess.of(settings, role)
    info, _ = read_catalog(catalog_path)
    found = []
    for name in sorted(info.entries):
        reason = entitlement(rules, groups, info.entries[name])
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
    catalog: StatboxCatalog, rules: RoleAccess, groups: Iterable[str]
) -> StatboxCatalog:
    """The entries of a loaded catalog the user may see."""
    groups = list(groups)
    entries = catalog.info.entries
    keep = [name for name, entry in entries.items() if entitlement(rules, groups, entry)]
    return catalog.subset(keep)


def groups_from_environment() -> list[str]:
    """The user's groups as the spawner passes them (STATBOX_GROUPS, comma-separated)."""
    return [g for g in os.environ.get(GROUPS_ENV, "").split(",") if g.strip()]
