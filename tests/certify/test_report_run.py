"""The report is the run's: graded again later (a resubmission), the first run's report still
agrees with that run's results.csv, not with whatever the store holds last."""

from __future__ import annotations

import csv

import pytest

from statbox.certify.certificates import Keys
from statbox.certify.report import Issuing, write_report
from tests.certify.conftest import SAMPLE

pytestmark = [pytest.mark.certify, pytest.mark.usefixtures("sandbox")]

SOLUTION = SAMPLE / "grader" / "solution.ipynb"
TEMPLATE = SAMPLE / "exercise" / "exercise.ipynb"


def rows(path) -> dict[str, tuple[str, str]]:
    with open(path) as handle:
        return {r["trainee"]: (r["score"], r["passed"]) for r in csv.DictReader(handle)}


def test_a_report_agrees_with_its_runs_results_after_a_later_run(grading, sample_exercise):
    first = grading.run({"alice": SOLUTION.read_bytes()}, out="first", workers=1)
    later = grading.run({"alice": TEMPLATE.read_bytes()}, out="later", workers=1)
    assert first.attempts[0].total == 10 and later.attempts[0].total == 0
    keys = Keys(grading.state_dir)
    write_report(first.out, sample_exercise, keys, Issuing("Test hub", "http://127.0.0.1:8000"))
    assert (
        rows(first.out / "report.csv")
        == rows(first.out / "results.csv")
        == {"alice": ("10", "yes")}
    )
    assert (first.out / "certificates" / "alice.json").is_file()
    write_report(later.out, sample_exercise, keys, Issuing("Test hub", "http://127.0.0.1:8000"))
    assert rows(later.out / "report.csv") == rows(later.out / "results.csv")
