"""Publishing a course into trainees' homes: never grader/, never a trainee's edit lost,
the same material twice changes nothing, a target in the way stops everything before a write."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import threading
from pathlib import Path

import pytest

from statbox.courses import load_course
from statbox.courses.publish import (
    Outcome,
    material,
    outside_audience,
    publish_course,
    resolve_trainees,
)
from statbox.errors import BadInput
from statbox.settings.model import parse_settings
from tests.racing import exchange

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "courses"


@pytest.fixture
def course(tmp_path):
    """A copy of the sample course (which has grader/), with a hidden file and a cache."""
    directory = tmp_path / "curriculum" / "sample-course"
    shutil.copytree(FIXTURES / "sample-course", directory)
    (directory / ".secret-notes").write_text("not for trainees")
    (directory / "exercise" / "__pycache__").mkdir()
    (directory / "exercise" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    return load_course(directory)


def course_dir(state: Path, user: str) -> Path:
    return state / "homes" / user / "courses" / "sample-course"


def files_under(directory: Path) -> set[str]:
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}


def edit_notebook(path: Path, text: str) -> None:
    notebook = json.loads(path.read_text())
    notebook["cells"].append({"cell_type": "markdown", "id": "x", "metadata": {}, "source": text})
    path.write_text(json.dumps(notebook))


def outcomes(published, user: str) -> dict[str, Outcome]:
    return {p.path: p.outcome for p in published if p.user == user}


def test_material_is_everything_but_grader_hidden_files_and_caches(course):
    assert material(course) == ["01-lesson.ipynb", "course.yaml", "exercise/exercise.ipynb"]


def test_publish_copies_the_material_into_each_home(course, tmp_path):
    state = tmp_path / "state"
    published = publish_course(course, ["alice", "bob"], state)
    for user in ("alice", "bob"):
        target = course_dir(state, user)
        assert files_under(target) == set(material(course))
        assert (target / "01-lesson.ipynb").read_bytes() == course.path(
            "01-lesson.ipynb"
        ).read_bytes()
        assert set(outcomes(published, user).values()) == {Outcome.new}
    assert not list(state.rglob("grader")), "grader/ must never reach a home"


def test_publishing_twice_keeps_the_trainees_edits_and_updates_the_rest(course, tmp_path):
    state = tmp_path / "state"
    publish_course(course, ["alice", "bob"], state)
    alice = course_dir(state, "alice")
    edit_notebook(alice / "01-lesson.ipynb", "alice's notes")
    mine = (alice / "01-lesson.ipynb").read_bytes()
    # The course is updated: both notebooks change.
    edit_notebook(course.path("01-lesson.ipynb"), "a better explanation")
    edit_notebook(course.path("exercise/exercise.ipynb"), "a hint")

    published = publish_course(course, ["alice", "bob"], state)

    assert (alice / "01-lesson.ipynb").read_bytes() == mine, "alice's edit was overwritten"
    [conflict] = [p for p in published if p.outcome is Outcome.kept]
    assert (conflict.user, conflict.path) == ("alice", "01-lesson.ipynb")
    assert not [p for p in alice.rglob("*") if ".update-" in p.name], "a look-alike was written"
    # What alice had not touched, and everything of bob's, is the new version.
    assert outcomes(published, "alice")["exercise/exercise.ipynb"] is Outcome.updated
    assert outcomes(published, "bob") == {
        "01-lesson.ipynb": Outcome.updated,
        "course.yaml": Outcome.unchanged,
        "exercise/exercise.ipynb": Outcome.updated,
    }
    for relative in material(course):
        expected = course.path(relative).read_bytes()
        assert (course_dir(state, "bob") / relative).read_bytes() == expected

    # A third time with nothing new: nothing is written, no second copy appears.
    before = files_under(alice)
    again = publish_course(course, ["alice"], state)
    assert files_under(alice) == before
    assert outcomes(again, "alice")["01-lesson.ipynb"] is Outcome.kept
    assert {p.outcome for p in again if p.path != "01-lesson.ipynb"} == {Outcome.unchanged}


def test_a_file_statbox_did_not_write_counts_as_the_trainees(course, tmp_path):
    state = tmp_path / "state"
    target = course_dir(state, "alice")
    target.mkdir(parents=True)
    (target / "01-lesson.ipynb").write_text("{}")  # e.g. the trainee's own file of that name
    published = publish_course(course, ["alice"], state)
    assert (target / "01-lesson.ipynb").read_text() == "{}"
    assert outcomes(published, "alice")["01-lesson.ipynb"] is Outcome.kept


def test_personalise_changes_only_the_exercise_template_per_trainee(course, tmp_path):
    state = tmp_path / "state"
    seen: list[str] = []

    def personalise(user: str, notebook: dict) -> dict:
        seen.append(user)
        notebook["metadata"]["statbox"] = {"seed": len(user)}
        return notebook

    publish_course(course, ["al", "barbara"], state, personalise=personalise)
    assert sorted(seen) == ["al", "barbara"]
    for user in ("al", "barbara"):
        template = json.loads((course_dir(state, user) / "exercise/exercise.ipynb").read_text())
        assert template["metadata"]["statbox"] == {"seed": len(user)}
        lesson = course_dir(state, user) / "01-lesson.ipynb"
        assert lesson.read_bytes() == course.path("01-lesson.ipynb").read_bytes()

    # Personalised and untouched, it is updated on a new personalisation; edited, it is kept.
    edit_notebook(course_dir(state, "barbara") / "exercise/exercise.ipynb", "my work")
    second = publish_course(course, ["al", "barbara"], state, personalise=lambda u, nb: nb)
    assert outcomes(second, "al")["exercise/exercise.ipynb"] is Outcome.updated
    assert outcomes(second, "barbara")["exercise/exercise.ipynb"] is Outcome.kept


def test_a_link_in_the_way_stops_publishing_before_anything_is_written(course, tmp_path):
    state = tmp_path / "state"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = course_dir(state, "bob")
    target.mkdir(parents=True)
    (target / "exercise").symlink_to(elsewhere)
    with pytest.raises(BadInput) as raised:
        publish_course(course, ["alice", "bob"], state)
    assert any("bob:" in m and "symbolic link" in m for m in raised.value.messages)
    assert not course_dir(state, "alice").exists(), "alice's copy was written before the check"
    assert list(elsewhere.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files to another account")
def test_files_are_owned_by_the_account_servers_run_as(course, tmp_path):
    nobody = pwd.getpwnam("nobody")
    state = tmp_path / "state"
    publish_course(course, ["alice"], state, owner=nobody)
    home = state / "homes" / "alice"
    for path in [home, *home.rglob("*")]:
        assert (path.stat().st_uid, path.stat().st_gid) == (nobody.pw_uid, nobody.pw_gid), path
    assert (state / "homes").stat().st_uid == 0


SETTINGS = parse_settings(
    {
        "groups": {"cohort-a": ["alice", "bob"], "analysts": ["ana"], "empty": []},
        "roles": {"analyst": {"groups": ["analysts"]}, "instructor": {"users": ["ines"]}},
    }
)


def test_trainees_are_users_and_members_of_groups():
    assert resolve_trainees(SETTINGS, ["cohort-a", "carol", "bob"]) == ["alice", "bob", "carol"]


def test_bad_targets_are_each_reported():
    with pytest.raises(BadInput) as raised:
        resolve_trainees(SETTINGS, ["Not A Name", "empty", "ok"])
    messages = raised.value.messages
    assert len(messages) == 2
    assert "'Not A Name': neither a group" in messages[0] and "cohort-a" in messages[0]
    assert "empty: the group has no members" in messages[1]


def test_users_outside_the_course_audience(course):
    for_analysts = course.course.model_copy(update={"audience": ["analyst", "admin"]})
    loaded = type(course)(for_analysts, course.directory)
    assert outside_audience(SETTINGS, loaded, ["ana", "alice", "ines"]) == [
        "alice (trainee)",
        "ines (instructor)",
    ]


def test_swapping_a_folder_for_a_link_while_publishing_writes_nothing_elsewhere(course, tmp_path):
    """alice swaps her exercise folder with a link to bob's (renameat2 RENAME_EXCHANGE) in a
    loop while the course is published to her again and again: a check by path then a write
    by path lands her notebook in bob's folder; descriptors opened without following a link
    never do."""
    state = tmp_path / "state"
    publish_course(course, ["alice", "bob"], state)
    mine = course_dir(state, "alice")
    victim = course_dir(state, "bob")
    before = {p: p.read_bytes() for p in victim.rglob("*") if p.is_file()}
    swap = mine / "swap"
    swap.symlink_to(victim)
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            exchange(mine / "exercise", swap)

    flipper = threading.Thread(target=flip, daemon=True)
    flipper.start()
    refused = 0
    crashed: list[OSError] = []
    try:
        for round_ in range(300):  # a new version each round: each one is written

            def personalise(user: str, notebook: dict, n: int = round_) -> dict:
                return {**notebook, "metadata": {**notebook["metadata"], "round": n}}

            try:
                publish_course(course, ["alice"], state, personalise=personalise)
            except BadInput as exc:
                assert "symbolic link" in str(exc.messages), exc.messages
                refused += 1
            except OSError as exc:  # kept: what landed in bob's folder is asserted first
                crashed.append(exc)
    finally:
        stop.set()
        flipper.join(10)
    assert {p: p.read_bytes() for p in victim.rglob("*") if p.is_file()} == before
    assert crashed == []  # a swap is refused with one clear message, never a traceback
    assert refused < 300  # some rounds did write (into alice's own folder)
