"""Every name that crosses a process or container boundary, defined once.

Environment variables the hub, the gateway, user servers and graded kernels read; the labels
and names of what docker mode creates and kubernetes mode labels; the values that both the
settings model and the light, notebook-side catalog code must agree on. Both sides import
them from here, so they cannot drift apart. The runtime document (``runtime.json``) is
:mod:`statbox.contract.runtime`.

Plain Python on purpose: a notebook imports this through :mod:`statbox.catalog`, so nothing
here may import pydantic or anything heavy.

Every container, network and volume of a docker-mode stack starts with ``docker.project``
and carries :data:`PROJECT_LABEL`, so two stacks share an engine safely and a stack's parts
can be found (and removed) by label alone. Usernames are escaped before they become part of
a name, injectively: distinct usernames never share a container or a home volume.
"""

from __future__ import annotations

import enum
import hashlib
import string
from dataclasses import dataclass
from pathlib import PurePath

# ----------------------------------------------------------------------------- environment

RUNTIME_ENV = "STATBOX_RUNTIME"
"""Path of the runtime document (``<state>/run/runtime.json``) the hub and gateway load."""
SETTINGS_ENV = "STATBOX_SETTINGS"
"""Kubernetes: the chart hands the gateway pods the settings as JSON in this variable."""
CONFIG_ENV = "STATBOX_CONFIG"
"""The settings file a ``statbox`` command reads when ``--config`` is not given."""
SECRET_ENV = {
    "user_password": "STATBOX_USER_PASSWORD",
    "admin_password": "STATBOX_ADMIN_PASSWORD",
    "gateway_token": "STATBOX_GATEWAY_TOKEN",
    "gateway_encrypt_key": "STATBOX_GATEWAY_ENCRYPT_KEY",
    "oauth_client_secret": "STATBOX_OAUTH_CLIENT_SECRET",
    "db_password": "STATBOX_DB_PASSWORD",
    "proxy_auth_token": "STATBOX_PROXY_AUTH_TOKEN",
}
"""Secrets travel by environment (docker, kubernetes) or by file (local: SECRETS_DIR_ENV) to
the hub and gateway, never in the runtime document."""
SECRETS_DIR_ENV = "STATBOX_SECRETS_DIR"
"""A folder only the service's account may read, holding one file per secret, named as the
keys of SECRET_ENV: how local mode hands the hub and the gateway their secrets, so that none
sits in an environment that children (the proxy, services) inherit."""

CATALOG_ENV = "STATBOX_CATALOG"
"""In a user server: the root Intake catalog (``intake.from_yaml_file(os.environ[...])``)."""
DATA_ROOT_ENV = "STATBOX_DATA_ROOT"
"""In a user server or graded kernel: where the catalog's data lives."""
CURRICULUM_ENV = "STATBOX_CURRICULUM"
"""In a user server: the course material copied into ``~/courses`` at start."""
ROLE_ENV = "STATBOX_ROLE"
"""In a user server: the user's Statbox role."""
GROUPS_ENV = "STATBOX_GROUPS"
"""In a user server: the user's groups, comma-separated."""
DATA_LEVELS_ENV = "STATBOX_DATA_LEVELS"
"""In a user server: the access levels the user's role may see, comma-separated."""
DATA_RESTRICTED_ENV = "STATBOX_DATA_RESTRICTED"
"""In a user server: the restricted entries the user's role may see, comma-separated."""

# ----------------------------------------------------------------------------- values

ROLE_NAMES: tuple[str, ...] = ("admin", "instructor", "analyst", "trainee")
"""Every role, in precedence order: a user matching several roles gets the first."""


class AccessLevel(enum.StrEnum):
    """A catalog entry's access level, from the most to the least open (restricted entries
    also name who may see them)."""

    public = "public"
    registered = "registered"
    restricted = "restricted"


ACCESS_LEVELS: tuple[str, ...] = tuple(level.value for level in AccessLevel)
RESTRICTED = "restricted"
"""The level whose entries also name who may see them."""
DATA_URL = r"^(s3|gs|gcs|az|abfs|abfss|https?)://[^\s]+$"
"""An object-storage or web URL a data root may be (else it is a folder)."""


def is_data_url(root: str | PurePath) -> bool:
    """Whether a data root (as the settings, an environment variable or a trait give it) is
    a URL of object storage rather than a folder: the one place that judges it."""
    return not isinstance(root, PurePath) and "://" in root


# ----------------------------------------------------------------------------- kubernetes

KUBE_USER_LABEL = "statbox.org/user"
"""Label on every pod that acts for a user: their notebook pods and their Dask pods."""
KUBE_USER_ANNOTATION = "statbox.org/username"
"""The readable name beside the hashed label, for operators."""
KUBE_PROXY_PEERS = "statbox-proxy-peers"
"""The chart's headless Service selecting zero-to-jupyterhub's proxy pods: the hub believes
``X-Forwarded-For`` only from the addresses this name resolves to (the proxy's pods)."""


def kube_user_label_value(username: str) -> str:
    """The :data:`KUBE_USER_LABEL` value of ``username``: 40 hex digits of its SHA-256."""
    return hashlib.sha256(username.encode()).hexdigest()[:40]


# ----------------------------------------------------------------------------- docker

PROJECT_LABEL = "org.statbox.project"
"""Label on every container, network and volume of a stack: its project prefix."""
USER_LABEL = "org.statbox.user"
"""Label on a user's container and home volume: the JupyterHub username, unescaped."""
HELPER_LABEL = "org.statbox.helper"
"""Label on every helper container: what it was started for (``publish``, ``collect``)."""
GRADING_LABEL = "org.statbox.grading"
"""Label on every grading container: the run that started it."""
BACKUP_LABEL = "org.statbox.role"
"""Label on a backup's helper and temporary database containers (value ``backup-helper``)."""
IMAGE_INTERPRETER = "/opt/statbox/bin/python"
"""The interpreter of every Statbox image (hub, gateway, single-user): Statbox is installed
in its environment."""

_SAFE = frozenset(string.ascii_lowercase + string.digits)


def escape_username(name: str) -> str:
    """``name`` as a Docker-name (and DNS-label) safe string; injective.

    Lower-case letters and digits stay; every other character, ``-`` included, becomes
    ``-XX`` (its hex code), so no two usernames escape to the same string.
    """
    # Imported here: the helper containers import this module, and their image lacks escapism.
    from escapism import escape

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
        """The network the proxy publishes the public port on (and the hub's way out)."""
        return f"{self.project}-public"

    @property
    def db_network(self) -> str:
        """The internal network of the database and the hub, and of nothing else."""
        return f"{self.project}-db"

    @property
    def user_network_prefix(self) -> str:
        return f"{self.project}-net-"

    def user_network(self, username: str) -> str:
        """The internal network of one user's container, joined by the hub and the gateway."""
        return self.user_network_prefix + escape_username(username)

    @property
    def hub(self) -> str:
        return f"{self.project}-hub"

    @property
    def hub_private(self) -> str:
        """The hub's name on the private network only: the proxy sends requests for the hub
        there, so the hub sees them come from the proxy's one private address."""
        return f"{self.project}-hub-private"

    @property
    def proxy(self) -> str:
        """configurable-http-proxy's own container: it outlives a restart of the hub."""
        return f"{self.project}-proxy"

    @property
    def proxy_api(self) -> str:
        """The proxy's name on the private network only, where its API listens: the hub
        reaches it there, users' containers (on their own networks) cannot."""
        return f"{self.project}-proxy-api"

    @property
    def gateway(self) -> str:
        return f"{self.project}-gateway"

    @property
    def gateway_http(self) -> str:
        """The gateway's name on the private network only, where its HTTP side (API and
        dashboards) listens: users' containers reach that through the hub's proxy."""
        return f"{self.project}-gateway-http"

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


# ----------------------------------------------------------------------------- dashboards

DASHBOARDS_GATEWAY_ENV = "STATBOX_DASHBOARDS_GATEWAY"
"""In the dashboards' front (a hub-managed service): Dask Gateway's HTTP proxy it guards,
``http://host:port`` without the prefix."""
DASHBOARDS_LISTEN_ENV = "STATBOX_DASHBOARDS_LISTEN"
"""In the dashboards' front: the ``http://host:port`` it listens on (its hub URL may name a
host it cannot bind, such as a Service's)."""
DASHBOARDS_PORT = 8010
"""The front's port inside the hub's container or pod (local mode picks a free one)."""
LOCAL_DASHBOARD_PORTS = (29000, 29999)
"""Local mode: the ports (first, last) schedulers serve their dashboards on, so that one
firewall rule keeps users' uids away from all of them (:mod:`statbox.dashboards.firewall`)."""

# ----------------------------------------------------------------------------- classroom

CLASSROOM_SERVICE = "classroom"
"""The classroom's name as a JupyterHub service: ``/services/classroom/`` and its scope."""
CLASSROOM_LISTEN_ENV = "STATBOX_CLASSROOM_LISTEN"
"""In the classroom service: the ``http://host:port`` it listens on."""
CLASSROOM_PORT = 8020
"""The classroom service's port inside the hub's container or pod (local mode picks one)."""
# ----------------------------------------------------------------------------- indicators

INDICATORS_SERVICE = "indicators"
"""The indicators' pages and scheduler as a JupyterHub service: ``/services/indicators/``."""
INDICATORS_LISTEN_ENV = "STATBOX_INDICATORS_LISTEN"
"""In the indicators service: the ``http://host:port`` it listens on."""
INDICATORS_PORT = 8030
"""The indicators service's port inside the hub's container or pod (local mode picks one)."""

DOCKER_GRADING_SCRATCH = "grading"
"""Docker mode: under the state folder, the job folders of the classroom's graded kernels
(the service's TMPDIR), mounted into the hub's container at their host path because the
grading containers bind them by path."""
