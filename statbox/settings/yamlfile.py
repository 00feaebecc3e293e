"""YAML files people write (settings, catalogs, courses), read safely, with problems that
point at lines.

Invariant: a file is either fully valid, or every problem found is reported at once, each
naming the file, the line, the key path and what is allowed; nothing is returned half-read,
and nothing but plain data is ever constructed from YAML. Light at import (no pydantic):
opening a catalog in a notebook goes through here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file."""

    source: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class FileProblems(Exception):
    """A file that cannot be used; ``problems`` lists each thing wrong with it."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


Lines = dict[tuple, int]
"""Key path (mapping keys and list indices) -> the line it starts on."""


Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SAFE_TAGS = {
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge")
}
"""Tags of plain YAML values. Everything else (python/*, binary, set, local tags) is refused."""

MAX_BYTES = 5 * 1024**2
MAX_NODES = 200_000
"""Nodes visited, counting every use of an alias: a billion-laughs file stops here."""


def read_yaml_mapping(
    file: Path, what: str = "a mapping", allow_empty: bool = False
) -> tuple[dict[str, Any], Lines]:
    """The mapping in ``file`` and the line of every key path; raise FileProblems.

    Nothing is constructed before the whole node tree is checked: a tag that would construct
    a Python object (``!!python/object``, any local ``!tag``), a key given twice, malformed
    YAML or an alias bomb is a problem naming the file and line. ``what`` says what the file
    should hold, for the message when it holds something else; an empty file is an empty
    mapping when ``allow_empty``.
    """
    source = str(file)
    try:
        if file.stat().st_size > MAX_BYTES:
            raise _error(source, None, f"larger than {MAX_BYTES // 1024**2} MiB")
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _error(source, None, "no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise _error(source, None, f"cannot read: {exc}") from None
    loader = Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            reason = getattr(exc, "problem", None) or str(exc)
            line = mark.line + 1 if mark is not None else None
            raise _error(source, line, f"not valid YAML: {reason}") from None
        if node is None:
            if allow_empty:
                return {}, {}
            raise _error(source, None, f"empty file: expected {what}")
        lines: Lines = {}
        problems: list[Problem] = []
        _walk(node, (), lines, problems, source, [MAX_NODES])
        if problems:
            raise FileProblems(problems)
        if not isinstance(node, yaml.MappingNode):
            got = {yaml.SequenceNode: "a list"}.get(type(node), "a single value")
            raise _error(source, node.start_mark.line + 1, f"expected {what}, got {got}")
        # Only plain tags remain, so constructing cannot create anything but plain data. The
        # checked node tree is constructed as it is (what yaml.load does), not parsed again.
        return loader.construct_document(node), lines
    finally:
        loader.dispose()


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
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        message = (
            f"YAML tag {tag!r} would construct a Python object; only plain values are read: "
            "remove the tag"
        )
        problems.append(Problem(source, line, _key(path), message))
        return
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            key_line = key_node.start_mark.line + 1
            if key in seen:
                message = f"given twice (first on line {seen[key]}); keep one"
                problems.append(Problem(source, key_line, _key((*path, key)), message))
            seen[key] = key_line
            lines.setdefault((*path, key), key_line)
            _walk(value_node, (*path, key), lines, problems, source, budget)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.setdefault((*path, index), item.start_mark.line + 1)
            _walk(item, (*path, index), lines, problems, source, budget)


def _key(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _error(source: str, line: int | None, message: str) -> FileProblems:
    return FileProblems([Problem(source, line, "", message)])


def line_of(loc: tuple, lines: Lines) -> int | None:
    """The line of the deepest part of ``loc`` that the file spells out."""
    return next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)


if TYPE_CHECKING:
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")


def validate_file(model: type[M], file: Path) -> tuple[M, Lines]:
    """Read ``file`` and validate it as ``model``; raise FileProblems listing every problem."""
    from pydantic import ValidationError

    data, lines = read_yaml_mapping(file)
    try:
        return model.model_validate(data), lines
    except ValidationError as exc:
        schema = model.model_json_schema()
        raise FileProblems(
            [validation_problem(err, str(file), lines, schema) for err in exc.errors()]
        ) from None


def validation_problem(
    err: Mapping[str, Any],
    source: str,
    lines: Lines,
    schema: dict[str, Any],
    union_tags: Mapping[tuple, set[str]] | None = None,
    pattern_meanings: Mapping[str, str] | None = None,
) -> Problem:
    """One pydantic error as a Problem an author can act on.

    ``union_tags``: per key path, the tags of a discriminated union, which pydantic puts in
    error locations but files do not spell. ``pattern_meanings``: what a regular expression
    means, so nobody has to read one. Secrets and passwords are never echoed.
    """
    union_tags = union_tags or {}
    raw = tuple(err["loc"])
    loc = tuple(part for i, part in enumerate(raw) if part not in union_tags.get(raw[:i], ()))
    key = ".".join(str(p) for p in loc)
    kind = err["type"]
    message = str(err["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        allowed = allowed_keys(schema, raw[:-1])
        message = f"unknown key; allowed here: {', '.join(allowed)}" if allowed else "unknown key"
    elif kind == "missing":
        message = "required, and missing"
    elif kind == "union_tag_invalid":
        tags = ", ".join(sorted(union_tags.get(loc, ())))
        message = f"type {err['input'].get('type')!r} is not one of: {tags}"
    else:
        pattern = str((err.get("ctx") or {}).get("pattern", ""))
        message = (pattern_meanings or {}).get(pattern, message)
        value = err.get("input")
        secret = "secret" in kind or "password" in key or "secret" in key
        if not isinstance(value, Mapping | list) and not secret:
            message = f"{_short(value)}: {message}"
    return Problem(source, line_of(loc, lines), key, message)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def allowed_keys(schema: dict[str, Any], loc: tuple) -> list[str]:
    """The keys ``schema`` accepts at ``loc`` (for 'unknown key' messages)."""
    node: Any = schema
    for part in loc:
        node = _resolve(schema, node)
        props = node.get("properties")
        mapping = node.get("discriminator", {}).get("mapping", {})
        if part in mapping:
            node = {"$ref": mapping[part]}
        elif props and part in props:
            node = props[part]
        elif isinstance(node.get("items"), dict) and isinstance(part, int):
            node = node["items"]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return []
    return sorted(_resolve(schema, node).get("properties", {}))


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    if "allOf" in node and len(node["allOf"]) == 1:
        return _resolve(schema, node["allOf"][0])
    options = [o for o in node.get("anyOf", []) if o.get("type") != "null"]
    if len(options) == 1:
        return _resolve(schema, options[0])
    return node


IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""A Python identifier (ASCII): what a parameter or answer name must be."""
