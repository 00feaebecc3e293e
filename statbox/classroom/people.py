"""Who acts, their role and their cohorts, decided from the settings and their groups.

A cohort is a group named in ``settings.cohorts``. A user is in cohort K when K is among
their groups: the settings' ``groups`` (shared-password mode) or the identity provider's
(OIDC, GitHub), as :func:`statbox.identity.roles.groups_for` combines them. Within a cohort,
the role decides what they do: a trainee learns in it, an instructor teaches it (the same
rule that gives the hub's ``statbox-learns-K`` and ``statbox-teaches-K`` groups).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from statbox.identity.roles import groups_for, resolve_role
from statbox.settings.model import Settings
from statbox.settings.names import is_valid_username

LEARNER_ROLES = ("trainee", "analyst")
"""Roles that take courses in their cohorts (each course's audience still decides which)."""

OPERATOR = "(operator)"
"""The name of the operator acting on the host: not a username, so nobody signs in as it."""


@dataclass(frozen=True)
class Actor:
    """The user a request or command acts for.

    ``groups``: the groups the identity provider (or the hub, which holds them after sign-in)
    gives the user; settings ``groups`` are added by the classroom itself. Build one per
    request from the authenticated hub user, never from anything the request body claims.
    """

    name: str
    groups: tuple[str, ...] = ()
    is_operator: bool = False
    full_name: str = ""
    """The identity provider's name claim, when it sends one (the hub keeps it in the
    user's ``user_info``): what their certificates print, before ``certify.people``."""

    @classmethod
    def operator(cls) -> Actor:
        """The operator on the host (the CLI run with access to the state directory): may
        act on every cohort, as an admin."""
        return cls(OPERATOR, (), True)

    @classmethod
    def user(cls, name: str, groups: Iterable[str] = (), full_name: str = "") -> Actor:
        return cls(name, tuple(sorted(set(groups))), full_name=full_name)


@dataclass(frozen=True)
class Standing:
    """What the settings make of an actor: role, all their groups, cohorts by role."""

    role: str
    groups: frozenset[str]
    learns: frozenset[str]
    """Cohorts the actor takes courses in (as a trainee, or an analyst in a cohort)."""
    teaches: frozenset[str]
    """Cohorts the actor may manage (every cohort for an admin or the operator)."""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def standing(settings: Settings, actor: Actor) -> Standing:
    """The actor's role and cohorts; see the module docstring."""
    if actor.is_operator:
        every = frozenset(settings.cohorts)
        return Standing("admin", frozenset(), frozenset(), every)
    if not is_valid_username(actor.name):
        return Standing(settings.default_role, frozenset(), frozenset(), frozenset())
    groups = frozenset(groups_for(settings, actor.name, actor.groups))
    role = resolve_role(settings, actor.name, groups).role
    cohorts = frozenset(c for c in settings.cohorts if c in groups)
    if role == "admin":
        return Standing(role, groups, frozenset(), frozenset(settings.cohorts))
    return Standing(
        role,
        groups,
        cohorts if role in LEARNER_ROLES else frozenset(),
        cohorts if role == "instructor" else frozenset(),
    )
