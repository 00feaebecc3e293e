"""The one error a catalog that cannot be used raises: every problem, each with file and line."""

from __future__ import annotations

from ..errors import BadInput
from ..settings import Problem


class CatalogError(BadInput):
    """A catalog (or its data) that cannot be used; ``problems`` lists each finding.

    It is bad input (exit code 2): nothing was read or changed because of it.
    """

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(*(str(p) for p in problems))
