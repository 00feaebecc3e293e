"""The hub in Arabic, a person in Chinese, in a real Chromium on one local stack.

The stack's ``hub.language`` is ``ar``. A browser asking for a language Statbox does not
speak (German) gets the hub's: the sign-in page, the classroom and JupyterLab in Arabic,
right to left (read from the page's computed direction, not from our markup). A browser
asking for Chinese gets Chinese everywhere, JupyterLab included. Screenshots go to
tests/artifacts/i18n/. (The published Arabic language pack of JupyterLab translates few of
its strings, and JupyterLab lays itself out left to right whatever the language: the test
holds it to a word the pack does translate.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from statbox.cli import main
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, REPO, require_tool
from tests.integration.test_classroom import Visitor

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = REPO / "tests" / "artifacts" / "i18n"
CLASSROOM = "/services/classroom/"
DIRECTION = "getComputedStyle(document.documentElement).direction"


@pytest.fixture(scope="module")
def stack_settings(stack_settings):
    text = stack_settings.read_text()
    assert "  name: Statbox test hub\n" in text
    stack_settings.write_text(
        text.replace("  name: Statbox test hub\n", "  name: Statbox test hub\n  language: ar\n")
    )
    return stack_settings


@pytest.fixture(scope="module")
def browser():
    require_tool("chromium", CHROMIUM.exists())
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page, stack, name: str, password: str) -> None:
    page.goto(f"{stack.base_url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(f"**/user/{name}/lab**", timeout=120_000)
    page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=120_000)


@pytest.mark.parametrize(
    ("locale", "user", "lang", "direction", "sign_in_word", "classroom_word", "lab_word"),
    [
        ("de-DE", "alice", "ar", "rtl", "تسجيل الدخول", "التحقق من شهادة", "مساعده"),
        ("zh-CN", "bob", "zh-CN", "ltr", "登录", "验证证书", "帮助"),
    ],
)
def test_sign_in_classroom_and_jupyterlab(
    local_stack,
    passwords,
    browser,
    locale,
    user,
    lang,
    direction,
    sign_in_word,
    classroom_word,
    lab_word,
):
    context = browser.new_context(locale=locale, viewport={"width": 1100, "height": 760})
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{local_stack.base_url}/hub/login")
        assert page.evaluate(DIRECTION) == direction
        assert page.evaluate("document.documentElement.lang") == lang
        assert sign_in_word in page.inner_text("form")
        shot(page, f"sign-in-{lang}.png")

        sign_in(page, local_stack, user, passwords["user"])
        page.wait_for_selector(".jp-LauncherCard")
        assert lab_word in page.inner_text(".lm-MenuBar-content")
        shot(page, f"jupyterlab-{lang}.png")

        page.goto(f"{local_stack.base_url}{CLASSROOM}")
        page.wait_for_selector("footer #language")
        assert page.evaluate(DIRECTION) == direction
        assert classroom_word in page.inner_text("header")
        shot(page, f"classroom-{lang}.png")
    finally:
        context.close()


def test_a_saved_choice_outlives_the_browsers_preference(local_stack, browser):
    context = browser.new_context(locale="zh-CN")
    try:
        page = context.new_page()
        page.goto(f"{local_stack.base_url}{CLASSROOM}verify")
        assert "验证证书" in page.inner_text("h1")
        page.select_option("footer select[name=language]", "ar")
        page.click("footer button")
        page.wait_for_selector("html[lang=ar]")
        assert page.evaluate(DIRECTION) == "rtl"
        # the cookie has path /: the hub's sign-in page follows the choice too
        page.goto(f"{local_stack.base_url}/hub/login")
        assert page.evaluate(DIRECTION) == "rtl" and "تسجيل الدخول" in page.inner_text("form")
    finally:
        context.close()


def test_the_hubs_error_pages_speak_the_hubs_language(local_stack, browser):
    context = browser.new_context(locale="de-DE")
    try:
        page = context.new_page()
        answer = page.goto(f"{local_stack.base_url}/hub/no-such-page")
        assert answer is not None and answer.status == 404
        assert page.evaluate(DIRECTION) == "rtl"
        text = page.inner_text("div.error")
        assert "غير موجود" in text and "لا توجد هذه الصفحة على هذه المنصة" in text, text
        shot(page, "hub-404-ar.png")
    finally:
        context.close()


def page_text(response: requests.Response) -> str:
    """The hub says no charset in its header (the page's <meta> says UTF-8, which browsers
    follow; requests would guess Latin-1)."""
    return response.content.decode()


def test_a_refused_sign_in_is_explained_in_the_persons_language(local_stack):
    login = f"{local_stack.base_url}/hub/login?refused=code"
    arabic = page_text(requests.get(login, headers={"Accept-Language": "de"}, timeout=10))
    assert "انتهت صلاحية تسجيل الدخول هذا أو سبق استخدامه" in arabic
    french = page_text(requests.get(login, headers={"Accept-Language": "fr-FR"}, timeout=10))
    assert "Cette connexion a expiré ou a déjà été utilisée" in french
    # a wrong password: JupyterHub's own message, translated too
    session = requests.Session()
    session.headers["Accept-Language"] = "zh-CN"
    form = page_text(session.get(f"{local_stack.base_url}/hub/login", timeout=10))
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', form).group(1)
    wrong = session.post(
        f"{local_stack.base_url}/hub/login",
        data={"username": "carol", "password": "wrong-password", "_xsrf": xsrf},
        timeout=10,
    )
    assert "用户名或密码错误" in page_text(wrong), wrong.status_code


def test_a_course_opened_from_the_classroom_arrives_in_the_persons_language(local_stack, passwords):
    """ana's browser asks for French on an Arabic hub: Open puts the French lessons (the
    course ships translations) in her home, under the lessons' own names."""
    common = ["--config", str(local_stack.config), "--state-dir", str(local_stack.state_dir)]
    assert main(["course", "publish", "getting-started", "--cohort", "analysts", *common]) == 0
    ana = Visitor(local_stack, "ana", passwords["user"])
    ana.user.session.headers["Accept-Language"] = "fr-FR,fr;q=0.9"
    assert ana.post_form("courses/getting-started/open", {}).status_code == 303
    home = local_stack.state_dir / "homes" / "ana" / "courses" / "getting-started"
    course = REPO / "curriculum" / "getting-started"
    for lesson in ("01-welcome", "02-catalog-tour"):
        assert (home / f"{lesson}.ipynb").read_bytes() == (
            course / f"{lesson}.fr.ipynb"
        ).read_bytes()
    assert not list(home.glob("*.fr.ipynb"))  # one file per lesson, under its own name
