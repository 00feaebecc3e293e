"""Names of everything the docker mode creates, from one project prefix.

Every container, network and volume of a stack starts with ``docker.project`` and carries the
label :data:`PROJECT_LABEL`, so two stacks share an engine safely and a stack's parts can be
found (and removed) by label alone. Usernames are escaped before they become part of a name,
injectively: distinct usernames never share a container or a home volume.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from escapism import escape

PROJECT_LABEL = "org.statbox.project"
"""Label on every container, network and volume of a stack: its project prefix."""
USER_LABEL = "org.statbox.user"
"""Label on a user's container and home volume: the JupyterHub username, unescaped."""

_SAFE = frozenset(string.ascii_lowercase + string.digits)


def escape_username(name: str) -> str:
    """``name`` as a Docker-name (and DNS-label) safe string; injective.

    Lower-case letters and digits stay; every other character, ``-`` included, becomes
    ``-XX`` (its hex code), so no two usernames escape to the same string.
    """
    # escapism writes hex codes in upper case; lowering them keeps the mapping injective
    # (upper-case letters of the input are never safe, so they arrive escaped).
    return str(escape(name, safe=_SAFE, escape_char="-")).lower()


@dataclass(frozen=True)
class DockerNames:
    project: str

    @property
    def network(self) -> str:
        """The private, internal network: hub, database, gateway and user containers."""
        return f"{self.project}-private"

    @property
    def public_network(self) -> str:
        """The network only the hub joins, to publish its port on the host."""
        return f"{self.project}-public"

    @property
    def hub(self) -> str:
        return f"{self.project}-hub"

    @property
    def gateway(self) -> str:
        return f"{self.project}-gateway"

    @property
    def db(self) -> str:
        return f"{self.project}-db"

    @property
    def db_volume(self) -> str:
        return f"{self.project}-db"

    @property
    def gateway_volume(self) -> str:
        return f"{self.project}-gateway"

    @property
    def home_volume_prefix(self) -> str:
        return f"{self.project}-home-"

    @property
    def user_container_prefix(self) -> str:
        return f"{self.project}-user-"

    def home_volume(self, username: str) -> str:
        return self.home_volume_prefix + escape_username(username)

    def user_container(self, username: str) -> str:
        return self.user_container_prefix + escape_username(username)
