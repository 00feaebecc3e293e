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

GROUP_PATTERN = r"^/?[A-Za-z0-9][A-Za-z0-9 ._:/@-]{0,127}$"
"""Group names as identity providers send them (Keycloak paths "/a/b", GitHub "org:team"),
at most 129 characters."""

ROLE_GROUP_PREFIX = "statbox-role-"
"""``statbox-role-<role>`` holds the members of a role, so RBAC filters
(``!group=statbox-role-trainee``) follow roles, e.g. for the idle culler of each role."""

TEACHES_GROUP_PREFIX = "statbox-teaches-"
"""``statbox-teaches-<cohort>`` holds the instructors of a cohort; a JupyterHub role assigned to
it grants them the servers of the group below, and nothing else."""

LEARNS_GROUP_PREFIX = "statbox-learns-"
"""``statbox-learns-<cohort>`` holds the *trainees* of a cohort: RBAC filters cannot intersect
groups, so instructors' scopes name this group, never the cohort itself (which may also hold
analysts, other instructors or admins)."""

RESERVED_GROUP_PREFIXES = (ROLE_GROUP_PREFIX, TEACHES_GROUP_PREFIX, LEARNS_GROUP_PREFIX)
"""Groups Statbox alone writes. Groups with these prefixes from an identity provider or the
settings are dropped or refused: nobody can give themselves a role by naming a group."""

GATEWAY_SERVICE = "dask-gateway"
"""Dask Gateway's name as a JupyterHub service: in its URL and in the scope that reaches it."""

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


def learns_group(cohort: str) -> str:
    """The JupyterHub group that holds the trainees of ``cohort``."""
    return LEARNS_GROUP_PREFIX + cohort


def is_reserved_group(name: str) -> bool:
    """True for group names only Statbox may write."""
    return name.startswith(RESERVED_GROUP_PREFIXES)


def role_name_for(prefix: str, name: str) -> str:
    """A valid JupyterHub role name for any group name: a readable slug plus a short hash,
    so distinct names never share a role."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "x"
    return f"{prefix}-{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


LOGGED_CHARACTERS = 40
"""How much of an untrusted name a log line or message quotes."""


def describe(value: object) -> str:
    """``value`` quoted for a log line or message, at most about 60 characters whatever its size:
    names come from browsers and identity providers, and a megabyte of them must not reach a log."""
    quote = repr if isinstance(value, str) else str
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= LOGGED_CHARACTERS:
        return quote(text)
    return f"{quote(text[:LOGGED_CHARACTERS])}... ({len(text)} characters)"
