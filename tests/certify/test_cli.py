"""``statbox certify`` as operators script it: collect, run, report, verify, revoke; bad input
exits 2 with one message per problem and writes nothing."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import stat

import pytest

from statbox.cli import main
from tests.certify.conftest import COURSES, SAMPLE, write_secret
from tests.certify.sampledata import CATALOG

pytestmark = pytest.mark.certify

SOLUTION = SAMPLE / "grader" / "solution.ipynb"
TEMPLATE = SAMPLE / "exercise" / "exercise.ipynb"


@pytest.fixture
def config(tmp_path, data_root):
    state = tmp_path / "state"
    write_secret(state, "cohort-a")
    path = tmp_path / "statbox.yaml"
    path.write_text(
        f"hub: {{name: Statbox Test, region: Kigali}}\n"
        f"paths: {{curriculum: {COURSES}, data_root: {data_root}, state_dir: {state}, "
        f"catalog: {CATALOG}}}\n"
        "cohorts: [cohort-a]\n"
        "groups: {cohort-a: [alice, dave, mallory, carol, ines], other: [olga]}\n"
        "roles: {instructor: {users: [ines]}}\n"
    )
    return path


def certify(config, *args):
    return main(["certify", *args, "--config", str(config)])


def home_file(state, trainee):
    path = state / "homes" / trainee / "courses" / "shop-prices" / "exercise" / "exercise.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def course(config, *args):
    return main(["course", *args, "--config", str(config)])


def test_collect_run_report_verify_and_revoke(config, tmp_path, capsys, sandbox):
    state = tmp_path / "state"
    assert course(config, "publish", "shop-prices", "--cohort", "cohort-a") == 0
    for trainee in ("alice", "dave", "mallory", "olga"):
        code = course(config, "open", "shop-prices", "--as", trainee)
        assert code == (2 if trainee == "olga" else 0), trainee  # olga: not in the cohort
    home_file(state, "alice").write_bytes(SOLUTION.read_bytes())
    home_file(state, "dave").write_bytes(TEMPLATE.read_bytes())
    home_file(state, "mallory").unlink()
    os.symlink(home_file(state, "alice"), home_file(state, "mallory"))  # someone else's work
    for trainee in ("alice", "dave", "mallory"):
        code = course(config, "submit", "shop-prices", "--as", trainee)
        assert code == (2 if trainee == "mallory" else 0), trainee
    printed = capsys.readouterr()
    assert "symbolic link" in printed.err and "Traceback" not in printed.err
    # what is in homes after submitting, the instructor's and outsiders' copies: never taken
    home_file(state, "alice").write_text("{}")
    for other in ("ines", "olga"):
        home_file(state, other).write_bytes(SOLUTION.read_bytes())
    submissions, out = tmp_path / "submissions", tmp_path / "out"

    common = ["--course", "shop-prices", "--exercise", "exercise"]
    collect = ["--course", "shop-prices", "--cohort", "cohort-a", "--out", str(submissions)]
    assert certify(config, "collect", *collect) == 0
    printed = capsys.readouterr()
    assert "Collected the submissions of 2 trainees of cohort-a" in printed.out
    assert "2 submitted nothing (carol, mallory)" in printed.out
    assert sorted(p.name for p in submissions.glob("*.ipynb")) == ["alice.ipynb", "dave.ipynb"]
    assert (submissions / "alice.ipynb").read_bytes() == SOLUTION.read_bytes()
    # a trainee's code solves every variant: no other account may read the copies
    assert stat.S_IMODE(submissions.stat().st_mode) == 0o700
    assert stat.S_IMODE((submissions / "alice.ipynb").stat().st_mode) == 0o600

    # collected for cohort-a: graded with its variants without repeating it, never another's
    mismatch = [*common, "--submissions", str(submissions), "--out", str(tmp_path / "x")]
    assert certify(config, "run", *mismatch, "--cohort", "default", "--quiet") == 2
    assert "holds the submissions of cohort cohort-a" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    run = [*common, "--submissions", str(submissions), "--out", str(out)]
    assert certify(config, "run", *run, "--workers", "2", "--quiet") == 0
    printed = capsys.readouterr().out
    assert "Graded 2 submissions of shop-prices/exercise" in printed
    assert "1 passed, 1 did not" in printed and "isolation: sandbox" in printed
    with open(out / "results.csv") as handle:
        rows = {r["trainee"]: r for r in csv.DictReader(handle)}
    assert (rows["alice"]["score"], rows["alice"]["passed"]) == ("10", "yes")
    assert (rows["dave"]["score"], rows["dave"]["passed"]) == ("0", "no")

    assert certify(config, "report", "--out", str(out)) == 0
    html = (out / "report.html").read_text()
    assert "<svg" in html and "alice" in html and "1 passed" in html
    with open(out / "report.csv") as handle:
        report = list(csv.DictReader(handle))
    assert [(r["trainee"], r["total"], r["mean_price"]) for r in report] == [
        ("alice", "4", "3"),
        ("dave", "0", "0"),
    ]
    certificates = sorted(p.name for p in (out / "certificates").iterdir())
    # dave did not pass
    assert certificates == ["alice.badge.jwt", "alice.html", "alice.json", "alice.pdf"]
    assert (out / "certificates" / "alice.pdf").read_bytes().startswith(b"%PDF-")
    capsys.readouterr()

    record = out / "certificates" / "alice.json"
    assert certify(config, "verify", str(record)) == 0
    verdict = capsys.readouterr().out
    assert "valid: alice passed Shop prices (the certify tests' exercise)" in verdict
    envelope = json.loads(record.read_bytes())
    digest = hashlib.sha256((submissions / "alice.ipynb").read_bytes()).hexdigest()
    assert envelope["record"]["submission_sha256"] == digest
    assert envelope["record"]["score"] == 10 and envelope["record"]["cohort"] == "cohort-a"
    forged = tmp_path / "forged.json"
    forged.write_bytes(record.read_bytes().replace(b'"score":10', b'"score":11'))
    assert certify(config, "verify", str(forged)) == 1
    assert "tampered" in capsys.readouterr().out
    kept = tmp_path / "alice-kept.json"  # the holder's copy: the report removes its own
    kept.write_bytes(record.read_bytes())
    assert certify(config, "revoke", str(record), "--reason", "shared with a classmate") == 0
    assert certify(config, "verify", str(record)) == 1
    assert "revoked" in capsys.readouterr().out
    # the report written again lists alice as revoked, without links, and hands out no copy
    assert certify(config, "report", "--out", str(out)) == 0
    assert "1 revoked" in capsys.readouterr().out
    html = (out / "report.html").read_text()
    assert "certificate revoked: shared with a classmate" in html
    assert "certificates/alice" not in html
    assert list((out / "certificates").iterdir()) == []
    with open(out / "report.csv") as handle:
        assert [r["passed"] for r in csv.DictReader(handle)] == [
            "certificate revoked: shared with a classmate",
            "no",
        ]
    # lifting the bar: an unknown id is refused; the revoked certificate itself stays revoked
    capsys.readouterr()
    assert certify(config, "lift", "f" * 24) == 2
    assert "no revoked certificate" in capsys.readouterr().err
    identity = json.loads(kept.read_bytes())["record"]["certificate"]
    assert certify(config, "lift", identity) == 0
    assert "Lifted" in capsys.readouterr().out
    assert certify(config, "verify", str(kept)) == 1


BAD_RUNS = {
    "unknown-course": (["--course", "nope"], "no such course"),
    "wrong-exercise": (["--exercise", "final"], "has one exercise, 'exercise'"),
    "no-folder": (["--submissions", "@/missing"], "no such folder"),
    "empty-folder": (["--submissions", "@/empty"], "no <trainee>.ipynb files"),
    "bad-trainee-name": (["--submissions", "@/badname"], "is not a trainee's username"),
    "workers": (["--workers", "0"], "give 1 to 64"),
    "cohort": (["--cohort", "Cohort A"], "cohort 'Cohort A'"),
    "out-inside": (["--out", "@/good/out"], "must not be inside the submissions folder"),
}


@pytest.mark.parametrize("case", sorted(BAD_RUNS))
def test_bad_input_exits_2_with_the_problem_and_writes_nothing(case, config, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "badname").mkdir()
    (tmp_path / "badname" / "Alice Smith.ipynb").write_bytes(SOLUTION.read_bytes())
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "alice.ipynb").write_bytes(SOLUTION.read_bytes())
    options = {
        "--course": "shop-prices",
        "--exercise": "exercise",
        "--submissions": str(tmp_path / "good"),
        "--out": str(tmp_path / "out"),
    }
    changes, message = BAD_RUNS[case]
    extra = []
    for flag, value in zip(changes[::2], changes[1::2], strict=True):
        value = value.replace("@", str(tmp_path))
        if flag in options:
            options[flag] = value
        else:
            extra += [flag, value]
    args = [item for pair in options.items() for item in pair] + extra
    assert certify(config, "run", *args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "good" / "out").exists()


def test_report_and_verify_refuse_what_they_cannot_use(config, tmp_path, capsys):
    assert certify(config, "report", "--out", str(tmp_path)) == 2
    assert "run.json" in capsys.readouterr().err
    assert certify(config, "verify", str(tmp_path / "none.json")) == 2
    (tmp_path / "x.json").write_text("{}")
    assert certify(config, "verify", str(tmp_path / "x.json")) == 1
    assert "not a certificate" in capsys.readouterr().out


def test_dask_without_a_gateway_is_one_message_not_a_traceback(
    config, tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("DASK_GATEWAY__ADDRESS", raising=False)
    submissions = tmp_path / "subs"
    submissions.mkdir()
    (submissions / "alice.ipynb").write_bytes(TEMPLATE.read_bytes())
    out = tmp_path / "out"
    args = ["--course", "shop-prices", "--exercise", "exercise", "--submissions", str(submissions)]
    assert certify(config, "run", *args, "--out", str(out), "--dask") == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--dask: no Dask Gateway to grade on" in err
    assert not out.exists()
