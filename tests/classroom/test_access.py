"""Attacks on the classroom library: who may publish, open, submit, collect and grade what.

No kernels here (grading: test_grading.py). Each test is an attack a trainee or an
instructor could try through the library the web service calls per request.
"""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import timedelta

import pytest

from statbox.certify.variants import cohort_secret, parameters_for
from statbox.classroom import Actor, NotAllowed, NotFound
from statbox.courses.model import load_course
from tests.classroom.conftest import ANALYST_ONLY, Site, actor

COURSE = "shop-prices"
EXERCISE = "exercise/exercise.ipynb"


def published(site: Site, cohort: str = "kigali", course: str = COURSE, **kw) -> None:
    teacher = {"kigali": "ines", "lima": "ivan"}[cohort]
    site.classroom.publish(actor(teacher), course, cohort, **kw)


def parameters_cell(path) -> str:
    notebook = json.loads(path.read_text())
    for cell in notebook["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return "".join(cell["source"])
    raise AssertionError("no parameters cell")


def test_only_an_instructor_of_the_cohort_publishes_to_it(site: Site):
    room = site.classroom
    with pytest.raises(NotAllowed):
        room.publish(actor("ivan"), COURSE, "kigali")  # instructor of lima
    with pytest.raises(NotAllowed):
        room.publish(actor("alice"), COURSE, "kigali")  # a trainee of kigali
    with pytest.raises(NotAllowed):
        room.publish(Actor.user("mallory", ["kigali"]), COURSE, "kigali")  # claims the group
    assert not (site.state / "classroom" / "publications").exists()
    room.publish(actor("ines"), COURSE, "kigali")
    assert [p.course for p in room.publications(actor("alice"))] == [COURSE]


def test_publishing_to_an_unknown_name_is_refused_and_creates_nothing(site: Site):
    for name in ("nowhere", "alice", "../kigali"):
        with pytest.raises(NotFound, match="is not a cohort"):
            site.classroom.publish(Actor.operator(), COURSE, name)
    assert not (site.state / "homes").exists()
    assert not (site.state / "classroom" / "publications").exists()


def test_a_trainee_sees_only_their_cohorts_courses_their_role_may_take(site: Site):
    published(site, course=COURSE)
    published(site, course=ANALYST_ONLY)
    room = site.classroom
    assert [p.course for p in room.publications(actor("alice"))] == [COURSE]
    assert room.publications(actor("dora")) == []  # trainee of lima
    assert room.publications(actor("ivan")) == []  # instructor of lima
    assert {p.course for p in room.publications(actor("ines"))} == {COURSE, ANALYST_ONLY}
    with pytest.raises(NotFound):
        room.open_course(actor("alice"), ANALYST_ONLY)
    with pytest.raises(NotFound):
        room.open_course(actor("dora"), COURSE)
    room.open_course(actor("alice"), COURSE)
    home = site.state / "homes" / "alice"
    assert sorted(p.name for p in (home / "courses").iterdir()) == [COURSE]
    assert not list(home.rglob("README.md")) and not list(home.rglob("grader"))


def test_each_trainee_opens_their_own_variant_in_the_notebook_they_work_in(site: Site):
    published(site)
    room = site.classroom
    loaded = load_course(site.root / "curriculum" / COURSE)
    secret = cohort_secret(site.state, "kigali", create=False)
    seeds = {}
    for name in ("alice", "bob", "carol"):
        opened = room.open_course(actor(name), COURSE)
        assert opened.exercise == EXERCISE and opened.cohort == "kigali"
        expected = parameters_for(loaded, name, secret)
        assert opened.variant == expected
        cell = parameters_cell(site.home_course(name) / EXERCISE)
        assert f"seed = {expected['seed']!r}  # your variant" in cell
        seeds[name] = expected["seed"]
    assert len(set(seeds.values())) == 3


def test_the_default_copy_an_old_server_start_left_is_replaced_by_the_variant(site: Site):
    published(site)
    home = site.home_course("alice")
    (home / "exercise").mkdir(parents=True)
    template = site.root / "curriculum" / COURSE / EXERCISE
    (home / EXERCISE).write_bytes(
        template.read_bytes()
    )  # as a server start of an older Statbox copied it
    site.classroom.open_course(actor("alice"), COURSE)
    assert "# your variant" in parameters_cell(home / EXERCISE)


def test_opening_and_publishing_again_adds_no_file_and_keeps_edits(site: Site):
    published(site)
    room = site.classroom
    room.open_course(actor("alice"), COURSE)
    notebook = site.home_course("alice") / EXERCISE
    edited = notebook.read_text().replace("# your variant", "# your variant; my notes")
    notebook.write_text(edited)
    before = sorted(p.name for p in site.home_course("alice").rglob("*"))
    published(site, deadline=site.clock() + timedelta(days=3))
    opened = room.open_course(actor("alice"), COURSE)
    assert sorted(p.name for p in site.home_course("alice").rglob("*")) == before
    assert notebook.read_text() == edited
    assert {f.path: f.outcome.value for f in opened.files}[EXERCISE] == "kept"
    assert not [p for p in site.state.rglob("*") if ".update-" in p.name]


def test_a_submission_is_a_private_snapshot_with_its_hash_and_late_ones_are_marked(site: Site):
    published(site, deadline=site.clock() + timedelta(hours=2))
    room = site.classroom
    room.open_course(actor("alice"), COURSE)
    work = site.home_course("alice") / EXERCISE
    first = room.submit(actor("alice"), COURSE)
    assert first.sha256 == hashlib.sha256(work.read_bytes()).hexdigest() and not first.late
    snapshot = site.state / "classroom" / "submissions" / "kigali" / COURSE / "alice" / "1.ipynb"
    assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
    assert stat.S_IMODE(snapshot.parent.stat().st_mode) == 0o700
    work.write_text(work.read_text().replace("# your variant", "# second try"))
    site.clock.advance(hours=1)
    second = room.submit(actor("alice"), COURSE)
    site.clock.advance(hours=2)  # past the deadline
    late = room.submit(actor("alice"), COURSE)
    assert (second.late, late.late) == (False, True)
    records = room.my_submissions(actor("alice"), COURSE)
    assert [r.number for r in records] == [1, 2, 3]
    assert room.chosen(records) == second  # the latest made by the deadline counts
    rows = {r.trainee: r for r in room.roster(actor("ines"), "kigali", COURSE)}
    assert rows["alice"].submissions == 3 and rows["alice"].latest == second
    assert rows["bob"].opened_at is None and rows["bob"].latest is None


def test_the_instructor_sees_a_copied_notebook_even_with_metadata_and_outputs_changed(
    site: Site,
):
    published(site)
    room = site.classroom
    for name in ("alice", "bob", "carol"):
        room.open_course(actor(name), COURSE)
    alices = site.home_course("alice") / EXERCISE
    alices.write_text(alices.read_text().replace("# your variant", "answer = 42"))
    room.submit(actor("alice"), COURSE)
    room.submit(actor("bob"), COURSE)  # his exercise as published: no copy of anyone
    carols = site.home_course("carol") / EXERCISE
    carols.write_bytes(alices.read_bytes())
    room.submit(actor("carol"), COURSE)

    def same() -> dict[str, tuple[str, ...]]:
        return {r.trainee: r.same_as for r in room.roster(actor("ines"), "kigali", COURSE)}

    assert same() == {"alice": ("carol",), "bob": (), "carol": ("alice",)}
    notebook = json.loads(carols.read_text())
    notebook["metadata"]["mine"] = "carol"
    for cell in notebook["cells"]:
        cell["metadata"] = {"collapsed": True}
        if cell["cell_type"] == "code":
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "42"}]
            cell["execution_count"] = 7
    notebook["cells"].append({"cell_type": "code", "metadata": {}, "source": "  \n"})
    carols.write_text(json.dumps(notebook, indent=2))
    room.submit(actor("carol"), COURSE)
    assert same() == {"alice": ("carol",), "bob": (), "carol": ("alice",)}
    with pytest.raises(NotAllowed):  # a trainee never sees who copied whom
        room.roster(actor("carol"), "kigali", COURSE)


def test_a_submitted_link_is_refused(site: Site):
    published(site)
    site.classroom.open_course(actor("bob"), COURSE)
    site.classroom.open_course(actor("alice"), COURSE)
    mine = site.home_course("bob") / EXERCISE
    mine.unlink()
    mine.symlink_to(site.home_course("alice") / EXERCISE)  # submit alice's work as mine
    with pytest.raises(Exception, match="symbolic link"):
        site.classroom.submit(actor("bob"), COURSE)


def test_trainees_cannot_reach_anything_of_another_trainee(site: Site):
    published(site)
    published(site, "lima")
    room = site.classroom
    for name in ("alice", "bob"):
        room.open_course(actor(name), COURSE)
        room.submit(actor(name), COURSE)
    out = site.root / "stolen"
    for thief in ("bob", "dora"):  # same cohort, other cohort
        with pytest.raises(NotAllowed):
            room.roster(actor(thief), "kigali", COURSE)
        with pytest.raises(NotAllowed):
            room.members(actor(thief), "kigali")
        with pytest.raises(NotAllowed):
            room.collect(actor(thief), "kigali", COURSE, out)
        with pytest.raises(NotAllowed):
            room.start_grading(actor(thief), "kigali", COURSE, trainee="alice")
        with pytest.raises(NotAllowed):
            room.release(actor(thief), "kigali", COURSE)
    assert not out.exists()
    # Their own records only: bob's list is bob's; dora's is of lima and empty.
    assert {r.trainee for r in room.my_submissions(actor("bob"), COURSE)} == {"bob"}
    assert room.my_submissions(actor("dora"), COURSE) == []
    with pytest.raises(NotFound):
        room.my_submissions(actor("dora"), COURSE, cohort="kigali")
    assert room.my_result(actor("bob"), COURSE) is None


def test_an_instructor_of_one_cohort_cannot_act_on_another(site: Site):
    published(site)
    room = site.classroom
    room.open_course(actor("alice"), COURSE)
    room.submit(actor("alice"), COURSE)
    for call in (
        lambda: room.roster(actor("ivan"), "kigali", COURSE),
        lambda: room.collect(actor("ivan"), "kigali", COURSE, site.root / "x"),
        lambda: room.start_grading(actor("ivan"), "kigali", COURSE),
        lambda: room.release(actor("ivan"), "kigali", COURSE),
        lambda: room.jobs(actor("ivan"), "kigali", COURSE),
        lambda: room.publish(actor("ivan"), COURSE, "kigali"),
    ):
        with pytest.raises(NotAllowed):
            call()
    with pytest.raises(NotAllowed):  # an instructor is no trainee: nothing to submit
        room.submit(actor("ines"), COURSE)


def test_collect_takes_the_members_snapshots_never_homes_nor_instructors(site: Site):
    published(site)
    room = site.classroom
    for name in ("alice", "bob"):
        room.open_course(actor(name), COURSE)
        room.submit(actor(name), COURSE)
    # After submitting, alice changes her home copy: the snapshot counts, not the home.
    work = site.home_course("alice") / EXERCISE
    submitted = work.read_bytes()
    work.write_text("{}")
    # The instructor and an outsider have a copy in their home too.
    for other in ("ines", "zed"):
        (site.home_course(other) / "exercise").mkdir(parents=True)
        (site.home_course(other) / EXERCISE).write_bytes(submitted)
    out = site.root / "collected"
    result = room.collect(actor("ines"), "kigali", COURSE, out)
    assert sorted(result.taken) == ["alice", "bob"] and result.missing == ["carol"]
    assert sorted(p.name for p in out.glob("*.ipynb")) == ["alice.ipynb", "bob.ipynb"]
    assert (out / "alice.ipynb").read_bytes() == submitted
    assert stat.S_IMODE((out / "alice.ipynb").stat().st_mode) == 0o600


def test_a_snapshot_changed_after_submit_is_detected_and_not_graded(site: Site):
    published(site)
    room = site.classroom
    room.open_course(actor("alice"), COURSE)
    room.submit(actor("alice"), COURSE)
    snapshot = site.state / "classroom" / "submissions" / "kigali" / COURSE / "alice" / "1.ipynb"
    snapshot.write_bytes(snapshot.read_bytes().replace(b"your variant", b"your varianT"))
    result = room.collect(actor("ines"), "kigali", COURSE, site.root / "collected")
    assert result.taken == {}
    assert result.tampered and result.tampered[0].startswith("alice: snapshot 1 no longer")


def test_group_claims_from_the_identity_provider_decide_cohorts(site: Site):
    """With an identity provider, groups come with the user: a kigali trainee by provider
    group is a member (remembered once they act), a user without it is not."""
    published(site)
    room = site.classroom
    room.open_course(Actor.user("pat", ["kigali"]), COURSE)
    assert "pat" in room.members(actor("ines"), "kigali")
    with pytest.raises(NotFound):
        room.open_course(Actor.user("quinn", ["lima-alumni"]), COURSE)


def test_delivering_checks_every_home_before_writing_any(site: Site):
    """A link bob planted where the lesson goes stops the delivery to the whole cohort before
    a file is written (a publisher running as root must never follow it)."""
    room = site.classroom
    for name in ("alice", "bob", "carol"):
        (site.state / "homes" / name).mkdir(parents=True)
    planted = site.home_course("bob") / "01-lesson.ipynb"
    planted.parent.mkdir(parents=True)
    planted.symlink_to("/etc/passwd")
    published(site)
    with pytest.raises(Exception, match=r"01-lesson\.ipynb is not a regular file"):
        room.deliver(actor("ines"), COURSE, "kigali")
    assert not site.home_course("alice").exists()
    planted.unlink()
    done = room.deliver(actor("ines"), COURSE, "kigali")
    assert {p.user for p in done} == {"alice", "bob", "carol"}
    assert not (site.state / "classroom" / "opened").exists()  # nobody opened it yet


def test_submits_at_the_same_moment_each_keep_their_snapshot(site: Site):
    from concurrent.futures import ThreadPoolExecutor

    published(site)
    room = site.classroom
    room.open_course(actor("alice"), COURSE)
    with ThreadPoolExecutor(4) as pool:
        records = list(pool.map(lambda _: room.submit(actor("alice"), COURSE), range(8)))
    assert sorted(r.number for r in records) == list(range(1, 9))
    assert len(room.my_submissions(actor("alice"), COURSE)) == 8
