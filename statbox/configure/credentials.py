"""Secrets a stack needs, resolved explicit -> stored -> generated.

Each secret comes from its environment variable, else the settings (passwords and the OAuth
client secret only), else a file in ``<state>/secrets`` (directory 0700, files 0600), else it
is generated and stored there. Generated passwords are reported once, on the run that created
them. Which secrets are needed follows the kind of sign-in: the class and admin passwords for
the shared password, the client secret the identity provider issued for OIDC and GitHub
(never generated: a missing one is reported before anything is written).
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from statbox.configure.runtime import SECRET_ENV
from statbox.privatefile import create_private_file
from statbox.settings.model import Settings


def _password(length: int) -> str:
    # Unambiguous characters: the class password is read aloud and copied from a projector.
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


GENERATORS = {
    "user_password": lambda: _password(12),
    "admin_password": lambda: _password(32),
    "gateway_token": lambda: secrets.token_hex(32),
    "gateway_encrypt_key": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "db_password": lambda: secrets.token_hex(24),
    "proxy_auth_token": lambda: secrets.token_hex(32),
}
"""Secrets Statbox can make itself. The OAuth client secret is not among them: the identity
provider issues it."""

SECRETS_BY_AUTH = {
    "shared-password": ("user_password", "admin_password"),
    "oidc": ("oauth_client_secret",),
    "github": ("oauth_client_secret",),
}
"""The secrets each kind of sign-in needs, beyond the gateway's, which every stack needs."""

GATEWAY_SECRETS = ("gateway_token", "gateway_encrypt_key")

SECRETS_BY_MODE = {"docker": ("db_password", "proxy_auth_token"), "local": ("proxy_auth_token",)}
"""The secrets a mode needs of its own: docker mode's PostgreSQL password; in both, the token
of the proxy's API (the proxy outlives the hub there: started by the stack, or a container of
its own, before the hub; both are given the same token, kept so that a restarted hub still
speaks to the running proxy)."""

SETTINGS_KEYS = {
    "user_password": "user_password",
    "admin_password": "admin_password",
    "oauth_client_secret": "client_secret",
}
"""Secrets that may also be written in the settings' ``auth:`` section: name -> key."""


@dataclass
class Credentials:
    values: dict[str, str] = field(repr=False)
    generated: list[str]
    """Names of the secrets this run created (to be shown once)."""
    directory: Path

    def environment(self) -> dict[str, str]:
        """The secrets as the environment variables the hub and gateway read."""
        return {SECRET_ENV[name]: value for name, value in self.values.items()}

    def write_files(self, folder: Path) -> Path:
        """The secrets as files in ``folder`` (0700, each file 0600, this account's): what
        ``$STATBOX_SECRETS_DIR`` points the hub and the gateway to."""
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder.chmod(0o700)
        for name, value in self.values.items():
            descriptor = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(value + "\n")
        return folder


PASSWORD_RULES = {"user_password": 8, "admin_password": 32}
"""Minimum lengths JupyterHub's shared-password authenticator enforces."""


def needed_secrets(settings: Settings) -> tuple[str, ...]:
    """Names of the secrets a stack with these settings needs."""
    return (
        *SECRETS_BY_AUTH[settings.auth.type],
        *GATEWAY_SECRETS,
        *SECRETS_BY_MODE.get(settings.mode.value, ()),
    )


def _explicit(settings: Settings, env: Mapping[str, str], name: str) -> str | None:
    """A secret given by environment or settings (which wins: the environment)."""
    key = SETTINGS_KEYS.get(name)
    secret = getattr(settings.auth, key, None) if key else None
    return env.get(SECRET_ENV[name]) or (secret.get_secret_value() if secret else None)


def secret_problems(
    settings: Settings, state_dir: Path, environ: Mapping[str, str] | None = None
) -> list[str]:
    """What is wrong with the secrets, before anything is written: passwords given explicitly
    that are too short or equal, and secrets Statbox cannot generate that nobody gave."""
    env = os.environ if environ is None else environ
    needed = needed_secrets(settings)
    given = {name: _explicit(settings, env, name) for name in needed}
    problems = [
        f"{SECRET_ENV[name]} (or auth.{name}) must have at least {minimum} characters"
        for name, minimum in PASSWORD_RULES.items()
        if name in given and given[name] is not None and len(given[name] or "") < minimum
    ]
    if given.get("user_password") and given["user_password"] == given.get("admin_password"):
        problems.append("the class and admin passwords must differ")
    for name in needed:
        stored = state_dir / "secrets" / name
        if name not in GENERATORS and not given[name] and not stored.exists():
            problems.append(
                f"{SECRET_ENV[name]} is not set (nor auth.{SETTINGS_KEYS[name]}, nor {stored}): "
                f"give the client secret your identity provider issued for auth.client_id"
            )
    return problems


def resolve_credentials(
    settings: Settings, state_dir: Path, environ: Mapping[str, str] | None = None
) -> Credentials:
    """Every secret the stack needs; creates ``<state>/secrets`` and missing files.

    Call :func:`secret_problems` first: a secret that cannot be generated and is missing
    raises KeyError here.
    """
    env = os.environ if environ is None else environ
    directory = state_dir / "secrets"
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    values: dict[str, str] = {}
    generated: list[str] = []
    for name in needed_secrets(settings):
        explicit = _explicit(settings, env, name)
        stored = directory / name
        if explicit:
            values[name] = explicit
        elif stored.exists():
            values[name] = stored.read_text().strip()
        else:
            values[name] = _write_private(stored, GENERATORS[name]())
            generated.append(name)
    return Credentials(values, generated, directory)


def _write_private(path: Path, value: str) -> str:
    """Store a generated secret; returns the one stored (another process's, if first)."""
    return create_private_file(path, (value + "\n").encode()).decode().strip()
