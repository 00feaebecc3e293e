"""Reading what Statbox needs from a notebook file without running it.

The ``parameters`` cell (papermill's convention) is the allow-list of names that may be
injected into a notebook: grading and publishing inject only names found here, so a
parameter name can never carry code (papermill itself does not check names).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

PARAMETERS_TAG = "parameters"


class NotebookProblem(ValueError):
    """A notebook Statbox cannot use, with the reason."""


def read_notebook(path: Path) -> dict[str, Any]:
    """The notebook at ``path`` as JSON data (nbformat 4); raise NotebookProblem."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotebookProblem("no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookProblem(f"cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise NotebookProblem(f"not a notebook: invalid JSON at line {exc.lineno}") from None
    if not isinstance(data, dict) or data.get("nbformat") != 4 or "cells" not in data:
        raise NotebookProblem("not a version 4 notebook")
    return data


def cell_tags(cell: dict[str, Any]) -> list[str]:
    tags = cell.get("metadata", {}).get("tags", [])
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def source_of(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def parameters_cell(notebook: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Index and cell of the code cell tagged ``parameters``; raise NotebookProblem."""
    for index, cell in enumerate(notebook["cells"]):
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in cell_tags(cell):
            return index, cell
    raise NotebookProblem(f"has no code cell tagged {PARAMETERS_TAG!r}")


def parse_parameters(source: str) -> dict[str, Any]:
    """``name = literal`` lines of a parameters cell, as a dict; raise NotebookProblem for
    anything else (a call, an import, an expression): parameters are data, not code."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise NotebookProblem(f"parameters cell: invalid Python at line {exc.lineno}") from None
    values: dict[str, Any] = {}
    for statement in tree.body:
        target: ast.expr | None = None
        value: ast.expr | None = None
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value = statement.targets[0], statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            target, value = statement.target, statement.value
        if not isinstance(target, ast.Name) or value is None:
            raise NotebookProblem(
                f"parameters cell, line {statement.lineno}: only `name = value` lines are allowed"
            )
        try:
            values[target.id] = ast.literal_eval(value)
        except ValueError:
            raise NotebookProblem(
                f"parameters cell, line {statement.lineno}: {target.id} must be a literal "
                "(a number, string, boolean, None, list or dict of those)"
            ) from None
    return values


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The parameters, with their defaults, that the notebook at ``path`` declares."""
    _, cell = parameters_cell(read_notebook(path))
    return parse_parameters(source_of(cell))
