"""Access levels, and the access an entry declares in its metadata (``metadata.access``).

Plain Python on purpose: :func:`statbox.catalog.open_catalog` filters every entry by its
declared access when it opens a catalog, before (and without) validating the rest of the
entries' metadata with pydantic. :class:`~statbox.catalog.metadata.EntryMetadata` validates its
``access`` key with the same :func:`parse_access`, so there is one rule for both.

Invariant: an :class:`Access` exists only if it is valid: its level is one of :data:`LEVELS`
(:data:`statbox.contract.ACCESS_LEVELS`, the settings' levels too), and only a
restricted entry names roles and groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from statbox.contract import ACCESS_LEVELS, RESTRICTED

LEVELS = ACCESS_LEVELS

Finding = tuple[tuple, str]
"""(key path under ``metadata.access``, message)."""


@dataclass(frozen=True)
class Access:
    """Who may see an entry: its level and, for a restricted entry, the roles and groups
    entitled to it (besides roles whose ``data.restricted`` names it)."""

    level: str
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


def parse_access(raw: Any) -> tuple[Access | None, list[Finding]]:
    """The :class:`Access` that ``raw`` (the YAML of ``metadata.access``) declares, or None
    and every problem in it."""
    if raw is None:
        return None, [((), "required, and missing")]
    if not isinstance(raw, Mapping):
        return None, [((), f"expected a mapping (level, roles, groups), got {type(raw).__name__}")]
    findings: list[Finding] = []
    for extra in sorted(set(map(str, raw)) - {"level", "roles", "groups"}):
        findings.append(((extra,), "unknown key"))
    level = raw.get("level")
    if level is None:
        findings.append((("level",), "required, and missing"))
    elif level not in LEVELS:
        findings.append((("level",), f"{level!r}: one of {', '.join(LEVELS)}"))
    names: dict[str, tuple[str, ...]] = {}
    for key in ("roles", "groups"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            findings.append(((key,), f"expected a list of names, got {value!r}"))
            continue
        names[key] = tuple(value)
    if level != RESTRICTED and (names.get("roles") or names.get("groups")):
        findings.append(((), "roles and groups apply to restricted entries only"))
    if findings:
        return None, findings
    return Access(str(level), names["roles"], names["groups"]), []
