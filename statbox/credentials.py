"""Secrets a stack needs, resolved explicit -> stored -> generated.

Each secret comes from its environment variable, else the settings (passwords only), else a
file in ``<state>/secrets`` (directory 0700, files 0600), else it is generated and stored
there. Generated passwords are reported once, on the run that created them.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .runtime import SECRET_ENV
from .settings import Settings


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
}


@dataclass
class Credentials:
    values: dict[str, str] = field(repr=False)
    generated: list[str]
    """Names of the secrets this run created (to be shown once)."""
    directory: Path

    def environment(self) -> dict[str, str]:
        """The secrets as the environment variables the hub and gateway read."""
        return {SECRET_ENV[name]: value for name, value in self.values.items()}


PASSWORD_RULES = {"user_password": 8, "admin_password": 32}
"""Minimum lengths JupyterHub's shared-password authenticator enforces."""


def _explicit(settings: Settings, env: Mapping[str, str], name: str) -> str | None:
    """A secret given by environment or settings (which wins: the environment)."""
    secret = getattr(settings.auth, name, None) if name in PASSWORD_RULES else None
    return env.get(SECRET_ENV[name]) or (secret.get_secret_value() if secret else None)


def password_problems(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """What is wrong with the passwords given explicitly, before anything is written."""
    env = os.environ if environ is None else environ
    given = {name: _explicit(settings, env, name) for name in PASSWORD_RULES}
    problems = [
        f"{SECRET_ENV[name]} (or auth.{name}) must have at least {minimum} characters"
        for name, minimum in PASSWORD_RULES.items()
        if given[name] is not None and len(given[name] or "") < minimum
    ]
    if given["user_password"] and given["user_password"] == given["admin_password"]:
        problems.append("the class and admin passwords must differ")
    return problems


def resolve_credentials(
    settings: Settings, state_dir: Path, environ: Mapping[str, str] | None = None
) -> Credentials:
    """Every secret of the stack; creates ``<state>/secrets`` and missing files."""
    env = os.environ if environ is None else environ
    directory = state_dir / "secrets"
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    values: dict[str, str] = {}
    generated: list[str] = []
    for name, generate in GENERATORS.items():
        explicit = _explicit(settings, env, name)
        stored = directory / name
        if explicit:
            values[name] = explicit
        elif stored.exists():
            values[name] = stored.read_text().strip()
        else:
            values[name] = generate()
            _write_private(stored, values[name])
            generated.append(name)
    return Credentials(values, generated, directory)


def _write_private(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
