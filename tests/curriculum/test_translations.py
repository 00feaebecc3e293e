"""Translations of course notebooks (statbox.courses.translations): the shipped ones keep the
rule, a translation that would run or grade differently is refused with the cell named, and a
trainee gets each notebook once, in their language where there is one.

Fast (no kernel): the runs of the translations are in test_translations_run.py.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from statbox.courses import load_course, load_curriculum
from statbox.courses.model import CurriculumError
from statbox.courses.notebooks import cell_tags, read_notebook, source_of
from statbox.courses.publish import Publisher, material
from statbox.courses.translations import (
    LANGUAGES,
    check_translation,
    pick,
    translation_path,
    translations_of,
)
from tests.curriculum.conftest import CURRICULUM

TRANSLATED_COURSES = ("getting-started", "ais-port-calls")
INLINE_CODE = re.compile(r"`[^`\n]+`")
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def shipped() -> list[tuple[Path, Path]]:
    """(original, translation) for every translation in the curriculum."""
    pairs = []
    for loaded in load_curriculum(CURRICULUM).values():
        for notebook in loaded.course.published_notebooks():
            original = loaded.path(notebook)
            pairs.extend((original, path) for path in translations_of(original).values())
    return pairs


def test_the_two_courses_are_translated_into_every_language(courses):
    for course_id in TRANSLATED_COURSES:
        loaded = courses[course_id]
        for notebook in loaded.course.published_notebooks():
            found = translations_of(loaded.path(notebook))
            assert tuple(found) == LANGUAGES, f"{course_id}/{notebook}: only {sorted(found)}"


@pytest.mark.parametrize(
    "original, translation", shipped(), ids=lambda p: p.relative_to(CURRICULUM).as_posix()
)
def test_every_shipped_translation_keeps_the_rule(original, translation):
    assert check_translation(original, translation) == []
    ours, theirs = read_notebook(original)["cells"], read_notebook(translation)["cells"]
    for index, (mine, translated) in enumerate(zip(ours, theirs, strict=True)):
        if mine["cell_type"] == "code":
            continue
        text, english = source_of(translated), source_of(mine)
        where = f"{translation.name} cell {index}"
        assert text != english, f"{where}: not translated"
        # What a reader types or compares with the code stays as it is: inline code (variable
        # names, tags, values) and every number (thresholds, points, years, AIS types).
        assert Counter(INLINE_CODE.findall(text)) == Counter(INLINE_CODE.findall(english)), where
        assert Counter(NUMBER.findall(_without_markup(text))) == Counter(NUMBER.findall(english)), (
            where
        )


def _without_markup(text: str) -> str:
    """The Arabic cells' right-to-left wrapper carries no figure of the lesson."""
    return re.sub(r"<div [^>]*>|</div>", "", text)


# ---------------------------------------------------------------- what is refused


@pytest.fixture
def course_copy(tmp_path) -> Path:
    """A copy of ais-port-calls, to break."""
    target = tmp_path / "ais-port-calls"
    shutil.copytree(CURRICULUM / "ais-port-calls", target)
    return target


LESSON = "01-port-calls.ipynb"
EXERCISE = "exercise/port-calls-exercise.ipynb"


def _edit(path: Path, change) -> None:
    notebook = json.loads(path.read_text())
    change(notebook["cells"])
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False))


def _code_index(cells, tag: str | None = None) -> int:
    return next(
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "code" and (tag is None or tag in cell_tags(c))
    )


def _change_code(cells):
    index = _code_index(cells[3:]) + 3
    cells[index]["source"] = [*cells[index]["source"], "\nmax_speed_knots = 30"]


def _drop_protected_tag(cells):
    index = next(i for i, c in enumerate(cells) if "protected" in cell_tags(c) and i > 0)
    cells[index]["metadata"]["tags"] = []


def _change_parameters(cells):
    cells[_code_index(cells, "parameters")]["source"] = ['seed = 7\nport = "TZDAR"\n']


def _add_cell(cells):
    added = {"cell_type": "code", "id": "x1", "metadata": {}, "outputs": [], "source": ["x = 1"]}
    cells.insert(4, {**added, "execution_count": None})


def _change_id(cells):
    cells[4]["id"] = "c99"


def _code_as_markdown(cells):
    cells[4] = {"cell_type": "markdown", "id": cells[4]["id"], "metadata": {}, "source": ["x"]}


def _empty_text(cells):
    cells[2]["source"] = []


@pytest.mark.parametrize(
    "notebook, change, cell, words",
    [
        (LESSON, _change_code, None, "code differs"),
        (EXERCISE, _drop_protected_tag, None, "tags"),
        (EXERCISE, _change_parameters, 1, "code differs"),
        (EXERCISE, _add_cell, 4, "cells where"),
        (EXERCISE, _change_id, 4, "cell id"),
        (EXERCISE, _code_as_markdown, 4, "markdown cell where the original has a code cell"),
        (LESSON, _empty_text, 2, "empty"),
    ],
    ids=[
        "code-changed",
        "tag-removed",
        "parameters-changed",
        "cell-added",
        "id-changed",
        "code-made-text",
        "text-dropped",
    ],
)
@pytest.mark.parametrize("language", ["pt-BR", "ar"])
def test_a_translation_that_would_run_or_grade_differently_is_refused(
    course_copy, notebook, change, cell, words, language
):
    original = course_copy / notebook
    translation = translation_path(original, language)
    before = json.loads(translation.read_text())["cells"]
    _edit(translation, change)
    after = json.loads(translation.read_text())["cells"]
    changed = cell
    if changed is None:  # the first cell that differs
        changed = next(i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b)
    problems = check_translation(original, translation)
    assert problems, f"{change.__name__}: accepted"
    named = [p for p in problems if p.key == f"cells.{changed}" or p.key == "cells"]
    assert named and any(words in p.message for p in problems), problems
    assert all(p.source == str(translation) for p in problems)
    assert any(p.key == f"cells.{changed}" for p in problems), problems
    # The course is refused as a whole: `statbox course check` and publishing never use it.
    with pytest.raises(CurriculumError) as refused:
        load_course(course_copy)
    assert f"{translation}: cells.{changed}" in str(refused.value)


def test_a_translation_of_no_notebook_of_the_course_is_refused(course_copy):
    stray = course_copy / "03-extra.fr.ipynb"
    shutil.copy(course_copy / "01-port-calls.fr.ipynb", stray)
    with pytest.raises(CurriculumError) as refused:
        load_course(course_copy)
    assert "03-extra.fr.ipynb: translates 03-extra.ipynb" in str(refused.value)


def test_a_translation_of_a_missing_notebook_is_reported_not_raised(tmp_path):
    translation = tmp_path / "01-a.fr.ipynb"
    shutil.copy(CURRICULUM / "ais-port-calls" / "01-port-calls.fr.ipynb", translation)
    (problem,) = check_translation(tmp_path / "01-a.ipynb", translation)
    assert "01-a.ipynb: no such file" in problem.message


# ---------------------------------------------------------------- what a trainee gets


@pytest.mark.parametrize(
    "language, expected",
    [
        ("pt-BR", "pt-BR"),
        ("pt-br", "pt-BR"),
        ("pt", "pt-BR"),
        ("pt-PT", "pt-BR"),
        ("zh-CN", "zh-CN"),
        ("zh", "zh-CN"),
        ("ar", "ar"),
        ("ar-AE", "ar"),
        ("fr-RW", "fr"),
        ("en", None),
        ("en-GB", None),
        ("rw", None),
        ("", None),
        (None, None),
        # a tag only ever chooses among the shipped files: it is never made into a path
        ("../grader/solution", None),
        ("fr/../../grader/solution", None),
        ("fr-../../../grader", "fr"),
    ],
)
def test_pick_falls_back_to_the_language_then_to_english(language, expected):
    original = CURRICULUM / "ais-port-calls" / LESSON
    wanted = original if expected is None else translation_path(original, expected)
    assert pick(original, language) == wanted


def test_pick_gives_the_original_where_a_notebook_has_no_translation(course_copy):
    original = course_copy / LESSON
    translation_path(original, "pt-BR").unlink()
    assert pick(original, "pt-BR") == original


def test_translations_are_no_lessons_and_never_published_beside_the_original(courses):
    loaded = courses["ais-port-calls"]
    assert [lesson.notebook for lesson in loaded.course.lessons] == [
        "01-port-calls.ipynb",
        "02-port-activity-indicator.ipynb",
    ]
    assert not [name for name in material(loaded) if name.count(".") > 1]


@pytest.mark.parametrize("language", [*LANGUAGES, None])
def test_a_trainee_gets_each_notebook_once_in_their_language(courses, tmp_path, language):
    loaded = courses["ais-port-calls"]

    def personalise(user, notebook):  # as the classroom's variant: the parameters cell
        cell = notebook["cells"][_code_index(notebook["cells"], "parameters")]
        cell["source"] = f"seed = 1234\nport = {user.upper()!r}\n"
        return notebook

    publisher = Publisher(tmp_path / "homes", tmp_path / "ledgers")
    publisher.publish(loaded, ["ana"], personalise, language)
    home = tmp_path / "homes" / "ana" / "courses" / "ais-port-calls"
    notebooks = sorted(p.relative_to(home).as_posix() for p in home.rglob("*.ipynb"))
    assert notebooks == sorted(loaded.course.published_notebooks())
    for notebook in loaded.course.lessons:
        written = (home / notebook.notebook).read_bytes()
        assert written == pick(loaded.path(notebook.notebook), language).read_bytes()
    template = read_notebook(home / EXERCISE)
    chosen = read_notebook(pick(loaded.path(EXERCISE), language))
    assert template["cells"][0]["source"] == chosen["cells"][0]["source"]  # its words
    assert "port = 'ANA'" in source_of(template["cells"][1])  # and the trainee's variant


# ---------------------------------------------------------------- grading a translated notebook


@pytest.mark.parametrize("language", LANGUAGES)
def test_grading_a_translated_exercise_restores_the_code_and_keeps_its_words(language):
    """A trainee who worked in the translation is graded on the English template's code
    (protected and parameters cells restored from it, as for everyone) without being told
    that the cells they never touched "were edited", and reads the feedback in their words."""
    import nbformat

    from statbox.certify import notebook as nbops
    from statbox.certify.exercise import load_exercise

    loaded = load_curriculum(CURRICULUM)["ais-port-calls"]
    graded = load_exercise(loaded)
    path = translation_path(loaded.path(EXERCISE), language)
    submission = nbformat.read(path, as_version=4)
    submission.cells[4].source = "in_port_reports = 1"  # the trainee's answer
    submission.cells[2].source += "\nin_port_reports = 10**6"  # a protected cell, edited
    restored, notes = nbops.restore_protected(graded.template, submission, graded.translations)
    assert notes == [f"protected cell 3 ({'import os'!r}) was edited: the original was restored"]
    for index, (cell, english) in enumerate(
        zip(restored.cells, graded.template.cells, strict=True)
    ):
        if index == 4:
            assert cell.source == "in_port_reports = 1"
        elif cell.cell_type == "code":
            assert cell.source == english.source, index
        else:
            assert cell.source == nbformat.read(path, as_version=4).cells[index].source


# ---------------------------------------------------------------- the classroom


CLASSROOM_SETTINGS = """\
paths:
  curriculum: curriculum
  state_dir: state
cohorts: [recife]
groups:
  recife: [joana, wang, ines]
roles:
  instructor:
    users: [ines]
"""


def test_a_trainee_opens_the_course_in_their_language_and_english_by_default(tmp_path):
    from statbox.classroom import Actor, Classroom
    from statbox.modes.base import FolderHomes
    from statbox.settings.model import load_settings

    shutil.copytree(CURRICULUM / "ais-port-calls", tmp_path / "curriculum" / "ais-port-calls")
    (tmp_path / "statbox.yaml").write_text(CLASSROOM_SETTINGS)
    settings = load_settings(tmp_path / "statbox.yaml")
    state = settings.paths.state_dir
    room = Classroom(settings.settings, tmp_path / "curriculum", state, FolderHomes(state))
    room.publish(Actor.user("ines"), "ais-port-calls", "recife")
    course = tmp_path / "curriculum" / "ais-port-calls"
    for user, language, expected in (("joana", "pt-BR", "pt-BR"), ("wang", None, None)):
        opened = room.open_course(Actor.user(user), "ais-port-calls", language=language)
        home = state / "homes" / user / "courses" / "ais-port-calls"
        assert opened.lessons == ["01-port-calls.ipynb", "02-port-activity-indicator.ipynb"]
        assert sorted(p.name for p in home.rglob("*.ipynb")) == [
            "01-port-calls.ipynb",
            "02-port-activity-indicator.ipynb",
            "port-calls-exercise.ipynb",
        ]
        lesson = course / "01-port-calls.ipynb"
        wanted = lesson if expected is None else translation_path(lesson, expected)
        assert (home / "01-port-calls.ipynb").read_bytes() == wanted.read_bytes()
        template = read_notebook(home / EXERCISE)
        words = read_notebook(pick(course / EXERCISE, language))["cells"][0]["source"]
        assert template["cells"][0]["source"] == words
        assert f"seed = {opened.variant['seed']!r}" in source_of(template["cells"][1])


def test_course_show_says_which_languages_a_course_is_in(capsys, course_copy):
    from statbox.cli import main

    translation_path(course_copy / LESSON, "fr").unlink()
    (course_copy.parent / "statbox.yaml").write_text(
        f"paths:\n  curriculum: {course_copy.parent}\n"
    )
    code = main(
        ["course", "show", "ais-port-calls", "--config", str(course_copy.parent / "statbox.yaml")]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert (
        "also in: pt-BR (3 of 3 notebooks), zh-CN (3 of 3 notebooks), ar (3 of 3 notebooks), "
        "fr (2 of 3 notebooks)"
    ) in out
