"""Every lesson and reference solution runs on the samples and computes the right figures."""

from __future__ import annotations

import pytest

from tests.curriculum.conftest import course_notebooks, load_verifier

pytestmark = pytest.mark.curriculum


@pytest.mark.parametrize(("course_id", "notebook"), course_notebooks())
def test_notebook_runs_and_its_figures_agree(
    course_id, notebook, courses, run_notebook, sample_data
):
    expected = load_verifier(courses[course_id])
    assert notebook in expected, f"{course_id}/grader/verify.py has no check for {notebook}"
    results = run_notebook(course_id, notebook)
    assert results, f"{notebook} recorded no results (statbox.courses.results.record)"
    expected[notebook](results, sample_data)
