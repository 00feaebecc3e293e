"""The indicators service (``/services/indicators/``) on a real local stack.

Indicators (owner ana, an analyst; kernels in the real grading sandbox, no data sources):
``ticks`` (production, every 20 seconds, sample period 2026-W01..W02: published at first
start), ``pilot-one`` (pilot) and ``secret-poc`` (poc), both by hand only. What is checked:
the first start publishes ``ticks``' sample period by itself; its schedule produces runs;
the service killed with SIGKILL between two slots is restarted by the hub and runs the slot
it missed once, and no slot twice; an anonymous visitor reads ``ticks`` and gets 404 for the
poc (as for nothing); a trainee can neither promote (403) nor run ana's indicator; the page
renders in Chromium with its SVG plot, JavaScript off (screenshots in
``tests/artifacts/indicators/``, git-ignored). Tests run in file order and share one stack.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import psutil
import pytest
import requests

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, REPO, require_tool
from tests.integration.hubclient import HubUser

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "/services/indicators/"
ARTIFACTS = REPO / "tests" / "artifacts" / "indicators"
EVERY = 20
"""Seconds between ``ticks``' slots."""

INDICATOR = """\
id: {id}
title: Test ticks ({id})
description: Two made-up series, one point a week, for the tests.
method: |
  Each week's number, and twice it.

  Nothing else.
owner: ana
stage: {stage}
notebook: indicator.ipynb
sources: []
{schedule}
period:
  frequency: weekly
  parameters:
    week: label
{backfill}
series:
  output: series.csv
  dimensions:
    FREQ: {{codes: [W]}}
    REF_AREA: {{}}
    INDICATOR: {{codes: [TICKS]}}
  measure: OBS_VALUE
  attributes:
    UNIT_MEASURE: {{codes: [NUMBER]}}
    OBS_STATUS: {{codes: [A]}}
"""

BODY = """\
number = int(week.split("-W")[1])
with open(output, "w") as handle:
    handle.write("FREQ,REF_AREA,INDICATOR,TIME_PERIOD,OBS_VALUE,UNIT_MEASURE,OBS_STATUS\\n")
    handle.write(f"W,north,TICKS,{week},{number},NUMBER,A\\n")
    handle.write(f"W,south,TICKS,{week},{2 * number},NUMBER,A\\n")
"""


def write_indicator(root: Path, indicator: str, stage: str, cron: str | None, backfill: bool):
    folder = root / indicator
    folder.mkdir(parents=True)
    schedule = f'schedule: {{cron: "{cron}", timezone: UTC}}' if cron else ""
    sample = "  backfill: {first: 2026-W01, last: 2026-W02}" if backfill else ""
    (folder / "indicator.yaml").write_text(
        INDICATOR.format(id=indicator, stage=stage, schedule=schedule, backfill=sample)
    )
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    parameters = nbformat.v4.new_code_cell('week = "2026-W01"\noutput = "series.csv"\n')
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(BODY)]
    nbformat.write(nb, folder / "indicator.ipynb")
    for path in (folder, *folder.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.fixture(scope="module")
def stack_settings(stack_settings):
    """The integration settings with a folder of test indicators."""
    root = stack_settings.parent / "indicators"
    write_indicator(root, "ticks", "production", f"*/{EVERY} * * * * *", backfill=True)
    write_indicator(root, "pilot-one", "pilot", None, backfill=False)
    write_indicator(root, "secret-poc", "poc", None, backfill=False)
    root.chmod(0o755)
    text = stack_settings.read_text()
    text = re.sub(r"^  indicators: .*$", f"  indicators: {root}", text, count=1, flags=re.M)
    assert f"  indicators: {root}\n" in text
    text += "indicators:\n  retries: 0\n  retry_delay_seconds: 0\n"
    stack_settings.write_text(text)
    return stack_settings


def journal(stack, indicator: str = "ticks") -> list[dict]:
    path = stack.state_dir / "indicators" / indicator / "journal.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def wait_for(what, check, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not within {timeout} s")


def service_process(stack) -> psutil.Process | None:
    for process in stack.process_tree():
        try:
            if "statbox.indicators.web" in " ".join(process.cmdline()):
                return process
        except psutil.NoSuchProcess:
            continue
    return None


def anonymous(stack, path: str) -> requests.Response:
    return requests.get(f"{stack.base_url}{PREFIX}{path}", allow_redirects=False, timeout=60)


class Person:
    """Signed in to the hub, then to the service through the hub's OAuth."""

    def __init__(self, stack, name: str, password: str):
        self.user = HubUser(stack.base_url, name)
        self.user.login(password)
        self.user.create_token()
        self.base = f"{stack.base_url}{PREFIX}"
        index = self.user.session.get(f"{self.base}login", timeout=60)
        assert index.status_code == 200, (name, index.status_code, index.text[:300])

    def post_form(self, path: str, data: dict[str, str]) -> requests.Response:
        token = self.user.session.cookies.get("_xsrf", path=PREFIX.rstrip("/")) or (
            self.user.session.cookies.get("_xsrf", path=PREFIX)
        )
        assert token, [(c.name, c.path) for c in self.user.session.cookies]
        return self.user.session.post(
            f"{self.base}{path}", data={**data, "_xsrf": token}, allow_redirects=False, timeout=60
        )


def test_first_start_publishes_the_sample_period(local_stack):
    wait_for("the service answers", lambda: anonymous(local_stack, "").status_code == 200, 60)
    try:
        entries = wait_for(
            "the first-start backfill",
            lambda: [e for e in journal(local_stack) if e["event"] == "backfilled"],
            int(os.environ.get("INDWEB_WAIT", "240")),
        )
    except TimeoutError:
        lines = local_stack.output().splitlines()
        print("\n".join(line for line in lines if "ndicator" in line)[-6000:])
        raise
    assert entries[0]["succeeded"] == 2, entries
    observations = anonymous(local_stack, "api/indicators/ticks/observations").json()
    periods = {o["TIME_PERIOD"] for o in observations["observations"]}
    assert {"2026-W01", "2026-W02"} <= periods


def test_the_schedule_runs_slots_seconds_apart(local_stack):
    finished = wait_for(
        "two scheduled runs",
        lambda: (
            (f := [e for e in journal(local_stack) if e["event"] == "finished"])
            and len(f) >= 2
            and f
        ),
        6 * EVERY + 120,
    )
    assert all(e["outcome"] == "succeeded" for e in finished), finished
    runs = anonymous(local_stack, "api/indicators/ticks").json()["runs"]
    assert sum(1 for r in runs if r["trigger"] == "schedule") >= 2
    slots = [datetime.fromisoformat(e["slot"]) for e in finished]
    assert all(s.second % EVERY == 0 for s in slots)


def test_a_killed_service_comes_back_and_runs_its_missed_slot_once(local_stack):
    # A second and a half before a slot, no run under way: kill the service outright. It
    # cannot be back (the hub's poll, then its start) before that slot falls due.
    def idle_before_a_slot():
        entries = journal(local_stack)
        until = EVERY - time.time() % EVERY
        done = entries and entries[-1]["event"] == "finished"
        return done and 1.0 < until < 2.0 and service_process(local_stack)

    victim = wait_for("the service idle just before a slot", idle_before_a_slot, 4 * EVERY)
    killed_at = time.time()
    os.kill(victim.pid, signal.SIGKILL)
    missed = _iso(killed_at + EVERY - killed_at % EVERY)
    # The hub notices (its poll of a managed service) and starts it again.
    reborn = wait_for(
        "the hub restarts the service",
        lambda: (p := service_process(local_stack)) and p.pid != victim.pid and p,
        120,
    )
    me = f"{reborn.pid}"
    first = wait_for(
        "the first slot the new service claims",
        lambda: [
            e for e in journal(local_stack)
            if e["event"] == "claimed" and e["by"].endswith(f":{me}")
        ],
        120,
    )[0]  # fmt: skip
    # Not lost: the slot that fell due while the service was down (or a later one, if that
    # too fell due before the new service's first look) runs, and it is the latest due then.
    assert first["slot"] >= missed, (first, missed)
    late_by = datetime.fromisoformat(first["at"]) - datetime.fromisoformat(first["slot"])
    assert late_by.total_seconds() < EVERY, first
    # ... claimed at the new service's first look, late, not on time as a next slot would be
    # (or it fell due before the new process even existed)
    assert late_by.total_seconds() > 0.5 or first["slot"] < _iso(reborn.create_time()), first
    # Only the latest missed slot runs: none between the kill and it.
    between = [
        e for e in journal(local_stack)
        if e["event"] == "claimed" and _iso(killed_at) < e["slot"] < first["slot"]
    ]  # fmt: skip
    assert between == [], between
    late = [first]
    wait_for(
        "its run",
        lambda: any(
            e["event"] == "finished" and e["slot"] == late[0]["slot"] for e in journal(local_stack)
        ),
        120,
    )
    entries = journal(local_stack)
    finished = [e["slot"] for e in entries if e["event"] == "finished"]
    assert len(finished) == len(set(finished)), "a slot ran twice"
    claimed = [e["slot"] for e in entries if e["event"] == "claimed"]
    assert len(claimed) == len(set(claimed)), "a slot was claimed twice (no run died)"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def test_anonymous_reads_the_public_indicator_and_nothing_else(local_stack):
    page = anonymous(local_stack, "ticks")
    assert page.status_code == 200
    assert "<svg" in page.text and "north" in page.text
    for path in ("secret-poc", "pilot-one", "api/indicators/secret-poc", "secret-poc/download/csv"):
        response = anonymous(local_stack, path)
        assert response.status_code == 404, path
        assert "Test ticks" not in response.text
    assert [i["id"] for i in anonymous(local_stack, "api/indicators").json()["indicators"]] == [
        "ticks"
    ]


def test_a_trainee_neither_promotes_nor_runs_anothers_indicator(local_stack, passwords):
    tom = Person(local_stack, "tom", passwords["user"])
    assert tom.user.session.get(f"{tom.base}pilot-one", timeout=60).status_code == 200
    assert tom.user.session.get(f"{tom.base}secret-poc", timeout=60).status_code == 404
    before = len(anonymous(local_stack, "api/indicators/ticks").json()["runs"])
    for path, data in (
        ("pilot-one/promote", {"stage": "production"}),
        ("ticks/promote", {"stage": "poc"}),
        ("pilot-one/run", {}),
        ("ticks/run", {}),
    ):
        response = tom.post_form(path, data)
        assert response.status_code == 403, (path, response.status_code, response.text[:200])
        api = tom.user.api("POST", f"{PREFIX}api/indicators/{path}", json=data)
        assert api.status_code == 403, (path, api.status_code, api.text[:200])
    assert tom.post_form("secret-poc/promote", {"stage": "pilot"}).status_code == 404
    stages = {
        i: tom.user.api("GET", f"{PREFIX}api/indicators/{i}").json()["stage"]
        for i in ("pilot-one", "ticks")
    }
    assert stages == {"pilot-one": "pilot", "ticks": "production"}
    runs = anonymous(local_stack, "api/indicators/ticks").json()["runs"]
    assert not [r for r in runs if r["trigger"] == "manual"]
    assert len(runs) >= before
    # the owner may: her Run now starts a run of her pilot indicator
    ana = Person(local_stack, "ana", passwords["user"])
    assert ana.post_form("pilot-one/run", {}).status_code == 303
    wait_for(
        "ana's run",
        lambda: ana.user.api("GET", f"{PREFIX}api/indicators/pilot-one").json()["runs"],
        180,
    )


@pytest.mark.browser
def test_the_indicator_page_in_a_browser_without_javascript(local_stack):
    require_tool("chromium", CHROMIUM.exists())
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = chromium.new_context(
                viewport={"width": 1000, "height": 900}, java_script_enabled=False
            )
            page = context.new_page()
            page.goto(f"{local_stack.base_url}{PREFIX}")
            page.click("text=Test ticks (ticks)")
            page.wait_for_selector("svg.plot polyline.series")
            assert page.locator("svg.plot polyline.series").count() == 2
            box = page.locator("svg.plot").first.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 100
            page.screenshot(path=str(ARTIFACTS / "indicator-page.png"), full_page=True)
            context.close()
        finally:
            chromium.close()
