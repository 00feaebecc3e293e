"""Every lesson, reference solution and exercise template runs on the samples, and the
figures it computes agree with what its course's grader/verify.py recomputes another way."""

from __future__ import annotations

import pytest

from tests.curriculum.conftest import curriculum_jobs

pytestmark = pytest.mark.curriculum


@pytest.mark.parametrize("notebook", sorted(curriculum_jobs()))
def test_notebook_runs_and_its_figures_agree(notebook, curriculum_runs):
    run = curriculum_runs[notebook]
    assert run.ok, f"{notebook}: {run.failure}\n  executed notebook: {run.output}"
