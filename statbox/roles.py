"""Who is what: a user's role from their name and groups, decided in one place.

The hub (server size, images, data mounts, RBAC), the gateway (cluster limits) and the CLI
(``statbox roles explain``) all call :func:`resolve_role`, so they cannot disagree.

Rule: the first role, in precedence order admin > instructor > analyst > trainee, that names
the user or one of their groups; otherwise the settings' ``default_role``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .names import is_reserved_group, role_group, teaches_group
from .settings import Role, Settings


@dataclass(frozen=True)
class Resolution:
    """A role, and why the user has it."""

    role: str
    reason: str


def resolve_role(settings: Settings, username: str, groups: Iterable[str] = ()) -> Resolution:
    """Return the role of ``username`` with ``groups``, and the reason for it."""
    group_set = {g for g in groups if not is_reserved_group(g)}
    for name, role in settings.roles.items():
        if username in role.users:
            return Resolution(name, f"named in roles.{name}.users")
        matching = sorted(group_set.intersection(role.groups))
        if matching:
            return Resolution(name, f"member of group {matching[0]!r} (roles.{name}.groups)")
    return Resolution(settings.default_role, "no role names the user or their groups: default_role")


def role_settings(
    settings: Settings, username: str, groups: Iterable[str] = ()
) -> tuple[str, Role]:
    """The role name and its settings for a user."""
    name = resolve_role(settings, username, groups).role
    return name, settings.role(name)


def groups_for(settings: Settings, username: str, provider_groups: Iterable[str] = ()) -> list[str]:
    """The JupyterHub groups a user should hold after logging in.

    The identity provider's groups (minus any that pretend to be Statbox's own), the groups
    the settings give the user, the one role group of the user's role, and for an instructor
    a ``statbox-teaches-<cohort>`` group per cohort they belong to.
    """
    groups = {g for g in provider_groups if not is_reserved_group(g)}
    groups.update(name for name, members in settings.groups.items() if username in members)
    role = resolve_role(settings, username, groups).role
    if role == "instructor":
        groups.update(teaches_group(cohort) for cohort in settings.cohorts if cohort in groups)
    groups.add(role_group(role))
    return sorted(groups)


def known_users(settings: Settings) -> set[str]:
    """Every username the settings mention, in roles or in groups."""
    named = {user for _, role in settings.roles.items() for user in role.users}
    return named.union(*settings.groups.values())


def users_with_role(settings: Settings, *roles: str) -> set[str]:
    """Users the settings alone give one of ``roles`` (by name or through settings groups)."""
    return {
        user
        for user in known_users(settings)
        if resolve_role(settings, user, groups_for(settings, user)).role in roles
    }
