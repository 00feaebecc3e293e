"""The notebook surgery of grading: read a submission, restore protected cells, inject the
trainee's parameters, add the cell that reads the answers, and write the feedback.

Conventions are papermill's (``parameters`` and ``injected-parameters`` tags, parameters
recorded in ``metadata.papermill.parameters``) and the course model's (``protected`` tag).
Invariant: what these functions return never runs a line the grader did not intend: the
template's protected and parameters cells replace the submission's, tags only the grader
may set are stripped from trainee cells, and only allow-listed names are injected.
"""

from __future__ import annotations

import ast
import copy
import inspect
import json
from collections.abc import Sequence
from typing import Any

import nbformat
from nbformat import NotebookNode
from papermill import __version__ as papermill_version
from papermill.parameterize import parameterize_notebook

from statbox.certify import bounded
from statbox.certify.execution import ROLE_KEY, SNAPSHOT_VARIABLE
from statbox.courses.notebooks import PARAMETERS_TAG, cell_tags
from statbox.courses.results import plain
from statbox.settings.yamlfile import IDENTIFIER

PROTECTED_TAG = "protected"
INJECTED_TAG = "injected-parameters"
LOCKED_TAGS = {PROTECTED_TAG, PARAMETERS_TAG}
GRADER_TAGS = {PROTECTED_TAG, PARAMETERS_TAG, INJECTED_TAG}
ANSWERS_MIME = "application/vnd.statbox.answers+json"
MAX_SUBMISSION_BYTES = 20 * 1024**2
ANSWERS_LIMIT = 1024**2
MAX_NOTEBOOK_DEPTH = 100
"""Nesting of a submission's JSON kept (a notebook is about 10 deep; widget state a few more):
deeper, deep-copying or writing it would exhaust the grader's stack."""
"""Bytes of answers read back from a kernel."""


class SubmissionProblem(ValueError):
    """A submission the grader cannot use at all; the message is the trainee's reason."""


class BadParameterName(ValueError):
    """A parameter name that is not an allow-listed identifier: never injected."""


def read_submission(content: bytes) -> NotebookNode:
    """The submission as a version 4 notebook; raise SubmissionProblem with the reason."""
    if len(content) > MAX_SUBMISSION_BYTES:
        raise SubmissionProblem(
            f"the notebook is {len(content) // 1024**2} MiB; at most "
            f"{MAX_SUBMISSION_BYTES // 1024**2} MiB is graded (clear large outputs)"
        )
    try:
        data = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" at line {line}" if line else ""
        raise SubmissionProblem(f"not a notebook: invalid JSON{where}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        # valid JSON Python will not read: an integer of 4,300 digits, nesting 1,000 deep
        raise SubmissionProblem(f"not a notebook: {_unreadable(exc)}") from None
    _, depth = bounded.measure(data)  # iterative: grading deep-copies and writes it, recursing
    if depth > MAX_NOTEBOOK_DEPTH:
        raise SubmissionProblem(f"not a notebook: nested deeper than {MAX_NOTEBOOK_DEPTH} levels")
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise SubmissionProblem("not a notebook: no list of cells")
    if data.get("nbformat") != 4:
        raise SubmissionProblem("not a version 4 notebook (save it with JupyterLab)")
    try:
        nb = nbformat.reads(content, as_version=4, capture_validation_error={})
        nbformat.validate(nb)
    except Exception as exc:
        message = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise SubmissionProblem(f"not a valid notebook: {message}") from None
    return bounded.scrub(nb)


def _unreadable(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deep to read"
    if isinstance(exc, MemoryError):
        return "too large to read"
    return "it holds a number too long to read"


def papermill_ready(nb: NotebookNode) -> NotebookNode:
    """Give ``nb`` the metadata papermill's engines expect (as papermill's loader does)."""
    nb.metadata.setdefault(
        "papermill",
        {
            "default_parameters": {},
            "parameters": {},
            "environment_variables": {},
            "version": papermill_version,
        },
    )
    for cell in nb.cells:
        cell.metadata.setdefault("tags", [])
        cell.metadata.setdefault("papermill", {})
    return nb


def _fresh(cell: NotebookNode) -> NotebookNode:
    cell = copy.deepcopy(cell)
    if cell.get("cell_type") == "code":
        cell["outputs"] = []
        cell["execution_count"] = None
    return cell


def _locked(cell: NotebookNode) -> bool:
    return bool(LOCKED_TAGS & set(cell_tags(cell)))


def restore_protected(
    template: NotebookNode,
    submission: NotebookNode,
    translations: Sequence[NotebookNode] = (),
) -> tuple[NotebookNode, list[str]]:
    """The notebook to grade: the submission's own cells in its order, with every cell the
    template tags ``protected`` or ``parameters`` taken from the template (restored if
    edited, put back if deleted); returns it and one note per restored cell.

    Cells are matched by cell id, else by the order of locked cells (old notebooks have no
    ids). A trainee cell carrying a tag only the grader sets loses the tag.

    ``translations``: the template's translations (statbox.courses.translations: the same
    cells, code identical). A locked text cell as one of them has it is the trainee's
    language, not an edit: it stays as it is. Code always comes from the template.
    """
    locked = [(i, c) for i, c in enumerate(template.cells) if _locked(c)]
    template_ids = {c.get("id"): i for i, c in enumerate(template.cells) if c.get("id")}
    by_id = {c.get("id"): i for i, c in locked if c.get("id")}
    unmatched = [i for i, _ in locked]
    placed: dict[int, int] = {}  # template index -> position in the result
    cells: list[NotebookNode] = []
    notes: list[str] = []

    def match(cell: NotebookNode) -> int | None:
        cell_id = cell.get("id")
        if cell_id in by_id and by_id[cell_id] in unmatched:
            return by_id[cell_id]
        if _locked(cell) and not (cell_id and by_id):
            # no ids to go by: the next locked template cell with the same tags
            for index in unmatched:
                if LOCKED_TAGS & set(cell_tags(template.cells[index])) == LOCKED_TAGS & set(
                    cell_tags(cell)
                ):
                    return index
        return None

    for cell in submission.cells:
        index = match(cell)
        if index is not None:
            original = _in_language(template.cells[index], index, cell, translations)
            if cell.get("source") != original.get("source") or cell.get(
                "cell_type"
            ) != original.get("cell_type"):
                notes.append(f"{_describe(original, index)} was edited: the original was restored")
            unmatched.remove(index)
            placed[index] = len(cells)
            cells.append(_fresh(original))
            continue
        own = _fresh(cell)
        same = template_ids.get(cell.get("id"))
        if same is not None and same not in placed:
            placed[same] = len(cells)  # the trainee's version of an answer cell
        # A trainee cell keeps only its own tags: the grader and papermill write their keys
        # (papermill, execution, statbox) into cell metadata and must find them as they left
        # them; none of the trainee's metadata means anything to grading.
        tags = [t for t in cell_tags(own) if t not in GRADER_TAGS]
        own.metadata = NotebookNode({"tags": tags})
        cells.append(own)
    for index in sorted(unmatched):  # deleted by the trainee: back after their predecessor
        before = [placed[i] for i in placed if i < index]
        position = max(before) + 1 if before else 0
        cells.insert(position, _fresh(template.cells[index]))
        placed = {i: (p + 1 if p >= position else p) for i, p in placed.items()}
        placed[index] = position
        notes.append(f"{_describe(template.cells[index], index)} was missing: it was put back")
    # Built anew (an allow-list): the template's notebook metadata (its kernel, no papermill
    # record or widget state of the trainee's shaping) and the cells above.
    result = nbformat.from_dict(
        {
            "nbformat": submission.nbformat,
            "nbformat_minor": submission.nbformat_minor,
            "metadata": copy.deepcopy(template.metadata),
            "cells": [],
        }
    )
    result.cells = cells
    return result, notes


def _in_language(
    original: NotebookNode, index: int, cell: NotebookNode, translations: Sequence[NotebookNode]
) -> NotebookNode:
    """``original`` (a locked template cell), or the same cell of the translation whose
    words ``cell`` has when it is a text cell (never code: that is the template's)."""
    if original.get("cell_type") == "code":
        return original
    for translation in translations:
        if index < len(translation.cells):
            translated = translation.cells[index]
            same_kind = translated.get("cell_type") == original.get("cell_type")
            if same_kind and translated.get("source") == cell.get("source"):
                return translated
    return original


def _describe(cell: NotebookNode, index: int) -> str:
    kind = "parameters cell" if PARAMETERS_TAG in cell_tags(cell) else "protected cell"
    first = str(cell.get("source", "")).strip().splitlines()
    preview = f" ({first[0][:40]!r})" if first else ""
    return f"{kind} {index + 1}{preview}"


def inject_parameters(
    nb: NotebookNode, parameters: dict[str, Any], allowed: dict[str, Any]
) -> NotebookNode:
    """``nb`` with an ``injected-parameters`` cell after its parameters cell (papermill's
    injection); raise BadParameterName for a name that is not an identifier declared in the
    template's parameters cell. Values are the grader's own (ints, strings, floats)."""
    for name in parameters:
        if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
            raise BadParameterName(f"{str(name)[:60]!r} is not a Python identifier: refused")
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise BadParameterName(
                f"{name!r} is not a parameter of the exercise template (parameters: {known})"
            )
    for cell in nb.cells:  # papermill would put its cell where a trainee's stray tag is
        tags = cell_tags(cell)
        if INJECTED_TAG in tags:
            cell.metadata["tags"] = [t for t in tags if t != INJECTED_TAG]
    return parameterize_notebook(
        papermill_ready(nb), dict(parameters), kernel_name="python3", language="python"
    )


def _without_annotations(function: Any) -> str:
    """The source of ``function`` with its annotations removed: the kernel evaluates them
    without this module's imports."""
    tree = ast.parse(inspect.getsource(function))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            node.returns = None
            for argument in [*node.args.args, *node.args.kwonlyargs]:
                argument.annotation = None
    return ast.unparse(tree)


_PLAIN_SOURCE = _without_annotations(plain)


def answers_code(variables: list[str], snapshot: bool = False) -> str:
    """Code that collects each answer variable as plain JSON data
    (``statbox.courses.results.plain``, inlined: the kernel needs nothing of Statbox) and
    displays it, or (``snapshot``) stores the JSON in ``__statbox_snapshot__`` for a
    silent request to read back."""
    for name in variables:
        if not IDENTIFIER.fullmatch(name):
            raise BadParameterName(f"{name!r} is not a Python identifier: refused")
    last = (
        f"{SNAPSHOT_VARIABLE} = __import__('json').dumps(__statbox_answers__({variables!r}))"
        if snapshot
        else f"__import__('IPython.display').display.display("
        f"{{{ANSWERS_MIME!r}: __statbox_answers__({variables!r})}}, raw=True)"
    )
    return "\n".join(
        [
            "def __statbox_answers__(names):",
            "    import json",
            *("    " + line for line in _PLAIN_SOURCE.splitlines()),
            "    space = globals()",
            "    found = {}",
            "    for name in names:",
            "        if name in space:",
            "            try:",
            "                found[name] = json.loads(json.dumps(plain(space[name]), default=str))",
            "            except Exception:",
            "                found[name] = None",
            "    return found",
            last,
        ]
    )


def add_answers_cell(nb: NotebookNode, variables: list[str]) -> NotebookNode:
    """Append the grader's last cell, which displays the answers (see :func:`answers_code`)."""
    cell = nbformat.v4.new_code_cell(answers_code(variables))
    cell.metadata[ROLE_KEY] = {"role": "answers"}
    cell.metadata["tags"] = []
    cell.metadata["papermill"] = {}
    nb.cells.append(cell)
    return nb


def read_answers(nb: NotebookNode, limit: int = ANSWERS_LIMIT) -> dict[str, Any] | None:
    """The answers the grader's cell displayed, or None if it displayed none; raise
    :class:`~statbox.certify.bounded.BadValue` (the reason) for answers too big, too deep
    or not JSON."""
    for cell in nb.cells:
        if cell.get("metadata", {}).get(ROLE_KEY, {}).get("role") != "answers":
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {}) if output.get("output_type") == "display_data" else {}
            value = data.get(ANSWERS_MIME)
            if isinstance(value, str | bytes):
                value = bounded.loads(value, limit)
            elif value is not None:
                reason = bounded.problem(value, limit)
                if reason:
                    raise bounded.BadValue(reason)
            if isinstance(value, dict):
                return value
    return None


def cell_errors(nb: NotebookNode) -> list[str]:
    """One line per trainee cell that raised: ``cell 4: NameError: name 'x' is not defined``."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.get("metadata", {}).get(ROLE_KEY):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
                found.append(f"cell {index + 1}: {message.splitlines()[0][:160]}")
                break
    return found


def without_grader_cells(nb: NotebookNode) -> NotebookNode:
    result = copy.deepcopy(nb)
    result.cells = [c for c in result.cells if not c.get("metadata", {}).get(ROLE_KEY)]
    return result


def feedback_cell(lines: list[str]) -> NotebookNode:
    cell = nbformat.v4.new_markdown_cell("\n".join(lines))
    cell.metadata[ROLE_KEY] = {"role": "feedback"}
    cell.metadata["tags"] = ["statbox-feedback"]
    return cell
