"""Swapping two names atomically: what a trainee's kernel can do in her own home, in a loop,
while a service running as root writes into it (the attacks on check-then-write races)."""

from __future__ import annotations

import ctypes
from pathlib import Path

RENAME_EXCHANGE = 2
AT_FDCWD = -100


def exchange(first: Path, second: Path) -> None:
    """Swap ``first`` and ``second`` (renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(AT_FDCWD, bytes(first), AT_FDCWD, bytes(second), RENAME_EXCHANGE):
        raise OSError(ctypes.get_errno(), f"renameat2 {first} {second}")
