"""A real browser (Debian's headless Chromium, driven by playwright) signs in, reaches
JupyterLab, opens the course its cohort was given from the Classroom (as the README's trainee
tour says), opens the course notebook in ~/courses, runs a cell and reads its output; a
screenshot of JupyterLab is kept in ``tests/artifacts/`` (git-ignored) for people to look at.

Two ways in: the local stack's own login form (class password), and the OpenID provider's
login page behind the hub's "Sign in with ..." button.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from statbox.classroom.state import Layout
from statbox.cli import main
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, REPO, require_tool
from tests.identity.conftest import BEA_NAME
from tests.integration.hubclient import StatboxProcess

pytestmark = [pytest.mark.identity, pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = REPO / "tests" / "artifacts"
COURSE = "getting-started"
NOTEBOOK = f"courses/{COURSE}/01-welcome.ipynb"
# the first lesson's cell that lists what the catalog holds
CATALOG_CELL = "for name in catalog.entries"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require_tool("chromium", CHROMIUM.exists())
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(90_000)
    yield page
    context.close()


def open_from_the_classroom(page, stack: StatboxProcess, user: str, cohort: str) -> None:
    """From a signed-in page: once Lab is there (the home exists), the operator publishes the
    course to the user's cohort, and the user clicks Open in the Classroom."""
    page.wait_for_url(f"{stack.base_url}/user/{user}/lab**")
    common = ["--config", str(stack.config), "--state-dir", str(stack.state_dir)]
    assert main(["course", "publish", COURSE, "--cohort", cohort, *common]) == 0
    page.goto(f"{stack.base_url}/services/classroom/")
    page.locator(f'section[data-course="{COURSE}"] button[name=open]').click()


def run_course_cell_and_screenshot(page, base_url: str, user: str, shot: str) -> str:
    """From the page Open led to: wait for Lab, open the course notebook, run the cell that
    lists the catalog, and keep a screenshot. Returns the cell's output text."""
    page.wait_for_url(f"{base_url}/user/{user}/lab**")
    page.wait_for_selector("#jupyterlab-splash", state="detached")
    page.goto(f"{base_url}/user/{user}/lab/tree/{NOTEBOOK}")
    page.wait_for_selector("#jupyterlab-splash", state="detached")
    # An opened notebook shows its kernel's name before the kernel runs: wait until the
    # status bar says the kernel is idle, or the keystrokes are lost.
    page.wait_for_function(
        "() => /Python 3.*\\|\\s*Idle/.test("
        "document.querySelector('.jp-StatusBar-Widget, #jp-main-statusbar')?.textContent || '')"
    )
    cell = page.locator(".jp-Notebook .jp-CodeCell").filter(has_text=CATALOG_CELL)
    output = cell.locator(".jp-OutputArea-output")
    ARTIFACTS.mkdir(exist_ok=True)
    for attempt in range(3):
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        try:
            output.first.wait_for(timeout=30_000)
            break
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"failed-{attempt}-{shot}"))
            if attempt == 2:
                raise
    text = output.first.inner_text()
    dismiss_news(page)
    path = ARTIFACTS / shot
    page.screenshot(path=str(path))
    print(f"screenshot of JupyterLab: {path}")
    return text


def dismiss_news(page) -> None:
    """JupyterLab asks whether to fetch news; a person would say no before looking."""
    button = page.get_by_role("button", name="No")
    if button.count():
        button.first.click()
        button.first.wait_for(state="detached", timeout=10_000)


def test_a_browser_signs_in_through_the_login_form_and_runs_the_course(
    page, password_stack, passwords
):
    base = password_stack.base_url
    page.goto(f"{base}/hub/login")
    page.fill("#username_input", "ana")  # of cohort analysts in these settings
    page.fill("#password_input", passwords["user"])
    page.click("#login_submit")
    open_from_the_classroom(page, password_stack, "ana", "analysts")
    text = run_course_cell_and_screenshot(page, base, "ana", "browser-password-jupyterlab.png")
    assert "sdg.indicators" in text
    assert (ARTIFACTS / "browser-password-jupyterlab.png").stat().st_size > 10_000


def test_a_browser_signs_in_through_the_identity_provider_and_runs_the_course(page, oidc_stack):
    base = oidc_stack.base_url
    page.goto(f"{base}/hub/login")
    page.click("#statbox_sign_in")
    # the provider's own pages: login, then consent
    page.fill("input[name=login]", "bea")
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.wait_for_selector("input[name=prompt][value=consent]", state="attached")
    page.click("button[type=submit]")
    open_from_the_classroom(page, oidc_stack, "bea", "cohort-a")  # her provider's group
    text = run_course_cell_and_screenshot(page, base, "bea", "browser-oidc-jupyterlab.png")
    # The classroom learnt her full name from the provider (through the hub's user model),
    # for her certificates: Layout.claimed_names is what the report prints.
    assert Layout(oidc_stack.state_dir).claimed_names()["bea"] == BEA_NAME
    assert "sdg.indicators" in text
    assert (ARTIFACTS / "browser-oidc-jupyterlab.png").stat().st_size > 10_000
