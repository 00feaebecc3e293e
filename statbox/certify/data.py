"""The data a graded kernel may read: what the exercise declares, as far as its role may.

A course names the catalog entries it reads (``course.yaml`` ``datasets:``). A graded kernel
gets each of those its role is entitled to (:func:`statbox.catalog.access.entitlement`, the
rule that decides every mount), one folder at a time, read-only, and a catalog listing only
those entries; never the whole data root. The role is the least entitled one the course is
published to (``audience``): a course for analysts is graded as an analyst, any other as a
trainee.

Invariant: :func:`grading_data` never names a folder of an entry that is not both declared
and entitled, and the catalog text it gives lists no other entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from statbox.catalog.access import RoleAccess, builtin_role_access, entitlement
from statbox.catalog.build import dump
from statbox.catalog.loader import read_catalog
from statbox.courses.model import Course

ROLES_BY_ENTITLEMENT = ("trainee", "instructor", "analyst", "admin")
"""Roles from the least data to the most (the built-in settings' order)."""


@dataclass
class GradingData:
    role: str
    datasets: list[Path] = field(default_factory=list)
    """The folders bound read-only into each graded kernel."""
    entries: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Declared entries the role may not read, or that the catalog lacks (one line each)."""
    catalog_text: str | None = None
    """The catalog listing only :attr:`entries` (None: no catalog to list from)."""


def grading_role(course: Course) -> str:
    """The role a course's exercise is graded as: the least entitled one it is published to."""
    for role in ROLES_BY_ENTITLEMENT:
        if role in course.audience:
            return role
    return ROLES_BY_ENTITLEMENT[0]


def grading_data(
    course: Course,
    catalog: Path | None,
    data_root: Path,
    access: dict[str, RoleAccess] | None = None,
) -> GradingData:
    """What the kernels grading ``course`` may read; ``access`` maps role names to their
    rules (None: the built-in defaults)."""
    role = grading_role(course)
    rules = (access or {}).get(role) or builtin_role_access(role)
    result = GradingData(role)
    if catalog is None or not catalog.is_file():
        result.refused = [f"{name}: no catalog to find it in" for name in course.datasets]
        return result
    info, data = read_catalog(catalog)
    for name in course.datasets:
        entry = info.entries.get(name)
        if entry is None:
            result.refused.append(f"{name}: not in the catalog {catalog}")
        elif not entitlement(rules, [], entry):
            result.refused.append(f"{name}: the {role} role may not read it")
        else:
            result.entries.append(name)
            folder = data_root / entry.data_path
            if folder.exists():
                result.datasets.append(folder)
    result.catalog_text = dump(_subset(data, info, result.entries))
    return result


def _subset(data: dict[str, Any], info: Any, names: list[str]) -> dict[str, Any]:
    """The catalog document with only the entries ``names`` and the data they read."""
    keep = set(names)
    subset = {key: value for key, value in data.items() if key not in ("entries", "data")}
    subset["aliases"] = {n: n for n in names}
    subset["entries"] = {n: v for n, v in (data.get("entries") or {}).items() if n in keep}
    data_keys = {info.entries[n].data_key for n in names}
    subset["data"] = {k: v for k, v in (data.get("data") or {}).items() if k in data_keys}
    metadata = dict(subset.get("metadata") or {})
    if "domains" in metadata:
        metadata["domains"] = sorted({n.split(".", 1)[0] for n in names})
    subset["metadata"] = metadata
    return subset
