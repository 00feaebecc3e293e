"""The classroom service (``/services/classroom/``) on a real local stack, attacked first.

People: ines teaches cohort-test (alice, bob); olga is a trainee of cohort-other, taught by
otto. Each signs in through the hub's form; the service identifies them by the hub's OAuth.
The attacks: trainees of the same and of another cohort, and an instructor of another
cohort, try every instructor page and action and every other trainee's URL, by page (with
the hub's XSRF token) and by API token; a form POST without the XSRF token; uploads to the
public verification page that are huge or no certificate. Then a real browser (Debian's
Chromium) does the journey; screenshots in ``tests/artifacts/classroom/`` (git-ignored).
Tests run in file order and share one stack.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from statbox.certify.certificates import Keys, sign
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, REPO, require_tool
from tests.integration.hubclient import HubUser

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "/services/classroom/"
ARTIFACTS = REPO / "tests" / "artifacts" / "classroom"
COURSE = "getting-started"
CERTIFICATE_ID = "0123456789abcdef01234567"
PAGE_WEIGHT = 8 * 1024
"""Bytes a page may weigh at most (it is all there is: no script, style sheet or image)."""


@pytest.fixture(scope="module")
def stack_settings(stack_settings):
    """The integration settings with two cohorts and an instructor for each."""
    text = stack_settings.read_text()
    text = text.replace(
        "  cohort-test: [alice, bob]\n",
        "  cohort-test: [alice, bob, ines]\n  cohort-other: [olga, otto]\n"
        "cohorts: [cohort-test, cohort-other]\n",
    )
    text = text.replace("    users: [ines]\n", "    users: [ines, otto]\n", 1)
    stack_settings.write_text(text)
    return stack_settings


@pytest.fixture(scope="module", autouse=True)
def classroom_up(local_stack):
    """The hub adds its services' routes to the proxy once it has started them all, a few
    seconds after its health check answers (and ``statbox up`` says it runs)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            response = requests.get(f"{local_stack.base_url}{PREFIX}keys.json", timeout=10)
            if response.status_code == 200:
                return
        time.sleep(0.5)
    pytest.fail("the classroom did not answer at /services/classroom/ within 60 s")


class Visitor:
    """A person signed in to the hub, then to the classroom through the hub's OAuth."""

    def __init__(self, stack, name: str, password: str):
        self.user = HubUser(stack.base_url, name)
        self.user.login(password)
        self.user.create_token()
        self.base = f"{stack.base_url}{PREFIX}"
        home = self.user.session.get(self.base, timeout=60)
        assert home.status_code == 200, (name, home.status_code, home.text[:300])
        self.home = home.text

    def xsrf(self) -> str:
        """The hub's XSRF token for this session, as the service's pages set it."""
        token = self.user.session.cookies.get("_xsrf", path=PREFIX.rstrip("/")) or (
            self.user.session.cookies.get("_xsrf", path=PREFIX)
        )
        assert token, [(c.name, c.path) for c in self.user.session.cookies]
        return token

    def get(self, path: str) -> requests.Response:
        return self.user.session.get(f"{self.base}{path}", allow_redirects=False, timeout=60)

    def post_form(self, path: str, data: dict[str, str], xsrf: bool = True) -> requests.Response:
        fields = {**data, "_xsrf": self.xsrf()} if xsrf else data
        return self.user.session.post(
            f"{self.base}{path}", data=fields, allow_redirects=False, timeout=60
        )

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.user.api(method, f"{PREFIX}api/{path}", **kwargs)


@pytest.fixture(scope="module")
def people(local_stack, passwords):
    staff = passwords["admin"]
    return {
        "ines": Visitor(local_stack, "ines", staff),
        "otto": Visitor(local_stack, "otto", staff),
        "alice": Visitor(local_stack, "alice", passwords["user"]),
        "bob": Visitor(local_stack, "bob", passwords["user"]),
        "olga": Visitor(local_stack, "olga", passwords["user"]),
    }


@pytest.fixture(scope="module")
def certificate(local_stack) -> bytes:
    """A certificate of alice's, signed with the hub's key and kept where issuing puts it
    (``<state>/certify/issued/<id>.json``): issuing from the page needs grading, which the
    classroom library brings."""
    record = {
        "type": "statbox-certificate",
        "version": 1,
        "certificate": CERTIFICATE_ID,
        "trainee": "alice",
        "course": {"id": COURSE, "title": "Getting started"},
        "exercise": "exercise",
        "cohort": "cohort-test",
        "score": 9,
        "max_score": 10,
        "percent": 90.0,
        "date": datetime.now(UTC).date().isoformat(),
        "submission_sha256": "0" * 64,
        "grader_version": "tests",
        "issuer": "Statbox test hub",
    }
    key = Keys(local_stack.state_dir).signing_key(create=True)
    assert key is not None
    content = sign(record, key)
    issued = local_stack.state_dir / "certify" / "issued"
    issued.mkdir(parents=True, exist_ok=True)
    (issued / f"{CERTIFICATE_ID}.json").write_bytes(content)
    return content


def anonymous(stack, path: str, **kwargs) -> requests.Response:
    method = "POST" if ("files" in kwargs or "data" in kwargs) else "GET"
    return requests.request(
        method, f"{stack.base_url}{PREFIX}{path}", allow_redirects=False, timeout=60, **kwargs
    )


# ------------------------------------------------------------------ public, no login


def test_public_addresses_answer_without_login(local_stack):
    keys = anonymous(local_stack, "keys.json")
    assert keys.status_code == 200
    (jwk,) = keys.json()["keys"]
    assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")
    assert anonymous(local_stack, "revocations.json").json() == {"revoked": []}
    page = anonymous(local_stack, "verify")
    assert page.status_code == 200
    assert 'type="file"' in page.text
    assert len(page.content) < PAGE_WEIGHT
    # nothing fetched from elsewhere, no script needed
    assert "<script" not in page.text and "http" not in page.text.replace(
        'http-equiv="', ""
    ).replace("meta charset", "")


def test_every_other_page_sends_a_stranger_to_sign_in(local_stack):
    for path in ("", "cohorts/cohort-test", "api/me", "api/cohorts/cohort-test"):
        response = anonymous(local_stack, path)
        assert response.status_code == 302, path
        assert "/hub/api/oauth2/authorize" in response.headers["Location"], path
    refused = anonymous(local_stack, "cohorts/cohort-test/publish", data={"course": COURSE})
    assert refused.status_code == 403


def test_the_verification_page_refuses_huge_and_malformed_uploads_plainly(local_stack):
    for content, why in (
        (b"x" * (100 * 1024), "larger than a certificate"),
        (b"\x00\xff not json", "not a"),
        (b'{"record": {"type": "statbox-certificate"}, "signature": 3}', "not a"),
    ):
        response = anonymous(local_stack, "verify", files={"certificate": ("c.json", content)})
        assert response.status_code == 400, why
        assert why in response.text
        assert "Traceback" not in response.text and 'File "' not in response.text
    # far beyond: still a page that says so, not a cut connection
    huge = anonymous(
        local_stack, "verify", files={"certificate": ("c.json", b"x" * (20 * 1024 * 1024))}
    )
    assert huge.status_code == 400
    assert "larger than a certificate" in huge.text
    api = anonymous(local_stack, "api/verify", data=b"[1, 2")
    assert api.status_code == 400
    assert api.json()["status"] == "not a certificate"


# ------------------------------------------------------------------ instructors and trainees


def test_each_person_sees_their_own_home(people):
    assert "cohort-test" in people["ines"].home and "cohort-other" not in people["ines"].home
    assert "cohort-other" in people["otto"].home and "cohort-test" not in people["otto"].home
    me = people["alice"].api("GET", "me").json()
    assert (me["role"], me["learns"], me["teaches"]) == ("trainee", ["cohort-test"], [])
    assert len(people["alice"].home.encode()) < PAGE_WEIGHT


def test_a_form_post_without_the_xsrf_token_is_refused(local_stack, people):
    refused = people["ines"].post_form(
        "cohorts/cohort-test/publish", {"course": COURSE}, xsrf=False
    )
    assert refused.status_code == 403
    # and a token made for another session does not do either
    alien = people["ines"].post_form(
        "cohorts/cohort-test/publish",
        {"course": COURSE, "_xsrf": people["bob"].xsrf()},
        xsrf=False,
    )
    assert alien.status_code == 403
    assert not (local_stack.state_dir / "homes" / "alice" / "courses" / COURSE).exists()


def test_the_instructor_publishes_with_a_deadline_to_her_cohort(local_stack, people):
    page = people["ines"].get("cohorts/cohort-test")
    assert page.status_code == 200
    assert len(page.content) < PAGE_WEIGHT
    done = people["ines"].post_form(
        "cohorts/cohort-test/publish", {"course": COURSE, "deadline": "2031-01-31T17:00"}
    )
    assert done.status_code == 303, done.text[:300]
    homes = local_stack.state_dir / "homes"
    for trainee in ("alice", "bob"):
        assert (homes / trainee / "courses" / COURSE / "01-welcome.ipynb").is_file()
        courses = people[trainee].api("GET", "me").json()["courses"]
        assert [(c["course"], c["deadline"][:10]) for c in courses] == [(COURSE, "2031-01-31")]
    # not the other cohort's trainee, not the instructor herself
    assert not (homes / "olga" / "courses" / COURSE).exists()
    assert people["olga"].api("GET", "me").json()["courses"] == []
    view = people["ines"].api("GET", "cohorts/cohort-test").json()
    assert view["trainees"] == ["alice", "bob"]


INSTRUCTOR_PAGES = ("cohorts/cohort-test", "api/cohorts/cohort-test")
INSTRUCTOR_ACTIONS = (
    ("cohorts/cohort-test/publish", {"course": "ais-port-calls"}),
    ("cohorts/cohort-test/grade", {"course": COURSE}),
    ("certificates/revoke", {"certificate": CERTIFICATE_ID, "reason": "trying"}),
)


@pytest.mark.parametrize("attacker", ["bob", "olga", "otto"])
def test_no_one_else_reaches_the_cohort_or_its_trainees(local_stack, people, certificate, attacker):
    """bob (same cohort), olga (another cohort's trainee) and otto (another cohort's
    instructor) try the instructor's pages and actions and alice's things."""
    person = people[attacker]
    for path in INSTRUCTOR_PAGES:
        response = person.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert "alice" not in response.text
        assert person.api("GET", path.removeprefix("api/")).status_code == 404
    for path, data in INSTRUCTOR_ACTIONS:
        response = person.post_form(path, data)
        assert response.status_code == 404, (path, response.status_code)
        assert person.api("POST", path, json=data).status_code == 404, path
    api_revoke = person.api("POST", f"certificates/{CERTIFICATE_ID}/revoke", json={"reason": "x"})
    assert api_revoke.status_code == 404
    submissions = person.api("GET", "cohorts/cohort-test/trainees/alice/submissions")
    assert submissions.status_code == 404
    assert "alice" not in submissions.text
    # nothing changed: no course for ais-port-calls, no revocation
    assert not (local_stack.state_dir / "homes" / "alice" / "courses" / "ais-port-calls").exists()
    assert anonymous(local_stack, "revocations.json").json() == {"revoked": []}


def test_path_tricks_lead_nowhere(people):
    for path in (
        "cohorts/cohort-test/../cohort-test",
        "cohorts/%2e%2e/cohorts/cohort-test",
        "cohorts/Cohort-Test",
        "api/cohorts/cohort-test%2F..%2Fcohort-test",
    ):
        response = people["bob"].get(path)
        assert response.status_code in (400, 404), (path, response.status_code)


# ------------------------------------------------------------------ certificates


def test_the_public_page_verifies_and_refuses_a_changed_copy(local_stack, certificate):
    valid = anonymous(local_stack, "verify", files={"certificate": ("a.json", certificate)})
    assert valid.status_code == 200
    assert re.search(r'id="verdict">\s*valid', valid.text)
    assert "Getting started" in valid.text
    changed = certificate.replace(b'"score":9', b'"score":10')
    assert changed != certificate
    tampered = anonymous(local_stack, "verify", files={"certificate": ("a.json", changed)})
    assert re.search(r'id="verdict">\s*tampered', tampered.text)
    by_link = anonymous(local_stack, f"verify/{CERTIFICATE_ID}")
    assert re.search(r'id="verdict">\s*valid', by_link.text)
    unknown = anonymous(local_stack, "api/verify/" + "f" * 24).json()
    assert unknown["status"] == "unknown"


def test_the_instructor_revokes_with_a_reason_and_everyone_sees_it(
    local_stack, people, certificate
):
    done = people["ines"].post_form(
        "certificates/revoke", {"certificate": CERTIFICATE_ID, "reason": "copied answers"}
    )
    assert done.status_code == 303, done.text[:300]
    shown = anonymous(local_stack, f"verify/{CERTIFICATE_ID}")
    assert re.search(r'id="verdict">\s*revoked', shown.text)
    assert "copied answers" in shown.text
    (entry,) = anonymous(local_stack, "revocations.json").json()["revoked"]
    assert (entry["certificate"], entry["reason"]) == (CERTIFICATE_ID, "copied answers")


def test_submitting_and_grading_say_they_are_not_here_yet(people):
    """Until the classroom library lands: a clear 501, never a traceback."""
    submitted = people["alice"].api("POST", f"courses/{COURSE}/submit")
    assert submitted.status_code == 501
    assert "classroom library" in submitted.json()["message"]
    graded = people["ines"].api("POST", "cohorts/cohort-test/grade", json={})
    assert graded.status_code == 501


# ------------------------------------------------------------------ in a browser


@pytest.fixture(scope="module")
def browser():
    require_tool("chromium", CHROMIUM.exists())
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def signed_in(browser, stack, name: str, password: str):
    context = browser.new_context(
        viewport={"width": 1000, "height": 760}, java_script_enabled=False
    )
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{stack.base_url}/hub/login?next={PREFIX}")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_url(f"**{PREFIX}")
    return context, page


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.mark.browser
def test_in_a_browser_without_javascript(local_stack, passwords, browser, certificate, tmp_path):
    # the instructor publishes another course with a deadline from her cohort's page
    context, page = signed_in(browser, local_stack, "ines", passwords["admin"])
    page.click("text=cohort-test")
    page.select_option("select[name=course]", "scanner-price-indices")
    page.fill("input[name=deadline]", "2031-02-28T12:00")
    page.click("#publish button[type=submit]")
    page.wait_for_selector('tr[data-course="scanner-price-indices"]')
    assert "2031-02-28" in page.inner_text('tr[data-course="scanner-price-indices"]')
    shot(page, "instructor-cohort.png")
    context.close()
    # a trainee sees both courses and a link into JupyterLab
    context, page = signed_in(browser, local_stack, "bob", passwords["user"])
    row = page.locator('tr[data-course="scanner-price-indices"]')
    assert row.locator("a").get_attribute("href") == (
        "/user/bob/lab/tree/courses/scanner-price-indices"
    )
    shot(page, "trainee-home.png")
    # ... and cannot open the cohort's page by typing its address
    response = page.goto(f"{local_stack.base_url}{PREFIX}cohorts/cohort-test")
    assert response is not None and response.status == 404
    assert "alice" not in page.content()
    shot(page, "trainee-refused.png")
    context.close()
    # anyone checks a certificate: the revoked one, and a changed copy
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{local_stack.base_url}{PREFIX}verify")
    upload = tmp_path / "changed.json"
    upload.write_bytes(certificate.replace(b"alice", b"alicf"))
    page.set_input_files("input[type=file]", str(upload))
    page.click("button[type=submit]")
    assert page.inner_text("#verdict").strip().lower() == "tampered"
    shot(page, "verify-tampered.png")
    page.goto(f"{local_stack.base_url}{PREFIX}verify/{CERTIFICATE_ID}")
    assert page.inner_text("#verdict").strip().lower() == "revoked"
    shot(page, "verify-revoked.png")
    context.close()
    assert json.loads(certificate)["record"]["trainee"] == "alice"
