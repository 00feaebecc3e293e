"""The one typed model of ``statbox.yaml``; everything else is generated from it.

Invariant: a :class:`Settings` object is always complete and valid. Loading merges the file
over the built-in defaults (``statbox/resources/statbox.yaml``) and validates the result; any
problem raises :class:`SettingsError` carrying one message per problem, each naming the file,
the line, the key path, the value and what is allowed. Nothing is half-loaded.

The JSON schema printed by ``statbox config schema`` (and used by the Helm chart) is this
model's schema.
"""

from __future__ import annotations

import copy
import enum
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from statbox.contract import DATA_URL, ROLE_NAMES, AccessLevel
from statbox.i18n import LANGUAGES
from statbox.resources import CATALOGS, CURRICULUM, DEFAULT_SETTINGS, INDICATORS, resource
from statbox.settings.names import (
    GROUP_PATTERN,
    RESERVED_GROUP_PREFIXES,
    USERNAME_PATTERN,
    is_reserved_group,
)
from statbox.settings.units import Duration, Memory, memory_at_least
from statbox.settings.yamlfile import (
    FileProblems,
    Lines,
    Problem,
    line_of,
    read_yaml_mapping,
    validation_problem,
)

__all__ = ["Problem", "Settings", "SettingsError", "load_settings", "parse_settings"]

DEFAULTS_FILE = resource(DEFAULT_SETTINGS)


RoleName = Literal["trainee", "instructor", "analyst", "admin"]
URL_PATTERN = r"^https?://[^\s/]+(/\S*)?$"
USERNAME_MEANING = "a username (lower-case letters, digits, . _ -)"


def _usernames(users: list[str]) -> list[str]:
    _check_all(users, USERNAME_PATTERN, USERNAME_MEANING)
    return users


def _group_names(groups: list[str]) -> list[str]:
    _check_all(groups, GROUP_PATTERN, "a group name")
    _refuse_reserved(groups)
    return groups


Usernames = Annotated[list[str], AfterValidator(_usernames)]


def _language(value: str) -> str:
    if value not in LANGUAGES:
        raise ValueError(
            f"{value!r} is not a language Statbox speaks: one of {', '.join(LANGUAGES)}"
        )
    return value


Language = Annotated[
    str,
    AfterValidator(_language),
    WithJsonSchema({"type": "string", "enum": list(LANGUAGES)}),
]
"""One of :data:`statbox.i18n.LANGUAGES` (the schema lists them)."""
"""Usernames, each held to the one safe pattern."""
GroupNames = Annotated[list[str], AfterValidator(_group_names)]
"""Group names, none of them one Statbox reserves for itself."""
Username = Field(pattern=USERNAME_PATTERN)


class Mode(enum.StrEnum):
    """Where per-user servers run."""

    local = "local"
    docker = "docker"
    kubernetes = "kubernetes"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class HubSettings(_Model):
    name: str = Field("Statbox", min_length=1, max_length=80)
    """Name shown on the login page and in the README of a bundle."""
    region: str = Field("", max_length=80)
    """The regional hub this deployment serves, e.g. "Rwanda regional hub"."""
    language: Language = "en"
    """The hub's language (en, pt-BR, zh-CN, ar, fr): its pages, JupyterLab and certificates
    (beside English) speak it. A person's saved choice (the language form of the classroom's
    pages), else their browser's preference, overrides it for them."""
    ip: str = "127.0.0.1"
    """Address the public proxy listens on (local mode). 0.0.0.0 shares the hub on a network."""
    port: int = Field(8000, ge=0, le=65535)
    """Port the public proxy listens on (local mode); 0 picks a free port at start."""
    public_url: str | None = Field(None, pattern=r"^https?://[^\s/]+/?$")
    """The address users type, e.g. https://statbox.example.org (needed for sign-in with an
    identity provider: its callback is <public_url>/hub/oauth_callback). Default: from ip
    and port."""


class SharedPasswordAuth(_Model):
    type: Literal["shared-password"] = "shared-password"
    user_password: SecretStr | None = None
    """Class password for trainees and analysts (>= 8 characters). Generated on first start
    when unset and stored with mode 0600 in the state directory; STATBOX_USER_PASSWORD
    overrides it."""
    admin_password: SecretStr | None = None
    """Password for the instructors and admins named in roles (>= 32 characters, different
    from the class password). Generated like the class password; STATBOX_ADMIN_PASSWORD
    overrides it."""

    @field_validator("user_password", "admin_password")
    @classmethod
    def _long_enough(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        minimum = {"user_password": 8, "admin_password": 32}[str(info.field_name)]
        if value is not None and len(value.get_secret_value()) < minimum:
            raise ValueError(f"must have at least {minimum} characters")
        return value

    @model_validator(mode="after")
    def _passwords_differ(self) -> SharedPasswordAuth:
        if (
            self.user_password is not None
            and self.admin_password is not None
            and self.user_password.get_secret_value() == self.admin_password.get_secret_value()
        ):
            raise ValueError("user_password and admin_password must differ")
        return self


class OIDCAuth(_Model):
    """Sign-in with any OpenID Connect provider (Keycloak, Azure AD, Google, ...)."""

    type: Literal["oidc"]
    issuer: str = Field(pattern=URL_PATTERN)
    """The provider's issuer URL; its endpoints are discovered from
    <issuer>/.well-known/openid-configuration unless given below."""
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    """Better given as STATBOX_OAUTH_CLIENT_SECRET than written here."""
    authorize_url: str | None = Field(None, pattern=URL_PATTERN)
    """The provider's authorization endpoint; discovered when unset."""
    token_url: str | None = Field(None, pattern=URL_PATTERN)
    """The provider's token endpoint; discovered when unset."""
    userdata_url: str | None = Field(None, pattern=URL_PATTERN)
    """The provider's userinfo endpoint; discovered when unset."""
    userdata_from_id_token: bool = False
    """Read the username, identity and groups claims from the ID token the token endpoint
    returns, not from the userinfo endpoint: for providers whose userinfo carries no groups
    (Microsoft Entra ID). The token comes straight from the provider over its TLS channel."""
    username_claim: str = Field("preferred_username", min_length=1)
    """Claim that names the user; it must hold a safe username (lower-case letters, digits,
    . _ -, at most 63; upper case is lowered), or the sign-in is refused. "email" is accepted
    only with email_verified true."""
    identity_claim: str = Field("sub", min_length=1)
    """Stable claim that identifies the person. A username is bound to it at its first sign-in,
    so no second identity can ever take the name (or its files)."""
    groups_claim: str = Field("groups", min_length=1)
    """Claim holding the user's groups, dotted for nested claims (realm_access.roles): a list
    of strings, or the sign-in is refused."""
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email", "groups"])
    """Scopes asked for: enough for the username, identity and groups claims."""
    allowed_groups: GroupNames = Field(min_length=1)
    """Only members of one of these groups may sign in: the explicit allow rule."""
    blocked_users: Usernames = Field(default_factory=list)
    """Never let these users in, whatever their groups (a block wins over an allow)."""
    blocked_groups: GroupNames = Field(default_factory=list)
    """Never let members of these groups in, whatever their other groups."""
    login_service: str = Field("your organisation", min_length=1, max_length=80)
    """Shown on the login button: "Sign in with ..."."""


class GitHubAuth(_Model):
    """Sign-in with GitHub: organisations and teams decide who may enter."""

    type: Literal["github"]
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    """Better given as STATBOX_OAUTH_CLIENT_SECRET than written here."""
    allowed_organizations: list[str] = Field(min_length=1)
    """Organisations ("org") or teams ("org:team") whose members may sign in. A user's teams
    become groups named "org:team" (and "org"), for roles and cohorts."""
    blocked_users: Usernames = Field(default_factory=list)
    """Never let these GitHub logins in (lower case), whatever their organisations."""


Authentication = Annotated[SharedPasswordAuth | OIDCAuth | GitHubAuth, Field(discriminator="type")]


class ImageChoice(_Model):
    image: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9._/:@-]*$")
    """Container image reference (docker and kubernetes modes)."""
    description: str = ""
    """Shown to users choosing a server."""
    groups: list[str] = Field(default_factory=list)
    """When set, only members of one of these groups may choose this image, even in a role
    that lists it (kubernetes mode); empty: everyone whose role lists it."""

    @field_validator("groups")
    @classmethod
    def _groups(cls, groups: list[str]) -> list[str]:
        _check_all(groups, GROUP_PATTERN, "a group name")
        return groups


class ServerResources(_Model):
    cpu: float = Field(gt=0, le=256)
    """CPU cores a user server may use (a limit in the docker and kubernetes modes)."""
    memory: Annotated[Memory, memory_at_least(256 * 1024**2)]
    """Memory a user server may use, e.g. 2G (>= 256M)."""


class DaskLimits(_Model):
    max_workers: int = Field(ge=0, le=1000)
    """Most workers one cluster may have; larger scale requests are capped to this."""
    max_worker_cores: float = Field(gt=0, le=64)
    """Most cores a user may ask for per worker."""
    max_worker_memory: Annotated[Memory, memory_at_least(256 * 1024**2)]
    """Most memory a user may ask for per worker."""
    idle_timeout: Duration = Field(ge=60)
    """A cluster with no activity for this long is shut down (>= 60 s)."""


class DataAccess(_Model):
    levels: list[Literal[AccessLevel.public, AccessLevel.registered]]
    """Access levels of catalog entries this role sees and gets mounted."""
    restricted: list[str]
    """Restricted catalog entries this role is entitled to, by name; "*" means all. Entries
    may also name the roles and groups allowed in the catalog itself."""


class Role(_Model):
    users: Usernames = Field(default_factory=list)
    """Usernames given this role."""
    groups: GroupNames = Field(default_factory=list)
    """Identity-provider or Statbox groups whose members get this role."""
    server: ServerResources
    images: list[str] = Field(min_length=1)
    """Names from the top-level images table this role may choose; the first is the default."""
    idle_timeout: Duration = Field(ge=30)
    """A user server with no activity for this long is stopped (>= 30 s)."""
    dask: DaskLimits
    data: DataAccess


class Roles(_Model):
    trainee: Role
    instructor: Role
    analyst: Role
    admin: Role

    def items(self) -> Iterator[tuple[str, Role]]:
        """Roles in precedence order."""
        for name in ROLE_NAMES:
            yield name, getattr(self, name)


DataURL = Annotated[str, Field(pattern=DATA_URL)]
"""An object-storage or web URL under which catalog entries address their files."""


class Paths(_Model):
    catalog: Path
    """The root Intake catalog users open through STATBOX_CATALOG."""
    curriculum: Path
    """Folder of courses; each user finds them in their home under courses/."""
    indicators: Path = Path("indicators")
    """Folder of fast indicators, one folder each (indicator.yaml and its notebook)."""
    data_root: DataURL | Path = Field(union_mode="left_to_right")
    """Where the catalog's data lives: a directory (sample data from `statbox catalog samples`)
    or, in production, an object-storage URL (s3://, gs://, az://, abfs://, https://)."""
    state_dir: Path
    """Hub database, secrets, gateway state, logs and (local mode) user homes."""

    @field_validator("data_root", mode="before")
    @classmethod
    def _known_scheme(cls, value: Any) -> Any:
        if isinstance(value, str) and "://" in value and not re.match(DATA_URL, value):
            raise ValueError("not a directory or an s3, gs, az, abfs or https URL")
        return value


class RestartSettings(_Model):
    """How `statbox up` (local mode) restarts a part of the stack (hub, proxy, gateway) that
    dies: at once, then after a back-off doubling from 0.5 s to 8 s; a part that dies more
    often than this is broken, and `statbox up` stops everything, naming it."""

    limit: int = Field(5, ge=0, le=1000)
    """Deaths of one part within window_seconds that are restarted; one more and Statbox
    stops (0: never restart)."""
    window_seconds: int = Field(300, ge=1, le=86_400)
    """Seconds over which a part's deaths are counted."""


class LocalSettings(_Model):
    run_as: str = Field("nobody", pattern=r"^[a-z_][a-z0-9_-]*$")
    """Unprivileged account the proxy runs as when Statbox is started as root (local mode);
    user servers and Dask clusters run under a uid of each user's own. Ignored when started
    as a normal user."""
    restarts: RestartSettings = Field(default_factory=RestartSettings)  # type: ignore[arg-type]
    """How `statbox up` restarts a part (hub, proxy, gateway) that dies: after a back-off
    doubling from 0.5 s to 8 s, until the part dies more than `limit` times within
    `window_seconds`; then Statbox stops everything with a line naming the part."""


DATASET_DIR_PATTERN = r"^[a-z0-9][a-z0-9_-]*/[a-z0-9][a-z0-9_-]*$"
"""A dataset directory relative to the data root: <domain>/<dataset>, no other segments."""


class KubernetesSettings(_Model):
    """What kubernetes mode needs beyond the roles; the Helm chart's defaults fit its services."""

    gateway_url: str = Field("http://traefik-dask-gateway", pattern=r"^https?://[^\s/]+$")
    """Where the hub and user pods reach Dask Gateway's proxy (no path): the chart's
    traefik-dask-gateway Service."""
    gateway_proxy_address: str = Field(
        "gateway://traefik-dask-gateway:8786", pattern=r"^gateway://[^\s/]+:\d+$"
    )
    """Address of the same proxy for the schedulers' TLS traffic (DASK_GATEWAY__PROXY_ADDRESS):
    its own entrypoint, so that user pods may reach it without reaching the HTTP side."""
    data_claim: str = Field("", pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$")
    """PersistentVolumeClaim holding the shared data; each dataset a user is entitled to is
    mounted read-only from it under paths.data_root. Empty: no data is mounted."""
    request_fraction: float = Field(0.5, gt=0, le=1)
    """Share of the role's CPU and memory a user pod requests from the scheduler; it may use
    up to the role's full size."""


class DockerSettings(_Model):
    project: str = Field("statbox", pattern=r"^[a-z][a-z0-9-]{0,29}$")
    """Prefix of every container, network and volume of the stack (docker mode); two stacks
    on one engine need different ones."""
    pids_limit: int = Field(1024, ge=64, le=1_000_000)
    """Most processes and threads one user container may run."""
    publish: bool = True
    """Publish the hub on hub.ip:hub.port of this host through a second, non-internal
    network. Off, the hub is reachable only on the private network (as in the tests)."""
    subnet: str | None = Field(None, pattern=r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$")
    """Subnet of the private network, e.g. 172.30.0.0/24 (default: the engine chooses)."""
    user_subnets: str | None = Field(None, pattern=r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$")
    """Addresses for the users' networks, e.g. 10.213.0.0/16: each user's container has an
    internal network of its own (a /28 of this range) that only the hub and the gateway join.
    Default: the engine's address pools, which hold about 30 networks unless dockerd's
    default-address-pools is set; set this for a larger class."""
    hub_image: str = Field("statbox/hub:latest", pattern=r"^[a-z0-9][a-z0-9._/:@-]*$")
    """Image of the hub container (`statbox images build` makes it)."""
    gateway_image: str = Field("statbox/gateway:latest", pattern=r"^[a-z0-9][a-z0-9._/:@-]*$")
    """Image of the Dask Gateway container."""
    postgres_image: str = Field("statbox/postgres:latest", pattern=r"^[a-z0-9][a-z0-9._/:@-]*$")
    """Image of the hub's PostgreSQL database container."""


class TrustedIssuer(_Model):
    """Another hub whose certificates this hub accepts, from its published documents."""

    name: str = Field(min_length=1, max_length=120)
    """How verdicts name this issuer, e.g. "Statbox Kigali"."""
    keys_file: Path | None = None
    """Its public keys, the JSON Web Key Set it publishes (`statbox certify keys --out DIR`
    writes keys.json; the classroom service serves it). Relative to this file's directory."""
    jwks: dict[str, Any] | None = None
    """Its public keys inline, as a JSON Web Key Set ({keys: [...]}); instead of keys_file."""
    revocations_file: Path | None = None
    """Its revocation list (revocations.json, signed by it); null: none of its certificates
    is taken as revoked. Relative to this file's directory."""

    @model_validator(mode="after")
    def _one_key_source(self) -> TrustedIssuer:
        if (self.keys_file is None) == (self.jwks is None):
            raise ValueError("give exactly one of keys_file and jwks")
        return self


class CertifySettings(_Model):
    """How certification exercises are graded (``statbox certify``)."""

    database: str | None = None
    """SQLAlchemy URL of the results store, e.g. postgresql+psycopg://user@host/statbox in
    production; default (null): sqlite in <state_dir>/certify/results.sqlite. A relative
    sqlite file resolves against this file's directory. `statbox backup create` saves a
    sqlite store wherever it is, not a PostgreSQL one (use pg_dump)."""
    isolation: Literal["auto", "sandbox", "rlimits", "docker"] = "auto"
    """How graded kernels are isolated: sandbox (bubblewrap allow-list: only the
    interpreter, the inputs and the declared, entitled datasets; no network; as root a uid
    per worker and a cgroup), rlimits (resource limits only), docker (docker mode), auto
    (sandbox where bubblewrap runs, else rlimits)."""
    uid_base: int = Field(200000, ge=1000, le=2**31 - 2**16)
    """Graded kernels run as uid uid_base + worker slot (sandbox); no account is needed, but
    nothing else on the machine may use these uids."""
    memory: Annotated[Memory, memory_at_least(256 * 1024**2)] = 2 * 1024**3
    """Address space each graded kernel process may use."""
    processes: int = Field(64, ge=16, le=4096)
    """Processes and threads a graded kernel may run."""
    output: Annotated[Memory, memory_at_least(16 * 1024)] = 1024**2
    """Cell output kept per graded notebook; the rest is dropped."""
    workdir: Annotated[Memory, memory_at_least(16 * 1024**2)] = 256 * 1024**2
    """Size of a graded kernel's working directory and of its /tmp."""
    people: dict[str, str] = Field(default_factory=dict)
    """Full names certificates print, by username (e.g. {amina: "أمينة الحسن"}), for people
    whose identity provider sends no name claim; others are named by their username."""
    trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)
    """Other hubs whose certificates verify here, offline, each {name, keys_file or jwks,
    revocations_file}: its name in verdicts, its published key set (keys.json) as a file or
    inline, and its signed revocation list (revocations.json); files relative to this file's
    directory. `statbox certify keys --out DIR` writes a hub's two files."""

    @field_validator("people")
    @classmethod
    def _people(cls, people: dict[str, str]) -> dict[str, str]:
        _usernames(list(people))
        for username, name in people.items():
            if not name.strip() or len(name) > 120:
                raise ValueError(f"{username}: a full name of 1 to 120 characters")
        return people


class IndicatorSettings(_Model):
    """How fast indicators run and publish (``statbox indicator``, the indicator pages)."""

    public: bool = True
    """Whether production indicators are shown to visitors who have not signed in."""
    promoters: GroupNames = Field(default_factory=list)
    """Groups whose members may promote an indicator (poc, pilot, production), besides admins."""
    retries: int = Field(2, ge=0, le=10)
    """Times a failed run is tried again before it is reported failed."""
    retry_delay_seconds: float = Field(5, ge=0, le=3600)
    """Seconds between a failed attempt and the next one."""
    workers: int = Field(2, ge=1, le=64)
    """Periods a backfill runs at once (one sandboxed kernel each) unless told otherwise."""


class Settings(_Model):
    """Statbox settings (statbox.yaml)."""

    hub: HubSettings
    mode: Mode
    auth: Authentication
    default_role: RoleName
    """Role of a user no role names, by user or group."""
    groups: dict[str, list[str]]
    """Group memberships for authenticators that carry no groups (the shared password):
    group name -> usernames. Identity providers send groups themselves."""
    cohorts: GroupNames
    """Groups that are cohorts: an instructor who is a member of one may list, start, stop
    and open the servers of its members, and nothing beyond."""
    images: dict[str, ImageChoice]
    """Images users may run, by name; roles list the names they may choose."""
    roles: Roles
    paths: Paths
    local: LocalSettings
    kubernetes: KubernetesSettings
    docker: DockerSettings
    certify: CertifySettings = Field(default_factory=CertifySettings)  # type: ignore[arg-type]
    indicators: IndicatorSettings = Field(default_factory=IndicatorSettings)  # type: ignore[arg-type]

    @field_validator("groups")
    @classmethod
    def _group_members(cls, groups: dict[str, list[str]]) -> dict[str, list[str]]:
        _group_names(list(groups))
        for members in groups.values():
            _usernames(members)
        return groups

    def role(self, name: str) -> Role:
        """The settings of role ``name``."""
        return getattr(self.roles, name)

    def resolved_paths(self, base: Path) -> Paths:
        """Paths with relative ones made absolute against ``base``."""
        return Paths(
            **{
                key: (value if value.is_absolute() else (base / value)).resolve()
                if isinstance(value, Path)
                else value  # a URL stays as written
                for key, value in self.paths
            }
        )


def cross_reference_problems(settings: Settings) -> list[tuple[tuple, str]]:
    """Problems between keys (each valid alone): (key path, message) pairs."""
    problems: list[tuple[tuple, str]] = []
    for role_name, role in settings.roles.items():
        for index, image in enumerate(role.images):
            if image not in settings.images:
                known = ", ".join(sorted(settings.images)) or "none"
                problems.append(
                    (
                        ("roles", role_name, "images", index),
                        f"{image!r} is not in images (known: {known})",
                    )
                )
    named_in: dict[str, str] = {}
    for role_name, role in settings.roles.items():
        for index, user in enumerate(role.users):
            if user in named_in:
                problems.append(
                    (
                        ("roles", role_name, "users", index),
                        f"{user!r} is already named in roles.{named_in[user]}.users; "
                        "name a user in one role only",
                    )
                )
            named_in.setdefault(user, role_name)
    # On Kubernetes the hub cannot guess the address users type (ip and port are the
    # cluster's), and the identity provider needs it for the callback.
    oauth = settings.auth.type != "shared-password"
    if settings.mode == Mode.kubernetes and oauth and not settings.hub.public_url:
        problems.append(
            (
                ("hub", "public_url"),
                f"required in kubernetes mode with auth.type {settings.auth.type!r}: "
                "the identity provider sends users back to <public_url>/hub/oauth_callback; "
                "set it to the address users type, e.g. https://statbox.example.org",
            )
        )
    return problems


def _check_all(values: list[str], pattern: str, what: str) -> None:
    import re

    bad = [v for v in values if not re.fullmatch(pattern, v)]
    if bad:
        raise ValueError(f"{', '.join(repr(b) for b in bad)}: not {what}")


def _refuse_reserved(groups: list[str]) -> None:
    reserved = [g for g in groups if is_reserved_group(g)]
    if reserved:
        raise ValueError(
            f"{', '.join(map(repr, reserved))}: names starting "
            f"{' or '.join(map(repr, RESERVED_GROUP_PREFIXES))} are "
            "reserved for Statbox's own role groups"
        )


# --------------------------------------------------------------------------------------------
# Loading


class SettingsError(FileProblems):
    """Settings that cannot be used; ``problems`` lists each one."""


@dataclass(frozen=True)
class LoadedSettings:
    """Settings with the place they came from, which relative paths are resolved against."""

    settings: Settings
    source: Path | None
    paths: Paths


def builtin_defaults() -> dict[str, Any]:
    """The built-in settings as plain data."""
    return yaml.safe_load(DEFAULTS_FILE.read_text())


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: mappings merge key by key, everything else replaces.

    A mapping whose ``type`` differs from the base's (``auth: {type: oidc}`` over the
    shared-password default) replaces it whole: keys of another type mean nothing to it.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        old = merged.get(key)
        if (
            isinstance(value, Mapping)
            and isinstance(old, Mapping)
            and value.get("type", old.get("type")) == old.get("type")
        ):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_settings(
    data: Mapping[str, Any], source: str = "<settings>", lines: Lines | None = None
) -> Settings:
    """Validate ``data`` merged over the defaults; raise :class:`SettingsError` on any problem."""
    merged = deep_merge(builtin_defaults(), data)
    lines = lines or {}
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise SettingsError([_problem(err, source, lines) for err in exc.errors()]) from None
    problems = cross_reference_problems(settings)
    if problems:
        raise SettingsError(
            [
                Problem(source, line_of(loc, lines), ".".join(map(str, loc)), message)
                for loc, message in problems
            ]
        )
    return settings


def load_settings(
    path: Path | str | None = None, overrides: Mapping[str, Any] = {}
) -> LoadedSettings:
    """Load ``path`` (or only the defaults when None), apply ``overrides``, and validate.

    Relative paths in the settings resolve against the file's directory, or the current
    directory when there is no file. A catalog, curriculum or indicators folder left at its
    default that is not there is the one Statbox ships.
    """
    if path is None:
        data: dict[str, Any] = {}
        lines: Lines = {}
        source = "<built-in defaults>"
        base = Path.cwd()
    else:
        file = Path(path)
        source = str(file)
        data, lines = _read_yaml(file)
        base = file.resolve().parent
    given = deep_merge(data, overrides)
    settings = parse_settings(given, source, lines)
    paths = settings.resolved_paths(base)
    # Left at their defaults, the catalog, curriculum and indicators are the folders of that name
    # here when there are any (a checkout, an unpacked bundle), else the ones Statbox ships.
    unset = SHIPPED.keys() - set(given.get("paths") or {})
    shipped = {
        key: resource(SHIPPED[key]).resolve() for key in unset if not getattr(paths, key).exists()
    }
    if shipped:
        paths = paths.model_copy(update=shipped)
    return LoadedSettings(settings, None if path is None else Path(path), paths)


SHIPPED = {
    "catalog": f"{CATALOGS}/statbox.yaml",
    "curriculum": CURRICULUM,
    "indicators": INDICATORS,
}
"""Paths whose default falls back to what the package carries (statbox.resources)."""


def _read_yaml(file: Path) -> tuple[dict[str, Any], Lines]:
    try:
        return read_yaml_mapping(file, "a mapping of settings", allow_empty=True)
    except FileProblems as found:
        raise SettingsError(found.problems) from None


PATTERN_MEANINGS = {
    URL_PATTERN: "must be an http(s) URL",
    HubSettings.model_fields["public_url"].metadata[0].pattern: (
        "must be an http(s) URL with no path, e.g. https://statbox.example.org"
    ),
}
"""What a pattern means, for messages: operators should not have to read regular expressions."""

UNION_TAGS: dict[tuple[str | int, ...], set[str]] = {
    ("auth",): {"shared-password", "oidc", "github"}
}
"""Discriminated unions: pydantic puts the chosen tag in error locations; files do not."""


def _problem(err: Any, source: str, lines: Lines) -> Problem:
    return validation_problem(err, source, lines, settings_schema(), UNION_TAGS, PATTERN_MEANINGS)


def settings_schema() -> dict[str, Any]:
    """The JSON schema of ``statbox.yaml`` (every key optional: the defaults fill the rest)."""
    schema = Settings.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Statbox settings"
    # A file only needs what it changes: requiredness is enforced after merging the defaults.
    _drop_required(schema)
    return schema


def _drop_required(node: Any) -> None:
    if isinstance(node, dict):
        node.pop("required", None)
        for value in node.values():
            _drop_required(value)
    elif isinstance(node, list):
        for value in node:
            _drop_required(value)


def settings_to_yaml(settings: Settings) -> str:
    """Settings as YAML, secrets masked (for ``statbox config show``)."""
    data = json.loads(settings.model_dump_json())
    return yaml.safe_dump(data, sort_keys=False)
