"""A course on the real local stack: ``statbox course publish`` puts the Dask course into an
analyst's home, and its first lesson runs there with ``use_dask = True`` on a real Dask
Gateway cluster (``Gateway()`` with no arguments), printing the dashboard link and computing
the same port calls as the AIS course's verifier finds by walking the reports."""

from __future__ import annotations

import json
import textwrap

import pytest

from statbox.cli import main
from statbox.courses import load_course
from statbox.courses.run import load_verifier
from tests.conftest import REPO
from tests.integration.hubclient import HubUser

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAMPLES = REPO / "data"  # the data root of the stack's settings
LESSON = "01-dask-port-calls.ipynb"

RUN_LESSON = textwrap.dedent(
    """
    import json, os, pathlib
    import papermill

    home = pathlib.Path.home()
    os.environ["STATBOX_RESULTS"] = str(home / "results.json")
    folder = home / "courses" / "scaling-with-dask"
    papermill.execute_notebook(
        str(folder / "{lesson}"), str(home / "executed.ipynb"), cwd=str(folder),
        parameters={{"use_dask": True, "workers": 2, "worker_cores": 1, "worker_memory": 1}},
        kernel_name="python3", progress_bar=False,
    )
    print(json.dumps(json.loads((home / "results.json").read_text())))
    """
).format(lesson=LESSON)


@pytest.fixture(scope="module", autouse=True)
def samples(repo_samples) -> None:
    """The lesson reads the sample data of the stack's data root."""


def test_published_dask_lesson_runs_on_a_gateway_cluster(
    local_stack, stack_settings, passwords, capsys
):
    state = stack_settings.parent / "state"
    common = ["--config", str(stack_settings), "--state-dir", str(state)]
    argv = ["course", "publish", "scaling-with-dask", "--cohort", "analysts"]
    assert main([*argv, *common]) == 0
    assert "Published scaling-with-dask to cohort analysts" in capsys.readouterr().out
    # ana opens it (the classroom page does this when she clicks it)
    assert main(["course", "open", "scaling-with-dask", "--as", "ana", *common]) == 0
    home = state / "homes" / "ana"
    assert (home / "courses" / "scaling-with-dask" / LESSON).is_file()
    assert not (home / "courses" / "scaling-with-dask" / "grader").exists()

    ana = HubUser(local_stack.base_url, "ana")
    ana.login(passwords["user"])
    ana.create_token()
    ana.start_server()
    result = ana.run(RUN_LESSON, timeout=420)
    assert result.error is None, result.stderr[-3000:]
    results = result.json()

    executed = json.loads((home / "executed.ipynb").read_text())
    printed = "".join(
        "".join(output.get("text", ""))
        for cell in executed["cells"]
        for output in cell.get("outputs", [])
    )
    assert "Dashboard: " in printed and "/services/dask-gateway/clusters/" in printed
    assert "core-hours" in printed
    course = load_course(REPO / "curriculum" / "scaling-with-dask")
    load_verifier(course)[LESSON](results, SAMPLES)  # the same figures as on the samples
    listed = ana.api("GET", "/services/dask-gateway/api/v1/clusters/", scheme="jupyterhub")
    assert listed.json() == {} or all(c["status"] != "RUNNING" for c in listed.json().values())
