"""Who is what: a user's role from their name and groups, decided in one place.

The hub (server size, images, data mounts, RBAC), the gateway (cluster limits) and the CLI
(``statbox roles explain``) all call :func:`resolve_role`, so they cannot disagree.

Rule: the first role, in precedence order admin > instructor > analyst > trainee, that names
the user or one of their groups; otherwise the settings' ``default_role``.

Also here, because a role decides them: the JupyterHub groups a user holds after signing in
(:func:`groups_for`), the allow rule of the identity-provider modes (:func:`sign_in`), and the
JupyterHub RBAC roles (:func:`token_roles`, :func:`cohort_roles`), which ``configure_hub``
loads and ``statbox roles explain`` prints (:func:`explain`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from statbox.contract import CLASSROOM_SERVICE, INDICATORS_SERVICE
from statbox.settings.model import GitHubAuth, OIDCAuth, Role, Settings
from statbox.settings.names import (
    GATEWAY_SERVICE,
    is_reserved_group,
    learns_group,
    role_group,
    role_name_for,
    teaches_group,
)


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


COHORT_GROUPS = {"instructor": teaches_group, "trainee": learns_group}
"""The Statbox group a member of a cohort gets, by role."""


def groups_for(settings: Settings, username: str, provider_groups: Iterable[str] = ()) -> list[str]:
    """The JupyterHub groups a user should hold after logging in.

    The identity provider's groups (minus any that pretend to be Statbox's own), the groups
    the settings give the user, the one role group of the user's role, and per cohort (in
    ``settings.cohorts``) the user belongs to: ``statbox-teaches-<cohort>`` for an instructor,
    ``statbox-learns-<cohort>`` for a trainee. Other roles get no cohort group: an instructor
    manages trainees only.
    """
    groups = {g for g in provider_groups if not is_reserved_group(g)}
    groups.update(name for name, members in settings.groups.items() if username in members)
    role = resolve_role(settings, username, groups).role
    cohort_group = COHORT_GROUPS.get(role)
    if cohort_group is not None:
        groups.update(cohort_group(cohort) for cohort in settings.cohorts if cohort in groups)
    groups.add(role_group(role))
    return sorted(groups)


@dataclass(frozen=True)
class SignIn:
    """Whether someone may sign in through the identity provider, and why."""

    allowed: bool
    reason: str
    blocked: bool = False
    """Refused by a block rule, which wins over every allow rule."""


def sign_in(settings: Settings, username: str, provider_groups: Iterable[str]) -> SignIn:
    """The allow rule of the identity-provider modes: a block always wins over an allow.

    Blocked users and members of blocked groups are refused; anyone else needs one of
    ``auth.allowed_groups``. Being named in a role is no allow rule (unlike JupyterHub's
    ``admin_users``): a name in the settings must not let in whoever the provider calls so.
    With the shared password anyone who knows the class password may enter, except the
    instructors and admins the settings name (by user or settings group): they must use the
    admin password, and the class password does not let them in (the hub's ``staff_users``).
    For GitHub, organisation membership is asked of GitHub at sign-in; here a group
    ``org:team`` or ``org`` in ``provider_groups`` stands for it.
    """
    auth = settings.auth
    groups = set(provider_groups)
    if not isinstance(auth, OIDCAuth | GitHubAuth):
        if username in users_with_role(settings, "instructor", "admin"):
            return SignIn(
                True,
                "with the admin password (auth.admin_password) only: the class password does "
                "not let instructors and admins named in the settings in",
            )
        return SignIn(True, "anyone with the class password (auth.type shared-password)")
    if username in auth.blocked_users:
        return SignIn(False, "named in auth.blocked_users", blocked=True)
    blocked = sorted(groups.intersection(getattr(auth, "blocked_groups", ())))
    if blocked:
        return SignIn(
            False, f"member of blocked group {blocked[0]!r} (auth.blocked_groups)", blocked=True
        )
    if isinstance(auth, OIDCAuth):
        allowed, where = auth.allowed_groups, "auth.allowed_groups"
    else:
        allowed, where = auth.allowed_organizations, "auth.allowed_organizations"
        groups.update(group.split(":", 1)[0] for group in list(groups))
    matching = sorted(groups.intersection(allowed))
    if matching:
        return SignIn(True, f"member of {matching[0]!r} ({where})")
    return SignIn(False, f"member of none of {where}")


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


# ----------------------------------------------------------------------------- JupyterHub RBAC

GATEWAY_ACCESS_SCOPE = f"access:services!service={GATEWAY_SERVICE}"
"""Added to the tokens users and their servers hold: reaching Dask Gateway, no more."""

CLASSROOM_ACCESS_SCOPE = f"access:services!service={CLASSROOM_SERVICE}"
"""Every signed-in person may reach the classroom (statbox.classroom.web), which decides what
they may do there from their cohorts; a notebook's token may not (user code acts in the
classroom only through the person's own browser or a token they made)."""

INDICATORS_ACCESS_SCOPE = f"access:services!service={INDICATORS_SERVICE}"
"""Every signed-in person may reach the indicators' pages (statbox.indicators.web), which
decide what they may see and do there (the library's stages and owners); a notebook's token
may not."""

SERVER_TOKEN_SCOPES = ("users:activity!user", "access:servers!server", GATEWAY_ACCESS_SCOPE)
"""The token a notebook holds: what jupyterhub-singleuser needs (activity, its own OAuth) and
what Dask Gateway needs (the gateway identifies the user and their groups through
``/hub/api/user``, which every token may call), and nothing more."""


def token_roles() -> list[dict[str, Any]]:
    """The built-in ``user`` and ``server`` roles, each plus access to Dask Gateway, and the
    user's to the classroom and the indicators.

    ``user`` (every user, and the tokens they make) is JupyterHub's ``self``: their own server
    and tokens, nothing of anyone else's. ``server`` is the notebook's token.
    """
    return [
        {
            "name": "user",
            "scopes": [
                "self",
                GATEWAY_ACCESS_SCOPE,
                CLASSROOM_ACCESS_SCOPE,
                INDICATORS_ACCESS_SCOPE,
            ],
        },
        {"name": "server", "scopes": list(SERVER_TOKEN_SCOPES)},
    ]


COHORT_SCOPES = ("list:users", "read:users", "read:servers", "servers", "access:servers")
"""What an instructor may do with the servers of their cohort's trainees: list, read, start
and stop, open. Each is filtered to the cohort's ``statbox-learns-<cohort>`` group."""

INSTRUCTOR_UI_SCOPES = ("admin-ui",)
"""The admin page, which shows an instructor only the users their scopes reach."""


def cohort_roles(settings: Settings) -> list[dict[str, Any]]:
    """One JupyterHub role per cohort, held by the group of its instructors."""
    return [
        {
            "name": role_name_for("statbox-cohort", cohort),
            "description": f"Instructors of {cohort}: list, start, stop and open its trainees' "
            "servers; nothing else",
            "scopes": [
                *(f"{scope}!group={learns_group(cohort)}" for scope in COHORT_SCOPES),
                *INSTRUCTOR_UI_SCOPES,
            ],
            "groups": [teaches_group(cohort)],
        }
        for cohort in settings.cohorts
    ]


def hub_permissions(role: str, groups: Iterable[str], settings: Settings) -> list[str]:
    """What the hub lets a user with ``role`` and ``groups`` do, one line per grant."""
    if role == "admin":
        return ["JupyterHub admin: every user, server, group, service and token"]
    lines = ["own server and tokens only (JupyterHub role user: self)"]
    held = set(groups)
    for spec in cohort_roles(settings):
        if held.intersection(spec["groups"]):
            lines.append(
                f"{spec['description']} (role {spec['name']}: {', '.join(spec['scopes'])})"
            )
    return lines


def explain(
    settings: Settings, username: str, provider_groups: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """Everything a user gets and why, as (label, text) lines for ``statbox roles explain``."""
    given = list(provider_groups)
    groups = groups_for(settings, username, given)
    resolution = resolve_role(settings, username, groups)
    role = settings.role(resolution.role)
    limits = role.dask
    entry = sign_in(settings, username, given)
    gib = 1024**3
    lines = [
        ("user", username),
        ("groups", ", ".join(groups)),
        ("role", f"{resolution.role} ({resolution.reason})"),
        ("sign-in", f"{'allowed' if entry.allowed else 'refused'} ({entry.reason})"),
        *(("hub", line) for line in hub_permissions(resolution.role, groups, settings)),
        ("notebook token", ", ".join(SERVER_TOKEN_SCOPES)),
        (
            "server",
            f"{role.server.cpu:g} CPU, {role.server.memory / gib:g} GiB; "
            f"idle stop after {role.idle_timeout} s",
        ),
        ("images", ", ".join(role.images)),
        (
            "dask",
            f"up to {limits.max_workers} workers of <= {limits.max_worker_cores:g} cores and "
            f"<= {limits.max_worker_memory / gib:g} GiB; idle stop after {limits.idle_timeout} s",
        ),
        (
            "data",
            f"levels {', '.join(level.value for level in role.data.levels)}; "
            f"restricted: {', '.join(role.data.restricted) or 'none'}",
        ),
    ]
    return lines
