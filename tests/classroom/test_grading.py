"""A whole course through the classroom library, graded by the real pipeline (real kernels in
the real sandbox): three trainees each open their own variant, one answers right, one
partly, one copies another's answers; all submit; the instructor grades as a background job
whose progress is readable while it runs; the report is that run's; a revoked certificate is
never listed as passed; each trainee reads their own released result and nobody else's."""

from __future__ import annotations

import csv
import json
import time

import pytest

from statbox.certify.certificates import Keys, certificate_id, revoke
from statbox.certify.exercise import find_course, load_exercise
from statbox.certify.report import run_attempts
from statbox.classroom import Actor, NotAllowed
from tests.certify.conftest import with_answers, with_cell
from tests.classroom.conftest import Site, actor

COURSE = "shop-prices"
EXERCISE = "exercise/exercise.ipynb"
ALICE_NAME = "أليس مبابازي"


@pytest.mark.usefixtures("sandbox")
def test_a_cohort_from_publication_to_released_feedback(site: Site, data_root):
    room = site.classroom
    room.publish(actor("ines"), COURSE, "kigali")
    opened = {name: room.open_course(actor(name), COURSE) for name in ("bob", "carol")}
    # alice signed in through an identity provider that sent her full name (the hub's
    # user_info.name): her certificate prints it
    alice = Actor.user("alice", full_name=ALICE_NAME)
    opened = {"alice": room.open_course(alice, COURSE), **opened}
    assert len({o.variant["seed"] for o in opened.values()}) == 3
    solution = (site.root / "curriculum" / COURSE / "grader" / "solution.ipynb").read_bytes()
    exercise = load_exercise(find_course(site.root / "curriculum", COURSE))
    alice_right = exercise.reference({**exercise.allowed, **opened["alice"].variant}, data_root)
    work = {name: site.home_course(name) / EXERCISE for name in opened}
    work["alice"].write_bytes(solution)  # right
    work["bob"].write_bytes(with_cell(solution, "mean_price = None  # not done yet"))  # partly
    work["carol"].write_bytes(with_answers(work["carol"], alice_right))  # alice's answers
    for name in opened:
        room.submit(actor(name), COURSE)

    status = room.start_grading(actor("ines"), "kigali", COURSE, background=True)
    assert (status.total, status.trainees) == (3, ["alice", "bob", "carol"])
    seen = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        now = room.job(actor("ines"), "kigali", COURSE, status.job)
        seen.append((now.state, now.done))
        if now.state in ("done", "failed"):
            break
        time.sleep(0.2)
    room.wait(status.job)
    assert now.state == "done", now.current
    assert ("running", 0) in seen or any(s == "running" for s, _ in seen), seen
    assert now.done == 3
    with pytest.raises(NotAllowed):
        room.job(actor("bob"), "kigali", COURSE, status.job)

    run = room.report(actor("ines"), "kigali", COURSE, status.job)
    by = {a.trainee: a for a in run_attempts(run, room.grading.database)}
    assert (by["alice"].total, by["alice"].passed) == (10, True), by["alice"].reason
    assert by["bob"].scores["mean_price"] == 0 and 0 < by["bob"].total < 10
    carol_right = exercise.reference({**exercise.allowed, **opened["carol"].variant}, data_root)
    differing = [t for t in alice_right if alice_right[t] != carol_right[t]]
    assert differing and all(by["carol"].scores[t] == 0 for t in differing)
    assert by["carol"].total < 10
    with open(run / "results.csv") as handle:
        results = {r["trainee"]: (r["score"], r["passed"]) for r in csv.DictReader(handle)}
    with open(run / "report.csv") as handle:
        report = {r["trainee"]: (r["score"], r["passed"]) for r in csv.DictReader(handle)}
    assert report == results
    issued = json.loads((run / "certificates" / "alice.json").read_text())
    assert issued["record"]["name"] == ALICE_NAME

    # Nothing released yet: nobody reads a result; then each reads their own only.
    assert room.my_result(actor("alice"), COURSE) is None
    assert room.release(actor("ines"), "kigali", COURSE) == ["alice", "bob", "carol"]
    mine = room.my_result(actor("bob"), COURSE)
    assert mine is not None and mine.trainee == "bob" and mine.total == by["bob"].total
    assert {t.id: t.points for t in mine.tasks} == by["bob"].scores
    assert all(t.feedback for t in mine.tasks)

    # Re-grading one trainee is one job over their snapshot alone.
    again = room.start_grading(actor("ines"), "kigali", COURSE, trainee="bob", background=False)
    assert (again.state, again.trainees, again.done) == ("done", ["bob"], 1)

    # A revoked certificate: the report of the same run lists alice's as revoked, no files.
    revoke(Keys(site.state), certificate_id(by["alice"]), "copied from a classmate")
    room.report(actor("ines"), "kigali", COURSE, status.job)
    with open(run / "report.csv") as handle:
        row = {r["trainee"]: r for r in csv.DictReader(handle)}["alice"]
    assert row["passed"] == "certificate revoked: copied from a classmate"
    assert not (run / "certificates" / "alice.json").exists()
    assert "alice.pdf" not in (run / "report.html").read_text()
    progress = json.loads((run.parent / "progress.json").read_text())
    assert progress["state"] == "done"
