"""The classroom service (``/services/classroom/``) on a real local stack, attacked first.

People: ines teaches cohort-test (alice, bob, carol); olga is a trainee of cohort-other,
taught by otto. Each signs in through the hub's form; the service identifies them by the
hub's OAuth and the classroom library (statbox.classroom) decides what they may do.
The journey: ines publishes a certifying course with a deadline; each trainee opens it and
finds their own variant; alice answers right, bob partly, carol copies alice's answers; ines grades
from the page and watches its progress, writes the report (alice passes, her certificate is
issued), releases; the public page verifies the certificate, refuses a changed copy and
shows it revoked. The attacks: trainees of the same and of another cohort, and an
instructor of another cohort, try every instructor page and action and every other
trainee's URL, by page (with the hub's XSRF token) and by API token; a form POST without the
XSRF token; uploads to the public page that are huge or no certificate. Then a real browser
(Debian's Chromium, JavaScript off) does the same by clicking; screenshots in
``tests/artifacts/classroom/`` (git-ignored). Tests run in file order and share one stack.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from pathlib import Path

import pytest
import requests

from statbox.certify.certificates import revocation_digest
from statbox.certify.exercise import find_course, load_exercise
from statbox.courses.notebooks import notebook_parameters
from tests.certify.conftest import with_answers, with_cell
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, REPO, require_tool
from tests.integration.hubclient import HubUser

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.usefixtures("repo_samples"),  # grading reads the sample data
]

PREFIX = "/services/classroom/"
ARTIFACTS = REPO / "tests" / "artifacts" / "classroom"
COURSE = "scanner-price-indices"
EXERCISE = "exercise/price-index-exercise.ipynb"
SOLUTION = REPO / "curriculum" / COURSE / "grader" / "solution.ipynb"
PAGE_WEIGHT = 8 * 1024
"""Bytes a page may weigh at most (it is all there is: no script, style sheet or image)."""
TRAINEES = ("alice", "bob", "carol")
LAST_TASK = "geks_last"
JOB: dict = {}
"""What the journey's steps hand on to the next (tests run in file order)."""


@pytest.fixture(scope="module")
def stack_settings(stack_settings):
    """The integration settings with two cohorts and an instructor for each."""
    text = stack_settings.read_text()
    text = text.replace(
        "  cohort-test: [alice, bob]\n",
        "  cohort-test: [alice, bob, carol, ines]\n  cohort-other: [olga, otto]\n",
    )
    text = re.sub(r"^cohorts: .*$", "cohorts: [cohort-test, cohort-other]", text, flags=re.M)
    assert "cohorts: [cohort-test, cohort-other]" in text
    text = text.replace("    users: [ines]\n", "    users: [ines, otto]\n", 1)
    stack_settings.write_text(text)
    return stack_settings


@pytest.fixture(scope="module", autouse=True)
def classroom_up(local_stack):
    """Once ``statbox up`` says it runs, the classroom answers through the public port (the
    hub gives the proxy its services' routes seconds after its health check answers; the
    stack waits for them before saying so)."""
    response = requests.get(f"{local_stack.base_url}{PREFIX}keys.json", timeout=10)
    assert response.status_code == 200, response.text[:300]


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
    names = {"ines": staff, "otto": staff, "olga": passwords["user"]}
    names.update({t: passwords["user"] for t in TRAINEES})
    return {name: Visitor(local_stack, name, password) for name, password in names.items()}


def anonymous_page(url: str) -> bytes:
    return requests.get(url, timeout=60).content


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
    assert "d" not in jwk  # never the private part
    revocations = anonymous(local_stack, "revocations.json").json()
    assert revocations["record"]["revoked"] == []
    page = anonymous(local_stack, "verify")
    assert page.status_code == 200
    assert 'type="file"' in page.text
    assert len(page.content) < PAGE_WEIGHT
    assert "<script" not in page.text and "http" not in page.text


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
        (b"\x00\xff not json", "not a certificate"),
        (b'{"record": {"kind": 1}, "signature": 3}', "not a certificate"),
        (b"x" * (20 * 1024 * 1024), "larger than a certificate"),
    ):
        response = anonymous(local_stack, "verify", files={"certificate": ("c.json", content)})
        assert response.status_code == 400, why
        assert why in response.text
        assert "Traceback" not in response.text and 'File "' not in response.text
    api = anonymous(local_stack, "api/verify", data=b"[1, 2")
    assert api.status_code == 400
    assert api.json()["status"] == "not a certificate"


# ------------------------------------------------------------------ the journey, by HTTP


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
    # nor does a token made for another session
    alien = people["ines"].post_form(
        "cohorts/cohort-test/publish", {"course": COURSE, "_xsrf": people["bob"].xsrf()}, xsrf=False
    )
    assert alien.status_code == 403
    assert people["alice"].api("GET", "me").json()["courses"] == []


def test_the_instructor_publishes_with_a_deadline_to_her_cohort(people):
    page = people["ines"].get("cohorts/cohort-test")
    assert page.status_code == 200
    assert len(page.content) < PAGE_WEIGHT
    done = people["ines"].post_form(
        "cohorts/cohort-test/publish", {"course": COURSE, "deadline": "2031-01-31T17:00"}
    )
    assert done.status_code == 303, done.text[:300]
    for trainee in TRAINEES:
        courses = people[trainee].api("GET", "me").json()["courses"]
        published = [c["publication"] for c in courses]
        assert [(c["course"], c["deadline"][:16]) for c in published] == [
            (COURSE, "2031-01-31T17:00")
        ]
    assert people["olga"].api("GET", "me").json()["courses"] == []


def test_each_trainee_opens_their_own_variant(local_stack, people):
    variants = {}
    for trainee in TRAINEES:
        opened = people[trainee].post_form(f"courses/{COURSE}/open", {})
        assert opened.status_code == 303
        where = opened.headers["Location"]
        assert where == f"/user/{trainee}/lab/tree/courses/{COURSE}/{EXERCISE}"
        notebook = local_stack.state_dir / "homes" / trainee / "courses" / COURSE / EXERCISE
        variants[trainee] = notebook_parameters(notebook)
    assert len({json.dumps(v, sort_keys=True) for v in variants.values()}) == 3, variants
    # no look-alike beside the notebook they work in
    homes = local_stack.state_dir / "homes"
    assert not list(homes.glob("*/courses/*/**/*.update-*"))


def trainee_writes(stack, trainee: str, content: bytes) -> None:
    """What the trainee saves in the notebook they opened (written as root, kept theirs)."""
    notebook = stack.state_dir / "homes" / trainee / "courses" / COURSE / EXERCISE
    owner = notebook.stat()
    notebook.write_bytes(content)
    os.chown(notebook, owner.st_uid, owner.st_gid)


def test_trainees_submit(local_stack, people):
    """alice answers right (the reference solution, in the notebook she opened); bob partly
    (all but the last task); carol copies alice's answers, as literals, into her own."""
    homes = local_stack.state_dir / "homes"
    exercise = load_exercise(find_course(REPO / "curriculum", COURSE))
    alice_variant = notebook_parameters(homes / "alice" / "courses" / COURSE / EXERCISE)
    alice_right = exercise.reference({**exercise.allowed, **alice_variant}, REPO / "data")
    JOB["alice_right"] = alice_right
    carol_template = homes / "carol" / "courses" / COURSE / EXERCISE
    trainee_writes(local_stack, "alice", SOLUTION.read_bytes())
    trainee_writes(local_stack, "bob", with_cell(SOLUTION, f"{LAST_TASK} = None  # not done"))
    JOB["carol_variant"] = notebook_parameters(carol_template)  # before she copies
    trainee_writes(local_stack, "carol", with_answers(carol_template, alice_right))
    for trainee in TRAINEES:
        done = people[trainee].post_form(f"courses/{COURSE}/submit", {})
        assert done.status_code == 303, (trainee, done.text[:300])
    mine = people["alice"].api("GET", "me").json()["courses"][0]["submissions"]
    assert len(mine) == 1 and len(mine[0]["sha256"]) == 64 and mine[0]["late"] is False
    assert mine[0]["trainee"] == "alice"
    # what bob sees names nobody else
    assert "alice" not in json.dumps(people["bob"].api("GET", "me").json())


def test_the_instructor_grades_from_the_page_and_watches_progress(people):
    ines = people["ines"]
    started = ines.post_form(f"cohorts/cohort-test/courses/{COURSE}/grade", {})
    assert started.status_code == 303, started.text[:300]
    job_page = started.headers["Location"]
    JOB["path"] = job_page.removeprefix(PREFIX)
    seen = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        page = ines.get(JOB["path"])
        assert page.status_code == 200
        state = re.search(r'data-state="(\w+)"', page.text).group(1)
        seen.append((state, re.search(r'id="done">(\d+)', page.text).group(1)))
        if state in ("done", "failed"):
            break
        assert 'http-equiv="refresh"' in page.text  # it refreshes itself, no script
        time.sleep(1)
    status = ines.api("GET", JOB["path"]).json()
    assert (status["state"], status["done"], status["total"]) == ("done", 3, 3), status
    print("progress seen:", seen)


def test_the_report_has_the_right_figures_and_issues_one_certificate(people):
    ines = people["ines"]
    written = ines.post_form(f"{JOB['path']}/report", {})
    assert written.status_code == 303, written.text[:300]
    report = ines.get(f"{JOB['path']}/report.csv")
    assert report.status_code == 200
    rows = {r["trainee"]: r for r in csv.DictReader(io.StringIO(report.text))}
    assert sorted(rows) == list(TRAINEES)
    assert rows["alice"]["passed"] == "yes" and float(rows["alice"]["percent"]) == 100.0
    assert rows["bob"]["passed"] == rows["carol"]["passed"] == "no"
    # bob: every task but the last scored; carol: alice's answers miss wherever her own
    # variant's right answer differs
    tasks = list(JOB["alice_right"])
    assert float(rows["bob"][LAST_TASK]) == 0 and 0 < float(rows["bob"]["percent"]) < 100
    assert all(float(rows["bob"][t]) > 0 for t in tasks if t != LAST_TASK), rows["bob"]
    exercise = load_exercise(find_course(REPO / "curriculum", COURSE))
    carol_right = exercise.reference({**exercise.allowed, **JOB["carol_variant"]}, REPO / "data")
    differing = [t for t in tasks if carol_right[t] != JOB["alice_right"][t]]
    assert differing and all(float(rows["carol"][t]) == 0 for t in differing), rows["carol"]
    certificate = ines.get(f"{JOB['path']}/certificates/alice.json")
    assert certificate.status_code == 200
    assert ines.get(f"{JOB['path']}/certificates/bob.json").status_code == 404
    JOB["certificate"] = certificate.content
    badge = ines.get(f"{JOB['path']}/certificates/alice.badge.jwt")
    assert badge.status_code == 200
    JOB["badge"] = badge.content.strip()
    JOB["id"] = json.loads(certificate.content)["record"]["certificate"]


def test_released_feedback_reaches_each_trainee_alone(local_stack, people):
    done = people["ines"].post_form(f"cohorts/cohort-test/courses/{COURSE}/release", {})
    assert done.status_code == 303
    alice = people["alice"].api("GET", "me").json()["courses"][0]["result"]
    assert alice["passed"] is True and alice["tasks"]
    bob = people["bob"].api("GET", "me").json()["courses"][0]["result"]
    assert bob["passed"] is False
    assert "alice" not in json.dumps(bob)
    # her certificate, to print and to have verified; bob has none, and cannot reach hers
    pdf = people["alice"].get(f"courses/{COURSE}/certificate.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    signed = people["alice"].get(f"courses/{COURSE}/certificate.json")
    assert signed.content == JOB["certificate"]
    badge = people["alice"].get(f"courses/{COURSE}/certificate.badge.jwt")
    assert badge.status_code == 200 and badge.content.count(b".") == 2  # a compact JWS
    assert anonymous(local_stack, "api/verify", data=badge.content).json()["status"] == "valid"
    for kind in ("pdf", "json", "badge.jwt"):
        assert people["bob"].get(f"courses/{COURSE}/certificate.{kind}").status_code == 404
        assert people["olga"].get(f"courses/{COURSE}/certificate.{kind}").status_code == 404
    print(
        "page bytes:",
        {
            "trainee home": len(people["alice"].get("").content),
            "cohort": len(people["ines"].get("cohorts/cohort-test").content),
            "verify": len(anonymous_page(people["alice"].base + "verify")),
        },
    )


INSTRUCTOR_PAGES = ("cohorts/cohort-test",)
INSTRUCTOR_ACTIONS = (
    ("cohorts/cohort-test/publish", {"course": "ais-port-calls"}),
    (f"cohorts/cohort-test/courses/{COURSE}/grade", {}),
    (f"cohorts/cohort-test/courses/{COURSE}/grade", {"trainee": "alice"}),
    (f"cohorts/cohort-test/courses/{COURSE}/release", {}),
)


@pytest.mark.parametrize("attacker", ["bob", "olga", "otto"])
def test_no_one_else_reaches_the_cohort_or_its_trainees(local_stack, people, attacker):
    """bob (same cohort), olga (another cohort's trainee) and otto (another cohort's
    instructor) try the instructor's pages and actions, the run's files and alice's things."""
    person = people[attacker]
    run_paths = [
        JOB["path"],
        f"{JOB['path']}/report.csv",
        f"{JOB['path']}/report.html",
        f"{JOB['path']}/certificates/alice.json",
        f"{JOB['path']}/certificates/alice.pdf",
    ]
    for path in [*INSTRUCTOR_PAGES, *run_paths]:
        response = person.get(path)
        assert response.status_code in (403, 404), (path, response.status_code)
        assert "alice" not in response.text, path
        by_token = person.api("GET", path)
        assert by_token.status_code in (403, 404), path
        assert "alice" not in by_token.text, path
    for path, data in [*INSTRUCTOR_ACTIONS, (f"{JOB['path']}/report", {})]:
        response = person.post_form(path, data)
        assert response.status_code in (403, 404), (path, response.status_code)
        assert person.api("POST", path, json=data).status_code in (403, 404), path
    revoke = person.post_form("certificates/revoke", {"certificate": JOB["id"], "reason": "x"})
    assert revoke.status_code == 404
    api_revoke = person.api("POST", f"certificates/{JOB['id']}/revoke", json={"reason": "x"})
    assert api_revoke.status_code == 404
    # alice's course cannot be submitted or opened in her name: the actor is the signed-in one
    if attacker == "olga":
        assert person.api("POST", f"courses/{COURSE}/submit").status_code == 404
    # nothing changed: nothing published, no revocation, still one grading job
    revoked = anonymous(local_stack, "revocations.json").json()["record"]["revoked"]
    assert revoked == []
    jobs = people["ines"].api("GET", "cohorts/cohort-test").json()["courses"][0]["jobs"]
    assert len(jobs) == 1
    assert [
        c["publication"]["course"] for c in people["alice"].api("GET", "me").json()["courses"]
    ] == [COURSE]


def test_path_tricks_lead_nowhere(people):
    for path in (
        "cohorts/cohort-test/../cohort-test",
        "cohorts/%2e%2e/cohorts/cohort-test",
        "cohorts/Cohort-Test",
        f"{JOB['path']}/..%2F..%2F..%2Fsubmissions",
        f"{JOB['path']}/certificates/..%2Falice.json",
    ):
        response = people["bob"].get(path)
        assert response.status_code in (400, 403, 404), (path, response.status_code)
        assert "alice" not in response.text


# ------------------------------------------------------------------ certificates


def verdict_of(response: requests.Response) -> str:
    return re.search(r'id="verdict">\s*([a-z ]+)<', response.text).group(1).strip()


def test_the_public_page_verifies_and_refuses_a_changed_copy(local_stack):
    certificate = JOB["certificate"]
    valid = anonymous(local_stack, "verify", files={"certificate": ("a.json", certificate)})
    assert valid.status_code == 200
    assert verdict_of(valid) == "valid"
    assert "alice" in valid.text
    changed = certificate.replace(b'"percent":100.0', b'"percent":100.1')
    assert changed != certificate
    tampered = anonymous(local_stack, "verify", files={"certificate": ("a.json", changed)})
    assert verdict_of(tampered) == "tampered"
    assert verdict_of(anonymous(local_stack, f"verify/{JOB['id']}")) == "valid"
    # its Open Badges 3.0 credential too, as a wallet hands it over
    badge = JOB["badge"]
    by_badge = anonymous(local_stack, "verify", files={"certificate": ("a.badge.jwt", badge)})
    assert verdict_of(by_badge) == "valid"
    forged = badge[:-8] + (b"A" * 8 if not badge.endswith(b"A" * 8) else b"B" * 8)
    refused = anonymous(local_stack, "verify", files={"certificate": ("a.badge.jwt", forged)})
    assert verdict_of(refused) != "valid"
    assert anonymous(local_stack, "api/verify/" + "f" * 24).status_code == 404


def test_the_instructor_revokes_with_a_reason_and_everyone_sees_it(local_stack, people):
    """Anyone with the link sees 'revoked'; the reason is shown to whoever presents the
    certificate; the published list names a digest of the id, never the id or the reason."""
    done = people["ines"].post_form(
        "certificates/revoke", {"certificate": JOB["id"], "reason": "copied answers"}
    )
    assert done.status_code == 303, done.text[:300]
    shown = anonymous(local_stack, f"verify/{JOB['id']}")
    assert verdict_of(shown) == "revoked"
    assert "copied answers" not in shown.text
    presented = anonymous(
        local_stack, "verify", files={"certificate": ("a.json", JOB["certificate"])}
    )
    assert verdict_of(presented) == "revoked"
    assert "copied answers" in presented.text
    (entry,) = anonymous(local_stack, "revocations.json").json()["record"]["revoked"]
    assert entry["digest"] == revocation_digest(JOB["id"])
    assert JOB["id"] not in str(entry) and "copied answers" not in str(entry)


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
def test_in_a_browser_without_javascript(local_stack, passwords, browser, tmp_path):
    # the instructor re-grades one trainee from her cohort's page and watches the job
    context, page = signed_in(browser, local_stack, "ines", passwords["admin"])
    page.click("text=cohort-test")
    shot(page, "instructor-cohort.png")
    page.click('tr[data-trainee="bob"] button:has-text("Re-grade")')
    page.wait_for_selector('#progress[data-state="done"]', timeout=180_000)
    assert page.inner_text("#total") == "1"
    shot(page, "instructor-regrade-done.png")
    page.goto(f"{local_stack.base_url}{PREFIX}{JOB['path']}/report.html")
    shot(page, "instructor-report.png")
    context.close()
    # a trainee sees her course, her submission and her released result
    context, page = signed_in(browser, local_stack, "alice", passwords["user"])
    assert page.locator(f'section[data-course="{COURSE}"] .result').count() == 1
    shot(page, "trainee-home.png")
    context.close()
    # another trainee cannot open the cohort's page by typing its address
    context, page = signed_in(browser, local_stack, "bob", passwords["user"])
    response = page.goto(f"{local_stack.base_url}{PREFIX}cohorts/cohort-test")
    assert response is not None and response.status in (403, 404)
    assert "alice" not in page.content()
    shot(page, "trainee-refused.png")
    context.close()
    # anyone checks a certificate: a changed copy, and the revoked one by its link
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{local_stack.base_url}{PREFIX}verify")
    upload = tmp_path / "changed.json"
    upload.write_bytes(JOB["certificate"].replace(b'"alice"', b'"alicf"'))
    page.set_input_files("input[type=file]", str(upload))
    page.click("button[type=submit]")
    assert page.inner_text("#verdict").strip().lower() == "tampered"
    shot(page, "verify-tampered.png")
    page.goto(f"{local_stack.base_url}{PREFIX}verify/{JOB['id']}")
    assert page.inner_text("#verdict").strip().lower() == "revoked"
    shot(page, "verify-revoked.png")
    context.close()
