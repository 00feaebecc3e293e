"""The indicators pages and API in-process, as an anonymous visitor sees them: no hub needed
for a visitor without a cookie or token (HubOAuth then identifies nobody). Signed-in people,
Run now and Promote: tests/integration/test_indicators_service.py on a real stack.

The state is what the library writes (its store, its promote), the app the real one.
"""

from __future__ import annotations

import asyncio
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

from statbox.classroom.people import Actor
from statbox.indicators.library import Indicators
from statbox.indicators.store import IndicatorStore, RunRecord, new_run_id, now_iso
from statbox.indicators.web import plot
from statbox.indicators.web.app import ServiceConfig, make_app, template_environment
from statbox.modes.local.stack import free_port
from statbox.settings.model import load_settings
from tests.indicators.conftest import READ_PRICES, WRITE, write_indicator

PREFIX = "/services/indicators/"
HEADER = "FREQ,REF_AREA,INDICATOR,TIME_PERIOD,OBS_VALUE,UNIT_MEASURE,OBS_STATUS\n"


def vintage(week: str, values: dict[str, float]) -> bytes:
    rows = "".join(f"W,{shop},PRICE,{week},{value},EUR,A\n" for shop, value in values.items())
    return (HEADER + rows).encode()


def publish(state: Path, indicator: str, week: str, values: dict[str, float]) -> None:
    store = IndicatorStore(state, indicator)
    number = store.publish(week, vintage(week, values))
    store.save_run(
        RunRecord(
            run_id=new_run_id(week),
            indicator=indicator,
            period=week,
            trigger="backfill",
            requested_by="ana",
            parameters={"week": week},
            code_sha256="0" * 64,
            started_at=now_iso(),
            finished_at=now_iso(),
            attempts=1,
            outcome="succeeded",
            vintage=number,
        )
    )


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> Iterator[dict[str, str]]:
    """The service over one library twice: for an English-speaking hub (``en``, the
    default) and for a French-speaking one (``fr``: ``hub.language: fr``)."""
    root = tmp_path_factory.mktemp("indicators-web")
    for indicator, stage in (
        ("shop-public", "pilot"),
        ("shop-pilot", "pilot"),
        ("shop-poc", "poc"),
    ):
        write_indicator(root / "indicators", indicator, stage, READ_PRICES + WRITE)
    (root / "statbox.yaml").write_text(
        "paths: {indicators: indicators, state_dir: state, curriculum: .}\n"
        "roles: {analyst: {users: [ana]}}\n"
    )
    loaded = load_settings(root / "statbox.yaml")
    state = loaded.paths.state_dir
    library = Indicators(loaded.settings, loaded.paths.indicators, state, runner=None)  # type: ignore[arg-type]
    library.promote(Actor.operator(), "shop-public", "production")
    for indicator in ("shop-public", "shop-pilot", "shop-poc"):
        publish(state, indicator, "2026-W01", {"s1": 10.0, "s2": 20.0})
        publish(state, indicator, "2026-W02", {"s1": 11.0, "s2": 19.0})
    publish(state, "shop-public", "2026-W02", {"s1": 12.5, "s2": 19.0})  # a revision of s1
    ports = {"en": free_port(), "fr": free_port()}
    env = {
        "JUPYTERHUB_API_TOKEN": "not-used-by-anonymous-requests",
        "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",
        "JUPYTERHUB_BASE_URL": "/",
        "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
        "JUPYTERHUB_CLIENT_ID": "service-indicators",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"{PREFIX}oauth_callback",
        "JUPYTERHUB_HOST": "",
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            for language, port in ports.items():
                config = ServiceConfig(PREFIX, library, template_environment, language=language)
                make_app(config, cookie_secret=b"x" * 32).listen(port, "127.0.0.1")
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        assert ready.wait(10)
        try:
            yield {language: f"http://127.0.0.1:{port}{PREFIX}" for language, port in ports.items()}
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)


@pytest.fixture(scope="module")
def service(services) -> str:
    return services["en"]


def get(service: str, path: str) -> requests.Response:
    return requests.get(f"{service}{path}", allow_redirects=False, timeout=30)


def test_anonymous_sees_the_public_production_indicator_only(service):
    index = get(service, "")
    assert index.status_code == 200
    assert "shop-public" in index.text
    assert "shop-pilot" not in index.text and "shop-poc" not in index.text
    api = get(service, "api/indicators").json()
    assert [item["id"] for item in api["indicators"]] == ["shop-public"]
    assert api["indicators"][0]["latest_period"] == "2026-W02"


@pytest.mark.parametrize(
    "path",
    [
        "shop-poc",
        "shop-pilot",
        "api/indicators/shop-poc",
        "api/indicators/shop-poc/observations",
        "shop-poc/download/csv",
        "shop-pilot/download/sdmx-json",
        "no-such-one",
    ],
)
def test_anything_not_public_is_not_found_like_nothing(service, path):
    response = get(service, path)
    assert response.status_code == 404
    assert "10.0" not in response.text and "s1" not in response.text


def test_the_public_page_has_its_plot_values_revision_and_downloads(service):
    page = get(service, "shop-public")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "public, max-age=60"
    assert "Cookie" in page.headers["Vary"]
    assert "script" not in page.text.lower()
    svg = page.text[page.text.index("<svg") : page.text.index("</svg>") + 6]
    tree = ET.fromstring(svg)
    lines = tree.findall(".//{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 2  # one per shop
    assert all(len(line.get("points", "").split()) == 2 for line in lines)  # two weeks each
    assert "12.5" in page.text and "+2.5" in page.text  # latest value, change on the week
    assert 'id="revisions"' in page.text and "1 → 2" in page.text  # s1's revision
    assert "Run now" not in page.text and "Promote" not in page.text
    for fmt in ("csv", "sdmx-csv", "sdmx-json"):
        download = get(service, f"shop-public/download/{fmt}")
        assert download.status_code == 200, fmt
        assert b"12.5" in download.content, fmt
    observations = get(service, "api/indicators/shop-public/observations").json()
    assert {(o["REF_AREA"], o["TIME_PERIOD"], float(o["OBS_VALUE"])) for o in
            observations["observations"]} == {
        ("s1", "2026-W01", 10.0), ("s2", "2026-W01", 20.0),
        ("s1", "2026-W02", 12.5), ("s2", "2026-W02", 19.0),
    }  # fmt: skip


@pytest.mark.parametrize(
    "path", ["shop-public/run", "shop-public/promote", "api/indicators/shop-public/promote"]
)
def test_an_anonymous_post_changes_nothing(service, path):
    response = requests.post(
        f"{service}{path}", data={"stage": "poc"}, allow_redirects=False, timeout=30
    )
    # sent to sign in (a page) or refused (the API); never done
    assert response.status_code in (302, 403), response.status_code
    assert get(service, "api/indicators/shop-public").json()["stage"] == "production"


def test_text_in_the_plot_is_escaped():
    rows = [
        {"FREQ": "W", "REF_AREA": "<script>x</script>", "INDICATOR": "P", "TIME_PERIOD": "2026-W01",
         "OBS_VALUE": "1"},
    ]  # fmt: skip
    (figure,) = plot.figures(rows, ["FREQ", "REF_AREA", "INDICATOR"], "OBS_VALUE")
    svg = figure.svg()
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    ET.fromstring(svg)  # well-formed


class Texts(HTMLParser):
    """The text of each heading, table head, label, button and option of a page, and the
    ``<html>`` element's attributes."""

    LABELS = ("h1", "h2", "th", "label", "button", "option", "title")

    def __init__(self, page: str) -> None:
        super().__init__()
        self.html: dict[str, str | None] = {}
        self.open: list[str] = []
        self.texts: list[tuple[str, str]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html":
            self.html = dict(attrs)
        if tag in self.LABELS:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.open and self.open[-1] == tag:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        if self.open and data.strip():
            self.texts.append((self.open[-1], data.strip()))


def page_in(service: str, path: str, **headers: str) -> Texts:
    response = requests.get(f"{service}{path}", headers=headers, timeout=30)
    assert response.status_code == 200, response.status_code
    return Texts(response.text)


NOT_WORDS = {"%", "Statbox", "English", "Français", "Português (Brasil)", "简体中文", "العربية"}
"""Texts the same in every language: a symbol, the product's name, the languages' own names."""
DATA = {"s1", "s2", "PRICE"}
"""The fixture's series codes (in the plot's legend and the latest values)."""


@pytest.mark.parametrize("path", ["", "shop-public"])
def test_the_indicator_pages_in_arabic_are_right_to_left_and_translated(service, path):
    english = page_in(service, path)
    assert english.html == {"lang": "en", "dir": "ltr"}
    assert ("h1", "Published indicators") in english.texts or ("h2", "Latest values") in (
        english.texts
    )
    arabic = page_in(service, path, Cookie="statbox-language=ar")
    assert arabic.html == {"lang": "ar", "dir": "rtl"}
    labels = {text for _, text in english.texts} - NOT_WORDS
    # the indicator's own title and its series' codes are its owner's, not ours
    labels = {text for text in labels if "shop prices" not in text and text not in DATA}
    left_in_english = labels & {text for _, text in arabic.texts}
    assert not left_in_english, f"not translated into Arabic: {sorted(left_in_english)}"
    if path:
        assert ("h2", "أحدث القيم") in arabic.texts and ("th", "الإصدار") in arabic.texts


def test_a_chinese_browser_gets_the_indicator_pages_in_chinese(service):
    headers = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
    index = page_in(service, "", **headers)
    assert index.html == {"lang": "zh-CN", "dir": "ltr"}
    assert ("h1", "已发布的指标") in index.texts
    page = requests.get(f"{service}shop-public", headers=headers, timeout=30)
    assert page.headers["Content-Language"] == "zh-CN"
    assert "最新数值" in page.text and "正式运行" in page.text  # a heading, the stage
    assert "Latest values" not in page.text
    # a shared cache keeps one copy per language, not the first reader's for everyone
    assert "Accept-Language" in page.headers["Vary"]


def test_the_error_page_speaks_the_readers_language_and_the_api_english(service):
    page = requests.get(f"{service}no/such/page", headers={"Accept-Language": "fr"}, timeout=30)
    assert page.status_code == 404
    assert 'lang="fr"' in page.text and "Page inexistante." in page.text
    api = requests.get(f"{service}api/nothing", headers={"Accept-Language": "fr"}, timeout=30)
    assert api.json() == {"status": 404, "message": "No such page."}


def test_the_language_form_saves_the_choice_and_goes_back(service):
    answer = requests.post(
        f"{service}language",
        data={"language": "pt-BR"},
        headers={"Referer": f"{service}shop-public"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"{PREFIX}shop-public"
    assert answer.cookies["statbox-language"] == "pt-BR"
    # the saved choice wins over the browser's
    chosen = page_in(
        service, "shop-public", Cookie="statbox-language=pt-BR", **{"Accept-Language": "ar"}
    )
    assert chosen.html == {"lang": "pt-BR", "dir": "ltr"}
    assert ("h2", "Valores mais recentes") in chosen.texts
    refused = requests.post(f"{service}language", data={"language": "xx"}, timeout=30)
    assert refused.status_code == 400


def test_the_plot_says_what_it_left_out_in_the_readers_words():
    figure = plot.Figure("t", ["2026-W01"], [plot.Line("a", {"2026-W01": 1.0})], hidden=3)
    svg = figure.svg("+{hidden} autres & <suite>")
    assert "+3 autres &amp; &lt;suite&gt;" in svg
    ET.fromstring(svg)


def test_a_hub_speaking_french_shows_french_unless_the_reader_asks_otherwise(services):
    french = page_in(services["fr"], "shop-public")
    assert french.html == {"lang": "fr", "dir": "ltr"}
    assert ("h2", "Dernières valeurs") in french.texts and ("th", "Millésime") in french.texts
    # numbers as French writes them: "12.5" would read as twelve thousand five hundred
    latest = requests.get(f"{services['fr']}shop-public", timeout=30).text
    assert ">12,5<" in latest and ">+2,5<" in latest and ">12.5<" not in latest
    chinese = page_in(services["fr"], "shop-public", **{"Accept-Language": "zh-CN"})
    assert ("h2", "最新数值") in chinese.texts
