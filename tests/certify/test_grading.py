"""Grading the test exercise for real: fairness, idempotence, the switchable steps, and
the hostile corpus of ``tests/fixtures/submissions`` (one notebook per attack, each stating
its expected outcome in ``metadata.statbox_test``), all in the sandbox."""

from __future__ import annotations

import csv
import hashlib
import json

import nbformat
import pytest

from statbox.certify.isolation import stray_processes
from statbox.certify.store import ResultsStore, default_url
from tests.certify.conftest import SAMPLE, SUBMISSIONS, variant_of, with_answers, with_cell

pytestmark = [pytest.mark.certify, pytest.mark.usefixtures("sandbox")]

SOLUTION = SAMPLE / "grader" / "solution.ipynb"
TEMPLATE = SAMPLE / "exercise" / "exercise.ipynb"
# Chosen so that under the tests' secret every task's right answer differs between them.
ALICE, FRANK = "alice", "frank"


def test_a_cohort_is_graded_fairly(grading, sample_exercise, data_root):
    defaults = sample_exercise.allowed  # the template's parameters, the variant over them
    alice_right = sample_exercise.reference(
        {**defaults, **variant_of(sample_exercise, ALICE)}, data_root
    )
    frank_right = sample_exercise.reference(
        {**defaults, **variant_of(sample_exercise, FRANK)}, data_root
    )
    assert all(alice_right[task] != frank_right[task] for task in alice_right)
    partial = with_cell(SOLUTION, "mean_price = None  # not done yet")
    summary = grading.run(
        {
            "alice": SOLUTION.read_bytes(),
            "bob": SOLUTION.read_bytes(),
            "carol": SOLUTION.read_bytes(),
            "dave": TEMPLATE.read_bytes(),
            "erin": partial,
            FRANK: with_answers(TEMPLATE, alice_right),
        },
        workers=3,
    )
    by = {a.trainee: a for a in summary.attempts}
    variants = {name: by[name].variant["seed"] for name in ("alice", "bob", "carol")}
    assert len(set(variants.values())) == 3, variants  # three different variants
    for name in ("alice", "bob", "carol"):
        assert (by[name].total, by[name].passed) == (10, True), by[name].reason
        assert by[name].variant == variant_of(sample_exercise, name)
    assert (by["dave"].total, by["dave"].passed) == (0, False)
    assert by["erin"].scores == {"total": 4, "mean_price": 0, "peak_week": 3}
    assert by["erin"].passed  # 7 of 10 against a pass mark of 50 %
    assert by[FRANK].total == 0 and not by[FRANK].passed  # alice's answers, frank's variant
    assert by[FRANK].answers == alice_right

    with open(summary.out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["trainee"] for r in rows] == sorted(by)
    assert {r["trainee"]: (r["score"], r["max_score"], r["passed"]) for r in rows}["erin"] == (
        "7",
        "10",
        "yes",
    )
    graded = nbformat.read(summary.out / "graded" / "erin.ipynb", as_version=4)
    assert "Score: 7 / 10" in graded.cells[0].source
    assert "not a number yet" in graded.cells[0].source
    assert graded.metadata["statbox"]["grading"]["scores"]["mean_price"] == 0
    assert not any(c.metadata.get("statbox", {}).get("role") == "answers" for c in graded.cells)
    injected = [c for c in graded.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and f"seed = {by['erin'].variant['seed']}" in injected[0].source


def test_regrading_the_same_submission_is_idempotent(grading):
    notebooks = {"alice": SOLUTION.read_bytes(), "dave": TEMPLATE.read_bytes()}
    first = grading.run(notebooks)
    second = grading.run(notebooks)
    store = ResultsStore(default_url(grading.state_dir))
    rows = store.attempts()
    store.close()
    assert len(rows) == 2
    assert {r.trainee: r.gradings for r in rows} == {"alice": 2, "dave": 2}
    assert [(a.trainee, a.total) for a in first.attempts] == [
        (a.trainee, a.total) for a in second.attempts
    ]
    changed = grading.run({"alice": with_cell(SOLUTION, "# one more look")})
    assert changed.attempts[0].total == 10
    store = ResultsStore(default_url(grading.state_dir))
    assert len(store.attempts(trainee="alice")) == 2  # a new submission is a new attempt
    assert (
        store.latest("default", "shop-prices")[0].submission_hash
        == hashlib.sha256(with_cell(SOLUTION, "# one more look")).hexdigest()
    )
    store.close()


def test_switching_off_the_restore_step_lets_an_edited_protected_cell_through(grading):
    edited = (SUBMISSIONS / "edit-protected.ipynb").read_bytes()
    guarded = grading.run({"mallory": edited}, out="guarded")
    unguarded = grading.run(
        {"mallory": edited}, out="unguarded", disabled_steps=("restore_protected",)
    )
    assert guarded.attempts[0].answers["total"] != 6  # the real values were restored
    assert unguarded.attempts[0].answers["total"] == 6  # sum([1, 2, 3]): its own values


def _corpus() -> list[str]:
    return sorted(p.stem for p in SUBMISSIONS.glob("*.ipynb"))


UNREADABLE = {"reason": "not a notebook", "total": 0}
"""The expectation of a corpus file that is not a notebook at all (it has no metadata)."""


@pytest.fixture(scope="module")
def hostile_batch(tmp_path_factory, data_root):
    from tests.certify.conftest import Grading, write_secret

    root = tmp_path_factory.mktemp("hostile")
    write_secret(root / "state")
    # Generous limits: the machine may be busy, and a flood must fit in one cell's time.
    grading = Grading(root, data_root, time_limit=60, cell_time_limit=15)
    before = {p: p.read_bytes() for p in data_root.rglob("*") if p.is_file()}
    notebooks = {}
    for name in _corpus():
        text = (SUBMISSIONS / f"{name}.ipynb").read_text()
        for placeholder, path in {
            "@SUBMISSIONS@": root / "submissions",
            "@COURSE@": SAMPLE,
            "@STATE@": grading.state_dir,
            "@OUT@": root / "out",
        }.items():
            text = text.replace(placeholder, str(path))
        notebooks[name] = text.encode()
    notebooks["honest"] = SOLUTION.read_bytes()
    summary = grading.run(notebooks, workers=3)
    after = {p: p.read_bytes() for p in data_root.rglob("*") if p.is_file()}
    return summary, before == after, grading


def test_the_hostile_batch_completes_and_leaves_nothing_running(hostile_batch):
    summary, _, grading = hostile_batch
    assert sorted(a.trainee for a in summary.attempts) == sorted([*_corpus(), "honest"])
    honest = next(a for a in summary.attempts if a.trainee == "honest")
    assert (honest.total, honest.passed) == (10, True)
    for index in range(16):  # the uids the run leased, and any a neighbour could have
        assert stray_processes(None, grading.setup().uid_base + index) == []
    assert sorted(p.name for p in (summary.out / "graded").iterdir()) == sorted(
        f"{n}.ipynb" for n in [*_corpus(), "honest"] if n != "not-a-notebook"
    )


@pytest.mark.parametrize("case", _corpus())
def test_a_hostile_submission_is_contained_and_scored_with_a_reason(case, hostile_batch):
    summary, data_intact, _ = hostile_batch
    attempt = next(a for a in summary.attempts if a.trainee == case)
    path = SUBMISSIONS / f"{case}.ipynb"
    try:
        expect = json.loads(path.read_text())["metadata"]["statbox_test"]["expect"]
    except ValueError:
        expect = UNREADABLE
    if "reason" in expect:
        assert expect["reason"] in attempt.reason, attempt.reason
    if "reason_any" in expect:  # e.g. what the cap reports differs by cgroup or rlimit
        assert any(text in attempt.reason for text in expect["reason_any"]), attempt.reason
    if "total" in expect:
        assert attempt.total == expect["total"], (attempt.scores, attempt.reason)
    if "total_at_least" in expect:
        assert attempt.total >= expect["total_at_least"], (attempt.scores, attempt.reason)
    if "answer_total" in expect:
        assert attempt.answers["total"] == expect["answer_total"]
    if expect.get("data_intact"):
        assert data_intact
    assert not attempt.grader_error
