"""Read a catalog's YAML as plain data, refusing whatever YAML could turn into code.

Invariant: a file comes back as plain mappings, lists and scalars with the line of every key
and item, or not at all: a tag that would construct a Python object (``!!python/object``,
``!!python/name``, any local ``!tag``), a key given twice, malformed YAML, or an alias bomb
raises :class:`~statbox.catalog.errors.CatalogError` with one problem per finding, naming
the file and line. Nothing is constructed before the whole node tree has been checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..settings import Problem
from .errors import CatalogError

Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SAFE_TAGS = {
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")
}
"""Tags of plain YAML values. Everything else (python/*, binary, set, local tags) is refused."""

MAX_BYTES = 5 * 1024**2
MAX_NODES = 200_000
"""Nodes visited, counting every use of an alias: a billion-laughs file stops here."""

Lines = dict[tuple, int]


def read_yaml(path: Path) -> tuple[dict[str, Any], Lines]:
    """The mapping in ``path`` and the line of each key path; raise CatalogError if unsafe."""
    source = str(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise _error(source, None, f"larger than {MAX_BYTES // 1024**2} MiB; not a catalog")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _error(source, None, "no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise _error(source, None, f"cannot read: {exc}") from None
    try:
        node = yaml.compose(text, Loader=Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        raise _error(source, line, f"not valid YAML: {reason}") from None
    if node is None:
        raise _error(source, None, "empty file: a catalog is a mapping with version: 2")
    lines: Lines = {}
    problems: list[Problem] = []
    _walk(node, (), lines, problems, source, [MAX_NODES])
    if problems:
        raise CatalogError(problems)
    if not isinstance(node, yaml.MappingNode):
        raise _error(source, node.start_mark.line + 1, "expected a mapping (version: 2, ...)")
    # Only plain tags remain, so constructing cannot create anything but plain data.
    return yaml.load(text, Loader=Loader), lines


def _walk(
    node: yaml.Node,
    path: tuple,
    lines: Lines,
    problems: list[Problem],
    source: str,
    budget: list[int],
) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        if budget[0] == -1:
            problems.append(
                Problem(source, node.start_mark.line + 1, "", "too many nodes (alias bomb?)")
            )
        return
    line = node.start_mark.line + 1
    if node.tag not in SAFE_TAGS:
        problems.append(
            Problem(
                source,
                line,
                _key(path),
                f"YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')!r} would construct a "
                "Python object; catalogs hold plain values only: remove the tag",
            )
        )
        return
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            key_line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(
                    Problem(
                        source,
                        key_line,
                        _key((*path, key)),
                        f"given twice (first on line {seen[key]}); keep one",
                    )
                )
            seen[key] = key_line
            lines.setdefault((*path, key), key_line)
            _walk(value_node, (*path, key), lines, problems, source, budget)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault((*path, index), item.start_mark.line + 1)
            _walk(item, (*path, index), lines, problems, source, budget)


def _key(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _error(source: str, line: int | None, message: str) -> CatalogError:
    return CatalogError([Problem(source, line, "", message)])
