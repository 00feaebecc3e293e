"""YAML files checked against a pydantic model, with problems that point at lines.

For every file format Statbox reads from people (courses today; the settings' own copy of
this logic moves here once the identity work has landed). Invariant: a file is either fully
valid, or every problem found is reported at once, each naming the file, the line, the key
path and what is allowed; nothing is returned half-read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError


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


def read_yaml_mapping(file: Path) -> tuple[dict[str, Any], Lines]:
    """Read ``file`` as a YAML mapping with the line of every key; raise FileProblems.

    Safe loading only (no tags constructing objects); a key given twice in one mapping is a
    problem, not silently the last one.
    """
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise FileProblems([Problem(str(file), None, "", "no such file")]) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise FileProblems([Problem(str(file), None, "", f"cannot read: {exc}")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise FileProblems([Problem(str(file), line, "", f"not valid YAML: {reason}")]) from None
    if not isinstance(data, dict):
        line = node.start_mark.line + 1 if node is not None else None
        got = "nothing" if data is None else type(data).__name__
        raise FileProblems([Problem(str(file), line, "", f"expected a mapping, got {got}")])
    lines: Lines = {}
    duplicates: list[Problem] = []
    _index_lines(node, (), lines, duplicates, str(file))
    if duplicates:
        raise FileProblems(duplicates)
    return data, lines


def _index_lines(
    node: yaml.Node | None, path: tuple, out: Lines, duplicates: list[Problem], source: str
) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, key_node.value)
            line = key_node.start_mark.line + 1
            if key in out:
                message = f"given twice (first on line {out[key]}); keep one"
                duplicates.append(Problem(source, line, ".".join(map(str, key)), message))
            out[key] = line
            _index_lines(value_node, key, out, duplicates, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            out[(*path, index)] = item.start_mark.line + 1
            _index_lines(item, (*path, index), out, duplicates, source)


def line_of(loc: tuple, lines: Lines) -> int | None:
    """The line of the deepest part of ``loc`` that the file spells out."""
    return next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)


M = TypeVar("M", bound=BaseModel)


def validate_file(model: type[M], file: Path) -> tuple[M, Lines]:
    """Read ``file`` and validate it as ``model``; raise FileProblems listing every problem."""
    data, lines = read_yaml_mapping(file)
    try:
        return model.model_validate(data), lines
    except ValidationError as exc:
        schema = model.model_json_schema()
        raise FileProblems(
            [validation_problem(err, str(file), lines, schema) for err in exc.errors()]
        ) from None


def validation_problem(
    err: Mapping[str, Any], source: str, lines: Lines, schema: dict[str, Any]
) -> Problem:
    """One pydantic error as a Problem an author can act on."""
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    kind = err["type"]
    message = str(err["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        allowed = allowed_keys(schema, loc[:-1])
        message = f"unknown key; allowed here: {', '.join(allowed)}" if allowed else "unknown key"
    elif kind == "missing":
        message = "required, and missing"
    else:
        value = err.get("input")
        if not isinstance(value, Mapping | list):
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
        if props and part in props:
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
