"""A uid of their own for every user, stable across restarts: never one shared account.

Local mode gives each username a uid from ``first_uid`` on, with no account in
``/etc/passwd`` (a uid needs none to own files and run processes), remembered in a JSON file
only root may read or write. The hub (user servers) and the gateway (their Dask clusters)
read the same file, so a user's server and clusters run under the same uid and the files
they write are theirs.

Invariant: two usernames never share a uid, a username's uid never changes once given, and
no uid given is one an existing account already uses.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
from pathlib import Path

FIRST_UID = 300_000
"""Above the accounts of any distribution, the subordinate ranges container engines take
(100000-165535 by default) and the grading uids (200000 on, statbox.certify.isolation)."""


def registry_path(state_dir: Path) -> Path:
    """Where a local stack keeps its users' uids: one file, read by the hub (servers) and
    the gateway (Dask clusters), so a user's server and clusters share a uid."""
    return state_dir / "accounts.json"


class UidRegistry:
    """Username -> uid, persisted in ``path`` (mode 0600), safe across processes (flock)."""

    def __init__(self, path: Path, first_uid: int = FIRST_UID):
        self.path = path
        self.first_uid = first_uid

    def _read(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return {str(k): int(v) for k, v in data.items()}

    def known(self) -> dict[str, int]:
        return self._read()

    def uid(self, username: str) -> int:
        """The uid of ``username``, given now if it has none."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            accounts = self._read()
            if username in accounts:
                return accounts[username]
            taken = set(accounts.values())
            candidate = max(taken, default=self.first_uid - 1) + 1
            while candidate in taken or _account_exists(candidate):
                candidate += 1
            accounts[username] = candidate
            partial = self.path.with_suffix(".partial")
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                json.dump(accounts, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            partial.replace(self.path)
            return candidate
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(lock, fcntl.LOCK_UN)
            os.close(lock)


def _account_exists(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True
