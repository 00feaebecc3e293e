"""Names that reach the file system, URLs and RBAC filters: one pattern, checked everywhere.

A username becomes a directory, a container, a volume and a URL path segment. Holding every
name to one conservative pattern means none of those needs its own escaping rules and no two
identities can collide after escaping.
"""

from __future__ import annotations

import re

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
"""Lower-case letters, digits, dot, underscore and hyphen; starts with a letter or digit; <= 63."""

GROUP_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._:/@-]{0,127}$"
"""Group names as identity providers send them (Keycloak paths, GitHub org:team), <= 128."""

ROLE_GROUP_PREFIX = "statbox-role-"
"""JupyterHub groups named ``statbox-role-<role>`` are written by Statbox alone.

They let RBAC filters (``!group=statbox-role-trainee``) follow roles, e.g. for the idle culler
of each role. Groups with this prefix coming from an identity provider are dropped.
"""

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
