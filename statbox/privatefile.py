"""Secret files made on first use (signing key, cohort secrets, passwords), all or nothing.

Invariant: a secret's file either does not exist or holds the whole secret, mode 0600. It is
written under a temporary name and linked into place, so a backup, a reader or a second
process making the same secret at the same moment never sees an empty or half-written file;
the first to link wins and the others read what it wrote.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def create_private_file(path: Path, data: bytes) -> bytes:
    """Write ``data`` to the new file ``path`` (mode 0600); returns what ``path`` holds:
    ``data``, or what another process wrote first."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:  # mkstemp makes it 0600
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # unlike rename, never replaces a secret already made
        except FileExistsError:
            return path.read_bytes()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return data
