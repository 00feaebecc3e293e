"""The grading steps without a kernel: variants, notebook surgery, checks and their contract,
the results store, certificates and the PDF writer."""

from __future__ import annotations

import copy
import json
import math
import shutil
from datetime import UTC, datetime

import nbformat
import pytest

from statbox.certify import notebook as nbops
from statbox.certify.certificates import Keys, make_record, revoke, sign, verify
from statbox.certify.exercise import find_course, load_exercise
from statbox.certify.pipeline import Attempt, TaskResult, run_check
from statbox.certify.store import ResultsStore
from statbox.certify.variants import (
    cohort_secret,
    derive_parameters,
    make_personaliser,
    personalise_notebook,
)
from statbox.courses.model import Choice, IntegerRange
from statbox.errors import BadInput
from tests.certify.conftest import COURSES, SAMPLE, SECRET

TEMPLATE = SAMPLE / "exercise" / "exercise.ipynb"
INVALID_CHECKS = sorted((COURSES.parent / "certify" / "invalid-checks").glob("*.py"))


def template() -> nbformat.NotebookNode:
    return nbformat.read(TEMPLATE, as_version=4)


# ---------------------------------------------------------------------------- variants


def test_variants_are_deterministic_per_trainee_and_need_the_secret():
    variant = {"seed": IntegerRange(min=0, max=1000), "port": Choice(choices=["A", "B", "C"])}
    first = derive_parameters("c", "e", "alice", SECRET, variant)
    assert first == derive_parameters("c", "e", "alice", SECRET, variant)
    assert 0 <= first["seed"] <= 1000 and first["port"] in {"A", "B", "C"}
    others = [derive_parameters("c", "e", f"t{i}", SECRET, variant)["seed"] for i in range(40)]
    assert len(set(others)) > 30  # spread out, not one shared variant
    other_secret = [
        derive_parameters("c", "e", f"t{i}", b"x" * 32, variant)["seed"] for i in range(40)
    ]
    other_exercise = [
        derive_parameters("c", "e2", f"t{i}", SECRET, variant)["seed"] for i in range(40)
    ]
    assert other_secret != others and other_exercise != others


def test_cohort_secret_is_made_once_private_and_kept(tmp_path):
    secret = cohort_secret(tmp_path, "cohort-2026a")
    path = tmp_path / "secrets" / "certify" / "cohort-2026a.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert cohort_secret(tmp_path, "cohort-2026a") == secret and len(secret) == 32
    with pytest.raises(BadInput, match="cohort"):
        cohort_secret(tmp_path, "../etc")


def test_personalise_writes_the_variant_into_the_parameters_cell_and_metadata():
    loaded = find_course(COURSES, "shop-prices")
    personalise = make_personaliser(loaded, SECRET)
    original = json.loads(TEMPLATE.read_text())
    copy_for_alice = personalise("alice", original)
    seed = derive_parameters(
        "shop-prices", "exercise", "alice", SECRET, loaded.course.exercise.variant
    )["seed"]
    cell = next(c for c in copy_for_alice["cells"] if "parameters" in c["metadata"]["tags"])
    assert cell["source"].splitlines() == [f"seed = {seed}  # your variant", "n = 5"]
    assert copy_for_alice["metadata"]["papermill"]["parameters"] == {"seed": seed}
    assert copy_for_alice["metadata"]["statbox"]["trainee"] == "alice"
    assert "".join(original["cells"][1]["source"]) == "seed = 0\nn = 5"  # input unchanged
    lesson = json.loads((SAMPLE / "01-lesson.ipynb").read_text())
    assert personalise("alice", lesson) == lesson  # it has a `seed` too, but is no exercise
    with pytest.raises(BadInput, match="not parameters"):
        personalise_notebook(original, {"region": "x"}, {})


# ------------------------------------------------------------------------ notebook surgery


def test_restore_puts_back_edited_and_deleted_protected_cells_and_keeps_trainee_work():
    original = template()
    submission = copy.deepcopy(original)
    setup = next(c for c in submission.cells if c.id == "setup")
    setup.source = "values = [1, 2, 3]"
    submission.cells = [c for c in submission.cells if c.id != "task-mean"]
    answer = next(c for c in submission.cells if c.id == "answer-total")
    answer.source = "total = sum(values)"
    extra = nbformat.v4.new_code_cell("helper = 1")
    submission.cells.insert(2, extra)
    restored, notes = nbops.restore_protected(original, submission)
    ids = [c.id for c in restored.cells]
    assert ids[:3] == ["intro", "parameters", extra.id]
    assert "task-mean" in ids and ids.index("task-mean") == ids.index("answer-total") + 1
    by_id = {c.id: c for c in restored.cells}
    assert by_id["setup"].source == next(c for c in original.cells if c.id == "setup").source
    assert by_id["answer-total"].source == "total = sum(values)"
    assert any("was edited" in n for n in notes) and any("was missing" in n for n in notes)


def test_restore_strips_grader_tags_and_roles_from_trainee_cells():
    original = template()
    submission = copy.deepcopy(original)
    forged = nbformat.v4.new_code_cell("seed = 1")
    forged.metadata["tags"] = ["parameters", "injected-parameters", "protected"]
    forged.metadata["statbox"] = {"role": "answers"}
    submission.cells.append(forged)
    restored, _ = nbops.restore_protected(original, submission)
    last = restored.cells[-1]
    assert last.source == "seed = 1" and last.metadata["tags"] == []
    assert "statbox" not in last.metadata


def test_restore_matches_by_position_when_cells_have_no_ids():
    original = template()
    submission = copy.deepcopy(original)
    for cell in submission.cells:
        del cell["id"]
    submission.cells[2].source = "values = []"
    restored, notes = nbops.restore_protected(original, submission)
    assert restored.cells[2].source == original.cells[2].source
    assert len(restored.cells) == len(original.cells) and notes


@pytest.mark.parametrize(
    "name", ["x = 1\nimport os", "__import__('os').system('id')", "seed;", "1seed", "region"]
)
def test_injection_refuses_a_name_that_is_not_an_allow_listed_identifier(name):
    with pytest.raises(nbops.BadParameterName):
        nbops.inject_parameters(template(), {name: 1}, {"seed": 0, "n": 5})


def test_injection_adds_papermills_cell_after_the_parameters_and_records_them():
    nb = template()
    stray = nbformat.v4.new_code_cell("seed = 99")
    stray.metadata["tags"] = ["injected-parameters"]
    nb.cells.append(stray)
    injected = nbops.inject_parameters(nb, {"seed": 42}, {"seed": 0, "n": 5})
    index = next(i for i, c in enumerate(injected.cells) if "parameters" in c.metadata["tags"])
    assert "injected-parameters" in injected.cells[index + 1].metadata["tags"]
    assert "seed = 42" in injected.cells[index + 1].source
    assert injected.cells[-1].source == "seed = 99"  # stays trainee code, never the injection
    assert injected.metadata["papermill"]["parameters"] == {"seed": 42}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"cells": [', "invalid JSON"),
        (b"[1, 2]", "no list of cells"),
        (b'{"cells": [], "nbformat": 3}', "not a version 4 notebook"),
        (
            b'{"cells": [{"cell_type": "rocket"}], "nbformat": 4, "nbformat_minor": 5, '
            b'"metadata": {}}',
            "not a valid notebook",
        ),
        (b"\xff\xfe", "invalid JSON"),
    ],
)
def test_an_unreadable_submission_gets_a_reason(content, reason):
    with pytest.raises(nbops.SubmissionProblem, match=reason):
        nbops.read_submission(content)


def test_answers_are_read_only_from_the_graders_cell():
    nb = nbops.add_answers_cell(template(), ["total"])
    fake = nbformat.v4.new_code_cell("")
    fake.outputs = [nbformat.v4.new_output("display_data", {nbops.ANSWERS_MIME: {"total": 1}})]
    nb.cells.insert(0, fake)
    assert nbops.read_answers(nb) is None
    nb.cells[-1].outputs = [
        nbformat.v4.new_output("display_data", {nbops.ANSWERS_MIME: {"total": 7}})
    ]
    assert nbops.read_answers(nb) == {"total": 7}
    with pytest.raises(nbops.BadParameterName):
        nbops.answers_code(["total); import os; (x"])


# ------------------------------------------------------------------------------ checks


def test_a_check_that_raises_or_misbehaves_scores_zero_with_a_reason():
    def boom(answer, expected):
        raise KeyError("x")

    assert run_check(boom, 1, 1)[0] == 0.0
    assert "could not judge" in run_check(boom, 1, 1)[1]
    assert run_check(lambda a, e: (math.nan, "?"), 1, 1)[0] == 0.0
    assert run_check(lambda a, e: (7, "too generous"), 1, 1)[0] == 1.0
    assert run_check(lambda a, e: (-1, "too harsh"), 1, 1)[0] == 0.0
    assert run_check(lambda a, e: "right", 1, 1)[0] == 0.0
    assert run_check(lambda a, e: (0.5, "two\nlines"), 1, 1) == (0.5, "two lines")


@pytest.mark.parametrize("case", INVALID_CHECKS, ids=lambda p: p.stem)
def test_checks_that_break_the_contract_are_refused_with_the_problem(case, tmp_path):
    expected = case.read_text().splitlines()[0].removeprefix("# expect: ")
    course = tmp_path / "shop-prices"
    shutil.copytree(SAMPLE, course)
    shutil.copy(case, course / "grader" / "checks.py")
    with pytest.raises(BadInput) as raised:
        load_exercise(find_course(tmp_path, "shop-prices"))
    assert any(expected in message for message in raised.value.messages), raised.value.messages
    assert all(str(course / "grader" / "checks.py") in m for m in raised.value.messages)


def test_the_sample_checks_give_partial_credit(data_root, sample_exercise):
    expected = sample_exercise.reference({"seed": 3, "n": 5}, data_root)
    check = sample_exercise.checks["mean_price"]
    assert check(expected["mean_price"], expected["mean_price"])[0] == 1.0
    assert check(expected["mean_price"] * 1.02, expected["mean_price"])[0] == 0.5
    assert check(None, expected["mean_price"])[0] == 0.0


# ---------------------------------------------------------------- store and certificates


def attempt(trainee: str = "alice", total: float = 9, digest: str = "ab" * 32) -> Attempt:
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    return Attempt(
        cohort="cohort-a",
        trainee=trainee,
        course="shop-prices",
        exercise="exercise",
        variant={"seed": 1},
        tasks=[TaskResult("total", total, 10, "ok")],
        total=total,
        max_score=10,
        passed=total >= 5,
        reason="",
        submission_hash=digest,
        grader_version="statbox 0.1.0; grader 1",
        started_at=now,
        finished_at=now,
    )


def test_the_store_keeps_one_row_per_attempt_and_regrading_updates_it(tmp_path):
    store = ResultsStore(f"sqlite:///{tmp_path / 'r.sqlite'}")
    first = store.record(attempt())
    again = store.record(attempt(total=9))
    other = store.record(attempt(digest="cd" * 32, total=4))
    assert first == again != other
    rows = store.attempts(trainee="alice")
    assert [(r.total, r.gradings) for r in rows] == [(9, 2), (4, 1)]
    assert store.latest("cohort-a", "shop-prices")[0].total == 4
    store.close()


def test_a_bad_database_url_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="results store"):
        ResultsStore("nosuchdialect://x")


@pytest.fixture
def certificate(tmp_path) -> tuple[bytes, Keys]:
    store = ResultsStore(f"sqlite:///{tmp_path / 'r.sqlite'}")
    store.record(attempt())
    stored = store.latest("cohort-a", "shop-prices")[0]
    store.close()
    keys = Keys(tmp_path / "state")
    record = make_record(stored, "A sample course", "Statbox Kigali")
    key = keys.signing_key()
    assert key is not None
    return sign(record, key), keys


def test_a_certificate_verifies_and_any_changed_byte_does_not(certificate):
    content, keys = certificate
    verdict = verify(content, keys)
    assert verdict.valid and verdict.message.startswith("valid: alice passed A sample course")
    assert keys.secret_path.stat().st_mode & 0o777 == 0o600
    for index in range(len(content) - 1):  # every byte but the final newline
        changed = bytearray(content)
        changed[index] ^= 0x01
        assert not verify(bytes(changed), keys).valid, (index, chr(content[index]))


def test_verify_says_why_not(certificate, tmp_path):
    content, keys = certificate
    record = json.loads(content)
    record["record"]["score"] = 10
    tampered = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    assert "tampered" in verify(tampered, keys).message
    stranger = Keys(tmp_path / "elsewhere")
    stranger.signing_key()
    assert "unknown key" in verify(content, stranger).message
    assert "not a certificate" in verify(b"hello", keys).message
    revoke(keys, record["record"]["certificate"], "plagiarism found after grading")
    message = verify(content, keys).message
    assert message.startswith("invalid: revoked on ") and "plagiarism" in message


def test_sample_data_is_written_where_the_exercise_reads_it(data_root):
    prices = data_root / "scanner" / "shop_prices" / "prices.csv"
    assert prices.read_text().startswith("shop,week,price")


def test_two_grading_runs_on_one_host_never_share_a_uid(sandbox, tmp_path):
    from statbox.certify.isolation import Job, Limits, SandboxIsolation

    first, second = SandboxIsolation(), SandboxIsolation()
    jobs = [Job(root=tmp_path, slot=slot, limits=Limits()) for slot in range(3)]
    try:
        mine = {first.uid(job) for job in jobs}
        theirs = {second.uid(job) for job in jobs}
        assert len(mine) == len(theirs) == 3 and not mine & theirs
        assert first.uid(jobs[0]) == first.uid(jobs[0])  # a slot keeps its lease
    finally:
        first.close()
        second.close()
    again = SandboxIsolation()
    try:
        assert {again.uid(job) for job in jobs} == mine  # released, so leased again
    finally:
        again.close()
