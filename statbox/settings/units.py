"""Units as types: memory sizes and durations as operators write them.

Settings accept ``"2G"``, ``"512MiB"`` or a plain number of bytes for memory, and ``"30m"``,
``"2h"`` or a plain number of seconds for durations. Both are stored as integers (bytes,
seconds) so every consumer computes with one unit.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

# Binary multiples, as JupyterHub's ByteSpecification and Dask Gateway's MemoryLimit read them:
# operators copy values between the three, so "2G" must mean the same everywhere.
_MEMORY_UNITS = {
    suffix: 1024**power
    for power, letter in enumerate(["", "k", "m", "g", "t"])
    for suffix in ({letter, letter + "b", letter + "i", letter + "ib"} if letter else {"", "b"})
}
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NUMBER_WITH_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")

MEMORY_PATTERN = r"^\s*\d+(\.\d+)?\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$"
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*[smhd]?\s*$"


def parse_memory(value: object) -> int:
    """Return a memory size in bytes from an int or a string such as ``"2G"`` or ``"512Mi"``."""
    return _parse(value, _MEMORY_UNITS, "a memory size such as 512M, 2G or 4GiB")


def parse_duration(value: object) -> int:
    """Return a duration in seconds from an int or a string such as ``"90s"``, ``"30m"``."""
    return _parse(value, _DURATION_UNITS, "a duration such as 90s, 30m, 2h or 1d")


def _parse(value: object, units: dict[str, int], expected: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected {expected}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"must not be negative; expected {expected}")
        return int(value)
    if isinstance(value, str):
        match = _NUMBER_WITH_UNIT.match(value)
        if match and match.group(2).lower() in units:
            return int(float(match.group(1)) * units[match.group(2).lower()])
    raise ValueError(f"expected {expected}")


def format_memory(num_bytes: int) -> str:
    """Return the shortest exact spelling of a size: 2147483648 -> ``"2G"`` (binary units)."""
    for suffix, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if num_bytes and num_bytes % factor == 0:
            return f"{num_bytes // factor}{suffix}"
    return str(num_bytes)


Memory = Annotated[
    int,
    BeforeValidator(parse_memory),
    PlainSerializer(format_memory, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": MEMORY_PATTERN},
            ],
            "description": "bytes, or a size with a unit: 512M, 2G, 4GiB",
        }
    ),
]
"""Memory in bytes; written as an integer or with a binary unit (K, M, G, T; KiB... also read)."""

Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            "description": "seconds, or a duration with a unit: 90s, 30m, 2h, 1d",
        }
    ),
]
"""A duration in seconds; written as an integer or with a unit (s, m, h, d)."""


def memory_at_least(minimum: int) -> AfterValidator:
    """A check for a :data:`Memory` field that states the minimum in the operator's units."""

    def check(value: int) -> int:
        if value < minimum:
            raise ValueError(f"must be at least {format_memory(minimum)}")
        return value

    return AfterValidator(check)
