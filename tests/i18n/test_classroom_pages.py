"""The classroom's public pages (the verification page, the language form) served by the
real application: in the hub's language, the browser's, or the one a person saved; Arabic
right to left; the language form goes back only to a page of the service, and saves only a
language we ship."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from statbox.classroom.web.app import ServiceConfig, make_app, template_environment
from statbox.i18n import COOKIE
from tests.unit.test_hub_limits import serving

PREFIX = "/services/classroom/"


@pytest.fixture(scope="module")
def base() -> Any:
    # Neither page reads the classroom or the public documents on GET or on the form.
    config = ServiceConfig(
        prefix=PREFIX,
        classroom=None,  # type: ignore[arg-type]
        public=None,  # type: ignore[arg-type]
        templates=template_environment,
        language="ar",
    )
    with serving(lambda: make_app(config, cookie_secret=b"x" * 32)) as port:
        yield f"http://127.0.0.1:{port}{PREFIX}"


def test_the_hubs_language_arabic_right_to_left(base):
    page = requests.get(f"{base}verify", timeout=10)
    assert '<html lang="ar" dir="rtl">' in page.text
    assert "التحقق من شهادة" in page.text and "Check a certificate" not in page.text


def test_the_browsers_language_beats_the_hubs(base):
    page = requests.get(f"{base}verify", headers={"Accept-Language": "zh-CN,zh;q=0.9"}, timeout=10)
    assert '<html lang="zh-CN" dir="ltr">' in page.text and "验证证书" in page.text


def test_a_saved_choice_beats_the_browser(base):
    session = requests.Session()
    chosen = session.post(
        f"{base}language",
        data={"language": "fr"},
        headers={"Referer": f"{base}verify"},
        allow_redirects=False,
        timeout=10,
    )
    assert chosen.status_code == 303 and chosen.headers["Location"] == f"{PREFIX}verify"
    assert session.cookies.get(COOKIE) == "fr"
    assert "Path=/" in chosen.headers["Set-Cookie"]
    page = session.get(f"{base}verify", headers={"Accept-Language": "zh-CN"}, timeout=10)
    assert '<html lang="fr" dir="ltr">' in page.text and "Vérifier un certificat" in page.text


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/hub/admin", f"{PREFIX}/\\evil"]
)
def test_the_form_never_sends_anyone_elsewhere(base, target):
    answer = requests.post(
        f"{base}language",
        data={"language": "ar"},
        headers={"Referer": target},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303 and answer.headers["Location"] == PREFIX


def test_the_form_saves_only_a_language_we_ship(base):
    answer = requests.post(
        f"{base}language",
        data={"language": '"><script>'},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 400 and "Set-Cookie" not in answer.headers
    assert "اختر إحدى اللغات المتاحة" in answer.text  # the refusal, in the hub's language
