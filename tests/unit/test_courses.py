"""The course model: a valid course, every invalid case (one folder each), notebooks'
parameters, and loading a whole curriculum."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from statbox.courses import CurriculumError, load_course, load_curriculum
from statbox.courses.notebooks import NotebookProblem, parse_parameters

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "courses"
SAMPLE = FIXTURES / "sample-course"
INVALID = sorted(p for p in (FIXTURES / "invalid").iterdir() if p.is_dir())


def test_sample_course_loads():
    loaded = load_course(SAMPLE)
    course = loaded.course
    assert course.id == "sample-course"
    assert course.duration == 3600
    assert [lesson.notebook for lesson in course.lessons] == ["01-lesson.ipynb"]
    assert course.exercise is not None
    assert course.exercise.max_score == 10
    assert course.exercise.tasks[0].answer_variable == "total"
    assert course.exercise.time_limit == 600
    assert loaded.path(course.exercise.checks).is_file()


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.name)
def test_invalid_course_is_refused_with_file_line_and_key(case, tmp_path):
    first = (case / "course.yaml").read_text().splitlines()[0]
    key, text = first.removeprefix("# expect: ").split(" | ", 1)
    # The case's course.yaml over the sample's notebooks, in a folder of the case's name.
    directory = tmp_path / case.name
    shutil.copytree(SAMPLE, directory)
    shutil.copy(case / "course.yaml", directory / "course.yaml")
    with pytest.raises(CurriculumError) as raised:
        load_course(directory)
    messages = [str(p) for p in raised.value.problems]
    matching = [p for p in raised.value.problems if p.key == key.strip() and text in p.message]
    assert matching, f"expected {key!r}: {text!r} among {messages}"
    assert all(p.source == str(directory / "course.yaml") for p in raised.value.problems)
    if key.strip() and "missing" not in text:  # a missing key has no line to point at
        assert matching[0].line is not None


def test_curriculum_reports_problems_of_every_course_and_unknown_prerequisites(tmp_path):
    shutil.copytree(SAMPLE, tmp_path / "sample-course")
    shutil.copytree(SAMPLE, tmp_path / "second")
    text = (tmp_path / "second" / "course.yaml").read_text()
    (tmp_path / "second" / "course.yaml").write_text(
        text.replace("id: sample-course", "id: second").replace(
            "outcomes:", "prerequisites: [sample-course, nowhere]\noutcomes:"
        )
    )
    shutil.copytree(SAMPLE, tmp_path / "broken")
    (tmp_path / "broken" / "course.yaml").write_text("id: broken\nlevel: expert\n")
    with pytest.raises(CurriculumError) as raised:
        load_curriculum(tmp_path)
    keys = {(Path(p.source).parent.name, p.key) for p in raised.value.problems}
    assert ("second", "prerequisites.1") in keys
    assert ("broken", "level") in keys
    assert ("broken", "title") in keys
    assert ("second", "prerequisites.0") not in keys


def test_shipped_curriculum_is_valid(repo):
    courses = load_curriculum(repo / "curriculum")
    assert courses, "the curriculum ships at least one course"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "seed = 42\nuse_dask = False\nregion: str = 'north'",
            {"seed": 42, "use_dask": False, "region": "north"},
        ),
        ("# a comment\nweeks = [1, 2]\n", {"weeks": [1, 2]}),
        ("", {}),
    ],
)
def test_parameters_are_literal_assignments(source, expected):
    assert parse_parameters(source) == expected


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("import os", "only `name = value`"),
        ("seed = __import__('os').getpid()", "seed must be a literal"),
        ("a = b = 1", "only `name = value`"),
        ("seed = ", "invalid Python at line 1"),
    ],
)
def test_parameters_that_are_code_are_refused(source, reason):
    with pytest.raises(NotebookProblem, match=reason.replace("(", r"\(")):
        parse_parameters(source)


def test_record_writes_plain_data_only_when_asked(tmp_path, monkeypatch):
    import numpy as np
    import pandas as pd

    from statbox.courses.results import RESULTS_ENV, read_results, record

    monkeypatch.delenv(RESULTS_ENV, raising=False)
    assert record(n=np.int64(3)) == {"n": 3}
    assert list(tmp_path.iterdir()) == []
    target = tmp_path / "results.json"
    monkeypatch.setenv(RESULTS_ENV, str(target))
    record(calls=pd.Series([2, 5], index=["Port A", "Port B"]), share=np.float64(0.25))
    record(n=7)
    assert read_results(target) == {"calls": {"Port A": 2, "Port B": 5}, "share": 0.25, "n": 7}
