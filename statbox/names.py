"""Names that reach the file system, URLs and RBAC filters: one pattern, checked everywhere.

A username becomes a directory, a container, a volume and a URL path segment. Holding every
name to one conservative pattern means none of those needs its own escaping rules and no two
identities can collide after escaping.
"""

from __future__ import annotations

import hashlib
import re

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
"""Lower-case letters, digits, dot, underscore and hyphen; starts with a letter or digit; <= 63."""

GROUP_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._:/@-]{0,127}$"
"""Group names as identity providers send them (Keycloak paths, GitHub org:team), <= 128."""

ROLE_GROUP_PREFIX = "statbox-role-"
"""``statbox-role-<role>`` holds the members of a role, so RBAC filters
(``!group=statbox-role-trainee``) follow roles, e.g. for the idle culler of each role."""

TEACHES_GROUP_PREFIX = "statbox-teaches-"
"""``statbox-teaches-<cohort>`` holds the instructors of a cohort; a role assigned to it grants
them their cohort's servers."""

RESERVED_GROUP_PREFIXES = (ROLE_GROUP_PREFIX, TEACHES_GROUP_PREFIX)
"""Groups Statbox alone writes. Groups with these prefixes from an identity provider or the
settings are dropped or refused: nobody can give themselves a role by naming a group."""

_USERNAME = re.compile(USERNAME_PATTERN)
_GROUP = re.compile(GROUP_PATTERN)


def is_valid_username(name: str) -> bool:
    """True when ``name`` is already a normalised, safe Statbox username."""
    return bool(_USERNAME.fullmatch(name))


def is_valid_group(name: str) -> bool:
    """True when ``name`` is an acceptable group name."""
    return bool(_GROUP.fullmatch(name))


def role_group(role: str) -> str:
    """The JupyterHub group that holds the members of ``role``."""
    return ROLE_GROUP_PREFIX + role


def teaches_group(cohort: str) -> str:
    """The JupyterHub group that holds the instructors of ``cohort``."""
    return TEACHES_GROUP_PREFIX + cohort


def is_reserved_group(name: str) -> bool:
    """True for group names only Statbox may write."""
    return name.startswith(RESERVED_GROUP_PREFIXES)


def role_name_for(prefix: str, name: str) -> str:
    """A valid JupyterHub role name for any group name: a readable slug plus a short hash,
    so distinct names never share a role."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "x"
    return f"{prefix}-{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
