"""Docker mode: the indicators service runs in the hub's container and its runs in grading
containers (statbox.indicators.container), as in local mode's sandbox.

The shared stack's settings name a folder with one tiny production indicator, ``ticks``
(two weeks of sample period, no schedule): at first start the service backfills it. Checked
through the public port, without signing in: both weeks published with the notebook's
figures, each by one successful run; no grading container is left behind.
"""

from __future__ import annotations

import time

import pytest
import requests

from statbox.contract import GRADING_LABEL, PROJECT_LABEL

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PREFIX = "/services/indicators/"


def public(stack, path: str) -> requests.Response:
    return requests.get(f"{stack.url}{PREFIX}{path}", allow_redirects=False, timeout=60)


def test_the_first_start_backfill_runs_in_grading_containers(stack):
    deadline = time.monotonic() + 300
    observations: list[dict] = []
    while time.monotonic() < deadline:
        answer = public(stack, "api/indicators/ticks/observations")
        if answer.status_code == 200:
            observations = answer.json()["observations"]
            if {o["TIME_PERIOD"] for o in observations} >= {"2026-W01", "2026-W02"}:
                break
        time.sleep(2)
    periods = sorted({o["TIME_PERIOD"] for o in observations})
    assert periods == ["2026-W01", "2026-W02"], stack.log.read_text()[-3000:]
    values = {(o["REF_AREA"], o["TIME_PERIOD"]): float(o["OBS_VALUE"]) for o in observations}
    assert values == {
        ("north", "2026-W01"): 1.0,
        ("south", "2026-W01"): 2.0,
        ("north", "2026-W02"): 2.0,
        ("south", "2026-W02"): 4.0,
    }
    runs = public(stack, "api/indicators/ticks").json()["runs"]
    assert sorted((r["period"], r["outcome"]) for r in runs) == [
        ("2026-W01", "succeeded"),
        ("2026-W02", "succeeded"),
    ], runs
    label = {"label": [f"{PROJECT_LABEL}={stack.names.project}", GRADING_LABEL]}
    assert stack.client.containers.list(all=True, filters=label) == []
