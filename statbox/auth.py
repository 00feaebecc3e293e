"""Authentication: the class password of local mode, and the role groups every mode writes.

Invariant: after any login, the user's JupyterHub groups are exactly the provider's groups,
the groups the settings give them, and one ``statbox-role-<role>`` group; only users whose
role is ``admin`` are JupyterHub admins.
"""

from __future__ import annotations

from collections.abc import Callable
from secrets import compare_digest
from typing import Any

from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from traitlets import Set, Unicode

from .roles import groups_for, resolve_role
from .settings import Settings


class StatboxSharedPasswordAuthenticator(SharedPasswordAuthenticator):
    """A class password for trainees and analysts, a staff password for instructors and admins.

    Upstream gives the admin password to ``admin_users`` only and makes everyone who uses it a
    JupyterHub admin. Statbox's instructors need the stronger password too, but not admin
    rights: ``staff_users`` must use the admin password, and only ``admin_users`` become admins.
    """

    staff_users = Set(
        Unicode(),
        config=True,
        help="Users who must log in with admin_password (instructors and admins).",
    )

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict[str, Any] | None:
        username = self.normalize_username(data.get("username", ""))
        password = data.get("password", "")
        if username in self.staff_users or username in self.admin_users:
            expected = self.admin_password
        else:
            expected = self.user_password
        if not expected or not compare_digest(password.encode(), expected.encode()):
            self.log.warning("Failed login for %.64r", username)
            return None
        return {"name": username, "admin": username in self.admin_users, "groups": []}


def make_post_auth_hook(settings: Settings) -> Callable[[Any, Any, dict[str, Any]], dict[str, Any]]:
    """A ``post_auth_hook`` that sets groups and admin rights from the settings.

    Works for any authenticator with ``manage_groups = True``: provider groups arrive in
    ``auth_model["groups"]`` and leave with the settings' groups and the role group added.
    """

    def statbox_post_auth_hook(
        authenticator: Any, handler: Any, auth_model: dict[str, Any]
    ) -> dict[str, Any]:
        name = auth_model["name"]
        provider_groups = auth_model.get("groups") or []
        groups = groups_for(settings, name, provider_groups)
        auth_model["groups"] = groups
        auth_model["admin"] = resolve_role(settings, name, groups).role == "admin"
        return auth_model

    return statbox_post_auth_hook
