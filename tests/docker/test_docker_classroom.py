"""The classroom service in docker mode: the journey's API part, and what a user container
can reach of it, on the shared docker stack (tests/docker/conftest.py).

People: ines teaches cohort-test (alice, bob); olga is a trainee of cohort-other. Each signs
in through the hub's form and calls the service's JSON API (``/services/classroom/api/``)
with a hub API token. The journey: ines publishes a certifying course with a deadline; alice
and bob open it and find different variants in their home volumes; alice answers right (the
reference solution, written by her own server), bob submits the template; ines grades
(graded kernels run in containers of the single-user image, started by the service in the
hub's container) and polls the job to done; the report passes alice alone, whose certificate
is issued; the public API verifies it, refuses a changed copy and shows it revoked.

The attacks: olga and bob on the cohort's pages, runs and alice's certificate; alice's
container opening the classroom's port on the hub directly (past the proxy), and looking for
the classroom's state, signing key and grading scratch. Tests run in file order.
"""

from __future__ import annotations

import contextlib
import csv
import io
import time
from pathlib import Path

import pytest
import requests

from statbox.certify.certificates import revocation_digest
from statbox.contract import CLASSROOM_PORT, GRADING_LABEL, PROJECT_LABEL
from statbox.courses.notebooks import notebook_parameters
from tests.conftest import REPO
from tests.docker.conftest import PASSWORDS, RunningStack
from tests.docker.test_docker_isolation import _probe
from tests.docker.test_docker_stack import in_container
from tests.integration.hubclient import HubUser

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

PREFIX = "/services/classroom/"
COURSE = "scanner-price-indices"
EXERCISE = "exercise/price-index-exercise.ipynb"
SOLUTION = REPO / "curriculum" / COURSE / "grader" / "solution.ipynb"
COHORT = f"cohorts/cohort-test/courses/{COURSE}"
RUN: dict[str, str] = {}


class Person:
    """A person signed in to the hub, calling the classroom's API with a hub API token."""

    def __init__(self, stack: RunningStack, name: str, password: str):
        self.name = name
        self.user = HubUser(stack.url, name)
        self.user.login(password)
        self.user.create_token()

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.user.api(method, f"{PREFIX}api/{path}", allow_redirects=False, **kwargs)


def anonymous(stack: RunningStack, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{stack.url}{PREFIX}{path}", timeout=60, **kwargs)


@pytest.fixture(scope="module")
def people(stack: RunningStack) -> dict[str, Person]:
    # The hub adds its services' routes once it has started them all, a little after it
    # answers its health check.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if anonymous(stack, "GET", "keys.json").status_code == 200:
                break
        time.sleep(1)
    else:
        pytest.fail("the classroom did not answer at /services/classroom/ within 90 s")
    names = {"ines": PASSWORDS["admin"], "alice": PASSWORDS["user"]}
    names.update(bob=PASSWORDS["user"], olga=PASSWORDS["user"])
    return {name: Person(stack, name, password) for name, password in names.items()}


def home_file(stack: RunningStack, image: str, user: str, relative: str) -> bytes:
    """A file of ``user``'s home volume, read by a throw-away container (jovyan, no network,
    the volume read-only)."""
    output = stack.client.containers.run(
        image,
        ["cat", f"/home/jovyan/{relative}"],
        user="1000:1000",
        network_mode="none",
        volumes={stack.names.home_volume(user): {"bind": "/home/jovyan", "mode": "ro"}},
        labels={PROJECT_LABEL: stack.names.project},
        remove=True,
    )
    return bytes(output)


def test_every_signed_in_call_works_and_strangers_are_sent_to_sign_in(stack, people):
    """The gap this closes: the service's state folders were not in the hub's container, so
    every signed-in page answered 500."""
    me = people["alice"].api("GET", "me")
    assert me.status_code == 200, me.text[:300]
    assert (me.json()["role"], me.json()["learns"]) == ("trainee", ["cohort-test"])
    assert people["ines"].api("GET", "me").json()["teaches"] == ["cohort-test"]
    assert anonymous(stack, "GET", "api/me", allow_redirects=False).status_code == 302
    (jwk,) = anonymous(stack, "GET", "keys.json").json()["keys"]
    assert "d" not in jwk


def test_the_instructor_publishes_and_each_trainee_opens_their_variant(stack, images, people):
    publish = {"course": COURSE, "deadline": "2031-01-31T17:00"}
    published = people["ines"].api("POST", "cohorts/cohort-test/publish", json=publish)
    assert published.status_code == 201, published.text[:300]
    variants = {}
    for trainee in ("alice", "bob"):
        (course,) = people[trainee].api("GET", "me").json()["courses"]
        assert course["publication"]["deadline"][:16] == "2031-01-31T17:00"
        opened = people[trainee].api("POST", f"courses/{COURSE}/open")
        assert opened.status_code == 200, opened.text[:300]
        assert opened.json()["lab"] == f"/user/{trainee}/lab/tree/courses/{COURSE}/{EXERCISE}"
        notebook = Path(stack.root) / f"{trainee}.ipynb"
        content = home_file(
            stack, images.tags["singleuser"], trainee, f"courses/{COURSE}/{EXERCISE}"
        )
        notebook.write_bytes(content)
        variants[trainee] = notebook_parameters(notebook)
    assert variants["alice"] != variants["bob"], variants
    assert people["olga"].api("GET", "me").json()["courses"] == []


def test_a_users_container_reaches_neither_the_classroom_nor_its_state(stack, people):
    """alice's own server: the classroom's port on the hub (by the hub's names and by its
    address on her network) is closed, past the proxy; its folders are not in her container."""
    people["alice"].user.start_server(timeout=180)
    alice = stack.user_container("alice")
    network = stack.names.user_network("alice")
    hub = stack.client.containers.get(stack.names.hub)
    hub_ip = hub.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    reached = _probe(
        alice,
        [
            ("hub by name", stack.names.hub, CLASSROOM_PORT),
            ("hub by private name", stack.names.hub_private, CLASSROOM_PORT),
            ("hub on her network", hub_ip, CLASSROOM_PORT),
            ("proxy", stack.names.proxy, 8000),
        ],
    )
    print(reached)
    assert reached["proxy"] == "open"
    assert {k: v for k, v in reached.items() if k != "proxy" and v == "open"} == {}
    state = stack.root / "state"
    for folder in ("classroom", "certify", "secrets/certify", "grading", "courses"):
        code, out = in_container(alice, "ls", "-a", str(state / folder))
        assert code != 0, (folder, out)
    code, out = in_container(alice, "sh", "-c", "env; cat /proc/1/environ | tr '\\0' '\\n'")
    assert "signing" not in out.lower() and PASSWORDS["admin"] not in out


def test_trainees_submit(stack, people):
    # alice answers right: the reference solution, written by her own server's account
    alice = stack.user_container("alice")
    target = f"/home/jovyan/courses/{COURSE}/{EXERCISE}"
    code, out = in_container(
        alice,
        "python",
        "-c",
        "import sys; open(sys.argv[1], 'w').write(sys.argv[2])",
        target,
        SOLUTION.read_text(),
    )
    assert code == 0, out
    for trainee in ("alice", "bob"):
        done = people[trainee].api("POST", f"courses/{COURSE}/submit")
        assert done.status_code == 201, (trainee, done.text[:300])
    (mine,) = people["alice"].api("GET", "me").json()["courses"][0]["submissions"]
    assert len(mine["sha256"]) == 64 and mine["late"] is False
    assert "alice" not in people["bob"].api("GET", "me").text


def test_the_instructor_grades_in_containers_and_polls_progress_to_done(stack, people):
    ines = people["ines"]
    started = ines.api("POST", f"{COHORT}/grade")
    assert started.status_code == 202, started.text[:300]
    RUN["job"] = f"{COHORT}/jobs/{started.json()['job']}"
    seen = []
    deadline = time.monotonic() + 600
    status: dict = {}
    while time.monotonic() < deadline:
        status = ines.api("GET", RUN["job"]).json()
        seen.append((status["state"], status["done"]))
        if status["state"] in ("done", "failed"):
            break
        time.sleep(2)
    print("progress seen:", seen)
    if status["state"] != "done":  # the hub's last lines say why
        print(stack.client.containers.get(stack.names.hub).logs(tail=80).decode(errors="replace"))
    assert (status["state"], status["done"], status["total"]) == ("done", 2, 2), status["current"]
    # every graded kernel's container is gone
    left = stack.client.containers.list(
        all=True, filters={"label": [f"{PROJECT_LABEL}={stack.names.project}", GRADING_LABEL]}
    )
    assert left == []


def test_the_report_passes_alice_alone_and_issues_her_certificate(people):
    ines = people["ines"]
    written = ines.api("POST", f"{RUN['job']}/report")
    assert written.status_code == 200, written.text[:300]
    report = ines.api("GET", f"{RUN['job']}/report.csv")
    assert report.status_code == 200, report.text[:300]
    rows = {row["trainee"]: row for row in csv.DictReader(io.StringIO(report.text))}
    assert sorted(rows) == ["alice", "bob"]
    assert rows["alice"]["passed"] == "yes" and float(rows["alice"]["percent"]) == 100.0
    assert rows["bob"]["passed"] == "no"
    certificate = ines.api("GET", f"{RUN['job']}/certificates/alice.json")
    assert certificate.status_code == 200
    assert ines.api("GET", f"{RUN['job']}/certificates/bob.json").status_code == 404
    RUN["certificate"] = certificate.text
    RUN["id"] = certificate.json()["record"]["certificate"]


@pytest.mark.parametrize("attacker", ["olga", "bob"])
def test_no_one_else_reaches_the_cohort_its_runs_or_alices_certificate(people, attacker):
    person = people[attacker]
    for path in (
        "cohorts/cohort-test",
        RUN["job"],
        f"{RUN['job']}/report.csv",
        f"{RUN['job']}/certificates/alice.json",
    ):
        response = person.api("GET", path)
        assert response.status_code in (403, 404), (path, response.status_code)
        assert "alice" not in response.text, path
    for path, body in (
        ("cohorts/cohort-test/publish", {"course": COURSE}),
        (f"{COHORT}/grade", {}),
        (f"{COHORT}/release", {}),
        (f"{RUN['job']}/report", {}),
        (f"certificates/{RUN['id']}/revoke", {"reason": "x"}),
    ):
        assert person.api("POST", path, json=body).status_code in (403, 404), path
    if attacker == "olga":
        assert person.api("POST", f"courses/{COURSE}/submit").status_code == 404
        assert person.api("POST", f"courses/{COURSE}/open").status_code == 404


def test_public_verification_valid_tampered_then_revoked(stack, people):
    verify = anonymous(stack, "POST", "api/verify", data=RUN["certificate"].encode())
    assert verify.json()["status"] == "valid", verify.text[:300]
    changed = RUN["certificate"].replace('"percent":100.0', '"percent":100.1')
    assert changed != RUN["certificate"]
    assert anonymous(stack, "POST", "api/verify", data=changed.encode()).json()["status"] == (
        "tampered"
    )
    revoked = people["ines"].api(
        "POST", f"certificates/{RUN['id']}/revoke", json={"reason": "copied answers"}
    )
    assert revoked.status_code == 200, revoked.text[:300]
    shown = anonymous(stack, "GET", f"api/verify/{RUN['id']}").json()
    assert shown["status"] == "revoked", shown
    # the published list names a digest a holder can compute, never the id, the person or why
    (entry,) = anonymous(stack, "GET", "revocations.json").json()["record"]["revoked"]
    assert entry["digest"] == revocation_digest(RUN["id"])
    assert RUN["id"] not in str(entry) and "copied answers" not in str(entry)
