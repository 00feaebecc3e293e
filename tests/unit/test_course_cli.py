"""``statbox course list | show | publish``: what they print, and exit 2 with one line per
problem (file, line, key) for bad course files or arguments, before anything is written.
(``check`` runs kernels: see tests/curriculum/test_check_command.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from statbox.cli import main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "courses"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def site(tmp_path):
    """A settings file over a curriculum holding a copy of the sample course."""
    shutil.copytree(FIXTURES / "sample-course", tmp_path / "curriculum" / "sample-course")
    settings = tmp_path / "statbox.yaml"
    settings.write_text(
        "paths:\n  curriculum: curriculum\n  state_dir: state\n"
        "cohorts: [cohort-a]\n"
        "groups:\n  cohort-a: [alice, bob]\n"
        "roles:\n  instructor:\n    users: [ines]\n"
    )
    return tmp_path


def test_list_shows_each_course(capsys, site):
    code, out, _ = run(capsys, "course", "list", "--config", str(site / "statbox.yaml"))
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:3] == ["COURSE", "LEVEL", "TIME"]
    assert row.split()[:6] == ["sample-course", "introductory", "1h00", "1", "10", "pts,"]


def test_show_lists_outcomes_lessons_and_tasks(capsys, site):
    code, out, _ = run(
        capsys, "course", "show", "sample-course", "--config", str(site / "statbox.yaml")
    )
    assert code == 0
    assert "  1. Adding  (01-lesson.ipynb)" in out
    assert "  - total (10 pts): The sum of the values" in out
    assert "differs per trainee: seed" in out


@pytest.mark.parametrize("name", ["nowhere", "../sample-course", "Sample"])
def test_an_unknown_course_is_bad_input(capsys, site, name):
    code, out, err = run(capsys, "course", "show", name, "--config", str(site / "statbox.yaml"))
    assert (code, out) == (2, "")
    assert "is not a course in" in err and "(courses: sample-course)" in err


def test_bad_course_files_give_one_line_per_problem_with_file_line_and_key(capsys, site):
    broken = site / "curriculum" / "broken"
    shutil.copytree(FIXTURES / "sample-course", broken)
    (broken / "course.yaml").write_text(
        "id: broken\ntitle: Broken\nlevel: expert\nduration: 1h\noutcomes: [x]\n"
        "lessons:\n  - notebook: 01-lesson.ipynb\n    title: A\n    colour: red\n"
    )
    for argv in (["list"], ["check"], ["publish", "broken", "--cohort", "cohort-a"]):
        code, out, err = run(capsys, "course", *argv, "--config", str(site / "statbox.yaml"))
        assert (code, out) == (2, ""), argv
        assert sorted(err.splitlines()) == [
            f"statbox: {broken / 'course.yaml'}:3: level: 'expert': Input should be "
            "'introductory', 'intermediate' or 'advanced'",
            f"statbox: {broken / 'course.yaml'}:9: lessons.0.colour: unknown key; "
            "allowed here: notebook, title",
        ], argv
        assert "Traceback" not in err
    assert not (site / "state").exists(), "a refused publish wrote something"


def homes_of(site):
    """Homes as a first server start leaves them (the spawner makes them)."""
    for user in ("alice", "bob"):
        (site / "state" / "homes" / user).mkdir(parents=True, exist_ok=True)


def test_publish_to_a_cohort_then_again_keeps_an_edit_and_adds_no_file(capsys, site):
    config = str(site / "statbox.yaml")
    homes_of(site)
    argv = ["course", "publish", "sample-course", "--cohort", "cohort-a", "--config", config]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert out.splitlines()[0] == "Published sample-course to cohort cohort-a."
    assert out.splitlines()[1].startswith("  alice: 3 new  (")
    folder = site / "state" / "homes" / "bob" / "courses" / "sample-course"
    lesson = folder / "01-lesson.ipynb"
    lesson.write_text(lesson.read_text().replace("# A lesson", "# My lesson"))
    source = site / "curriculum" / "sample-course" / "01-lesson.ipynb"
    source.write_text(source.read_text().replace("# A lesson", "# A lesson, revised"))
    before = sorted(p.name for p in folder.rglob("*"))

    code, out, _ = run(capsys, *argv, "--deadline", "2026-12-20T17:00")
    assert code == 0
    assert "Published sample-course to cohort cohort-a, deadline 2026-12-20T17:00:00+00:00" in out
    assert "alice: 1 updated, 2 unchanged" in out
    assert "bob: 2 unchanged, 1 kept" in out
    assert "01-lesson.ipynb: changed by bob: kept as they have it" in out
    assert "# My lesson" in lesson.read_text()
    assert sorted(p.name for p in folder.rglob("*")) == before  # no look-alike written


def test_publish_refuses_an_unknown_cohort_and_writes_nothing(capsys, site):
    config = str(site / "statbox.yaml")
    for name in ("alice", "nowhere", "Bad!"):
        code, _, err = run(
            capsys, "course", "publish", "sample-course", "--cohort", name, "--config", config
        )
        assert code == 2, name
        assert "is not a cohort (settings: cohorts: cohort-a)" in err
    assert not (site / "state").exists()


def test_only_the_cohorts_instructor_publishes_as_themselves(capsys, site):
    config = str(site / "statbox.yaml")
    argv = ["course", "publish", "sample-course", "--cohort", "cohort-a", "--config", config]
    code, _, err = run(capsys, *argv, "--as", "alice")
    assert code == 2 and "alice does not teach cohort 'cohort-a'" in err
    code, _, err = run(capsys, *argv, "--as", "ines")  # an instructor, not in cohort-a
    assert code == 2 and "ines does not teach" in err
    assert not (site / "state" / "classroom" / "publications").exists()


def test_an_analyst_only_course_never_reaches_a_trainee(capsys, site):
    course_file = site / "curriculum" / "sample-course" / "course.yaml"
    course_file.write_text(course_file.read_text() + "audience: [analyst, admin]\n")
    config = str(site / "statbox.yaml")
    homes_of(site)
    argv = ["course", "publish", "sample-course", "--cohort", "cohort-a", "--config", config]
    assert run(capsys, *argv)[0] == 0
    assert not (site / "state" / "homes" / "alice" / "courses").exists()
    code, _, err = run(capsys, "course", "open", "sample-course", "--as", "alice", "--config",
                       config)  # fmt: skip
    assert code == 2 and "is not published to a cohort of alice" in err


def test_check_refuses_a_bad_job_count_before_running_anything(capsys, site):
    code, out, err = run(
        capsys, "course", "check", "--jobs", "0", "--config", str(site / "statbox.yaml")
    )
    assert (code, out) == (2, "")
    assert err.strip() == "statbox: --jobs 0: must be at least 1"


def test_publish_gives_each_trainee_the_variant_the_grader_derives(capsys, site):
    import json

    from statbox.certify.variants import cohort_secret, parameters_for
    from statbox.courses import load_course
    from statbox.courses.notebooks import parameters_cell, parse_parameters, source_of

    config = str(site / "statbox.yaml")
    homes_of(site)
    code, _, _ = run(
        capsys, "course", "publish", "sample-course", "--cohort", "cohort-a", "--config", config
    )
    assert code == 0
    course = load_course(site / "curriculum" / "sample-course")
    secret = cohort_secret(site / "state", "cohort-a", create=False)
    seen = {}
    for user in ("alice", "bob"):
        copy = site / "state" / "homes" / user / "courses" / "sample-course" / "exercise"
        notebook = json.loads((copy / "exercise.ipynb").read_text())
        _, cell = parameters_cell(notebook)
        values = parse_parameters(source_of(cell))
        expected = parameters_for(course, user, secret)
        assert {name: values[name] for name in expected} == expected
        seen[user] = expected
    assert seen["alice"] != seen["bob"]
