"""The one error a catalog that cannot be used raises: every problem, each with file and line.

Light on purpose: opening a catalog in a notebook imports this module, and must not pay for the
settings model (pydantic). :class:`Problem` is every Statbox file's
(:mod:`statbox.settings.yamlfile`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from statbox.errors import BadInput
from statbox.settings.yamlfile import FileProblems, Lines, Problem, line_of

__all__ = ["CatalogError", "Lines", "Problem", "line_of", "problem_at"]


def problem_at(source: object, lines: Lines, key: Iterable[Any], message: str) -> Problem:
    """A problem at key path ``key`` of the file ``source``, on the line that spells it."""
    key = tuple(key)
    return Problem(str(source), line_of(key, lines), ".".join(map(str, key)), message)


class CatalogError(BadInput):
    """A catalog (or its data) that cannot be used; ``problems`` lists each finding.

    It is bad input (exit code 2): nothing was read or changed because of it.
    """

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(*(str(p) for p in problems))

    @classmethod
    def of(cls, found: FileProblems) -> CatalogError:
        return cls(found.problems)
