"""The one error a catalog that cannot be used raises: every problem, each with file and line.

Light on purpose: opening a catalog in a notebook imports this module, and must not pay for the
settings model (pydantic). :class:`Problem` therefore has the shape and the text of
:class:`statbox.settings.Problem` without importing it (a test keeps the two alike).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import BadInput


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a catalog file (or the data an entry reads)."""

    source: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


Lines = dict[tuple, int]
"""The line of every key and list item of a YAML file, by key path."""


def line_of(lines: Lines, key: Iterable[Any]) -> int | None:
    """The line of the deepest part of ``key`` the file spells out."""
    key = tuple(key)
    return next((lines[key[:n]] for n in range(len(key), 0, -1) if key[:n] in lines), None)


def problem_at(source: object, lines: Lines, key: Iterable[Any], message: str) -> Problem:
    """A problem at key path ``key`` of the file ``source``, on the line that spells it."""
    key = tuple(key)
    return Problem(str(source), line_of(lines, key), ".".join(map(str, key)), message)


class CatalogError(BadInput):
    """A catalog (or its data) that cannot be used; ``problems`` lists each finding.

    It is bad input (exit code 2): nothing was read or changed because of it.
    """

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(*(str(p) for p in problems))
