"""Translations of course notebooks: ``<stem>.<language>.ipynb`` beside the original.

``01-port-calls.pt-BR.ipynb`` is the Brazilian Portuguese version of ``01-port-calls.ipynb``.
A translation changes the words a trainee reads, nothing the kernel or the grader sees:

* the same cells in the same order, each of the same type, with the same id and tags;
* every code cell byte-identical (the parameters cell and the exercise's answer cells too),
  so a translation runs and grades exactly as the original;
* markdown (and raw) cells translated.

:func:`check_translation` holds a translation to that rule, one problem per difference; the
course loader (:mod:`statbox.courses.model`) refuses a course whose translations break it, and
publishing gives a trainee :func:`pick` of each notebook: the translation in their language
when there is one, else the original (English). Translations are never lessons of their own.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from statbox.courses.notebooks import NotebookProblem, cell_tags, read_notebook, source_of
from statbox.settings.yamlfile import Problem

LANGUAGES: tuple[str, ...] = ("pt-BR", "zh-CN", "ar", "fr")
"""The languages course material is translated into (BCP 47 tags); the original is English.
The one list: the regional hubs' languages (Brazil, China, the UAE, Rwanda)."""

ORIGINAL_LANGUAGE = "en"

_TRANSLATION_NAME = re.compile(r"^(?P<stem>.+)\.(?P<language>[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)$")


def translation_path(notebook: Path, language: str) -> Path:
    """Where the ``language`` translation of ``notebook`` lies (whether or not it exists)."""
    return notebook.with_name(f"{notebook.stem}.{language}{notebook.suffix}")


def language_of(path: Path) -> str | None:
    """The language of a translation file named ``<stem>.<language>.ipynb``, for one of
    :data:`LANGUAGES`; None for anything else (an original)."""
    if path.suffix != ".ipynb":
        return None
    match = _TRANSLATION_NAME.match(path.stem)
    if match is None or match["language"] not in LANGUAGES:
        return None
    return match["language"]


def original_of(path: Path) -> Path | None:
    """The notebook ``path`` translates, or None when ``path`` is not a translation."""
    language = language_of(path)
    if language is None:
        return None
    return path.with_name(path.name.removesuffix(f".{language}.ipynb") + ".ipynb")


def translations_of(notebook: Path) -> dict[str, Path]:
    """The translations of ``notebook`` that exist, by language, in the order of LANGUAGES."""
    found = {language: translation_path(notebook, language) for language in LANGUAGES}
    return {language: path for language, path in found.items() if path.is_file()}


def fallbacks(language: str | None) -> list[str]:
    """The languages to try for someone who reads ``language``, best first: the tag itself,
    each shorter prefix (``pt-BR`` -> ``pt-BR``, ``pt``), then a shipped language of the same
    primary language (``pt-PT`` -> ``pt-PT``, ``pt``, ``pt-BR``: Brazilian Portuguese reads
    better to a Portuguese reader than English does). Empty for English or none."""
    if not language:
        return []
    parts = language.split("-")
    if parts[0].lower() == ORIGINAL_LANGUAGE:
        return []
    tried = ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]
    siblings = [tag for tag in LANGUAGES if tag.split("-")[0].lower() == parts[0].lower()]
    return list(dict.fromkeys([*tried, *siblings]))


def _shipped(language: str) -> str | None:
    """The tag of LANGUAGES ``language`` names, compared without case (``pt-br``)."""
    for known in LANGUAGES:
        if known.lower() == language.lower():
            return known
    return None


def pick(notebook: Path, language: str | None) -> Path:
    """The notebook a reader of ``language`` gets: its translation when one exists (in the
    order of :func:`fallbacks`), else the original. ``None`` or ``en`` is the original."""
    for tag in fallbacks(language):
        shipped = _shipped(tag)
        if shipped is not None and translation_path(notebook, shipped).is_file():
            return translation_path(notebook, shipped)
    return notebook


def check_translation(original: Path, translation: Path) -> list[Problem]:
    """Every way ``translation`` departs from ``original`` beyond translated text, one
    problem per difference, each naming the translation and the cell (counted from 0, as
    ``cells.N``); empty when it keeps the rule of this module."""
    source = str(translation)
    problems: list[Problem] = []

    def problem(key: str, message: str) -> None:
        problems.append(Problem(source, None, key, message))

    try:
        theirs = read_notebook(translation)
    except NotebookProblem as exc:
        return [Problem(source, None, "", str(exc))]
    try:
        ours = read_notebook(original)
    except NotebookProblem as exc:
        return [Problem(source, None, "", f"its original {original.name}: {exc}")]
    if language_of(translation) is None:
        problem("", f"not named <stem>.<language>.ipynb with a language of {', '.join(LANGUAGES)}")
    ours_cells: list[dict[str, Any]] = ours["cells"]
    theirs_cells: list[dict[str, Any]] = theirs["cells"]
    if len(theirs_cells) != len(ours_cells):
        problem(
            "cells",
            f"{len(theirs_cells)} cells where {original.name} has {len(ours_cells)}: a "
            "translation keeps every cell, in the same order",
        )
    for index, (mine, theirs_cell) in enumerate(zip(ours_cells, theirs_cells, strict=False)):
        for difference in _cell_differences(mine, theirs_cell):
            problem(f"cells.{index}", f"{difference} (compare cell {index} of {original.name})")
    for index in range(len(ours_cells), len(theirs_cells)):
        problem(f"cells.{index}", f"an added cell: {original.name} has no cell {index}")
    for index in range(len(theirs_cells), len(ours_cells)):
        problem(f"cells.{index}", f"missing: {original.name} has a cell {index}")
    return problems


def _cell_differences(original: dict[str, Any], translated: dict[str, Any]) -> list[str]:
    kind = original.get("cell_type")
    if translated.get("cell_type") != kind:
        return [f"a {translated.get('cell_type')} cell where the original has a {kind} cell"]
    found = []
    if translated.get("id") != original.get("id"):
        found.append(f"cell id {translated.get('id')!r}, not {original.get('id')!r}")
    if cell_tags(translated) != cell_tags(original):
        found.append(f"tags {cell_tags(translated)}, not {cell_tags(original)}")
    if kind == "code" and source_of(translated) != source_of(original):
        found.append("code differs from the original's: code cells are never translated")
    if kind != "code" and not source_of(translated).strip():
        found.append("empty: a text cell must be translated, not dropped")
    return found


def translation_problems(notebook: Path) -> list[Problem]:
    """The problems of every translation of ``notebook`` that exists."""
    problems: list[Problem] = []
    for path in translations_of(notebook).values():
        problems.extend(check_translation(notebook, path))
    return problems
