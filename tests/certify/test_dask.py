"""``--dask`` for real: an instructor's grading fans out over a Dask Gateway cluster of the
real local stack (``statbox up``), and gives the same scores as grading on this machine.

Uses the integration tier's ``local_stack`` (started for this module, stopped and checked
empty at the end). The cluster's workers run unprivileged, so their kernels are isolated
with resource limits only (``rlimits``); the checks, references and cohort secret stay in
this process.
"""

from __future__ import annotations

import json

import dask.config
import pytest

from statbox.catalog.samples import generate, is_current
from tests.certify.conftest import Grading, write_secret
from tests.conftest import REPO
from tests.integration.conftest import local_stack, passwords, stack_settings  # noqa: F401
from tests.integration.hubclient import HubUser

pytestmark = [pytest.mark.certify, pytest.mark.integration, pytest.mark.slow]

COURSE = "privacy-techniques"  # small data: kernels stay well inside a worker's memory
COURSE_SOLUTION = REPO / "curriculum" / COURSE / "grader" / "solution.ipynb"
COURSE_TEMPLATE = REPO / "curriculum" / COURSE / "exercise" / "privacy-certification.ipynb"


@pytest.fixture(scope="module", autouse=True)
def samples() -> None:
    """The stack's data root (``{repo}/data``) holds the samples, as the integration tier's
    modules make sure: the instructor's cluster sees the stack's data, nothing else."""
    if not is_current(REPO / "data", "small"):
        generate(REPO / "data", "small", progress=False)


@pytest.fixture
def instructor_gateway(local_stack, passwords, monkeypatch):  # noqa: F811
    """This process configured as the instructor's notebook is for Dask Gateway."""
    ines = HubUser(local_stack.base_url, "ines")
    ines.login(passwords["admin"])
    ines.create_token()
    ines.start_server()
    result = ines.run(
        "import json, os\n"
        "print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('DASK_GATEWAY')}))"
    )
    assert result.error is None, result.stderr
    for name, value in json.loads(result.stdout.strip().splitlines()[-1]).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", ines.token)
    monkeypatch.setenv("STATBOX_CERTIFY_DASK_WORKERS", "2")
    dask.config.refresh()
    yield
    monkeypatch.undo()
    dask.config.refresh()


def test_dask_grading_gives_the_same_scores_as_local_grading(instructor_gateway, tmp_path):
    """A course of the stack's own curriculum, on the stack's data: the instructor's cluster
    runs in her sandbox, which holds the datasets her role is entitled to and nothing else
    (a data root elsewhere on disk is not there for it, by design)."""
    write_secret(tmp_path / "state")
    grading = Grading(
        tmp_path,
        REPO / "data",
        curriculum=REPO / "curriculum",
        catalog=REPO / "catalogs" / "statbox.yaml",
    )
    notebooks = {
        "alice": COURSE_SOLUTION.read_bytes(),
        "bob": COURSE_SOLUTION.read_bytes(),
        "dave": COURSE_TEMPLATE.read_bytes(),
    }
    remote = grading.run(notebooks, course=COURSE, out="remote", dask=True)
    local = grading.run(notebooks, course=COURSE, out="local", workers=3)
    scores = {a.trainee: (a.total, a.passed) for a in remote.attempts}
    assert scores["alice"] == scores["bob"] == (50, True), remote.attempts[0].reason
    assert scores["dave"][1] is False
    assert scores == {a.trainee: (a.total, a.passed) for a in local.attempts}
    assert [a.variant for a in remote.attempts] == [a.variant for a in local.attempts]
    assert (remote.out / "graded" / "alice.ipynb").is_file()
