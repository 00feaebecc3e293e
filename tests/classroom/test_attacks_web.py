"""Attacks on the classroom service of a real local stack, as a hostile trainee.

One stack for the module (``local_stack`` of the integration tier), cohort-test (alice, bob,
carol; taught by ines). The attacks not already in ``tests/integration/test_classroom.py``:
code in alice's kernel reading the classroom's state and the grader, or calling the service
on its own port; a name with markup shown on the public page; private pages kept by caches;
the JSON API driven by the session cookie alone, or by a token without the service's scope;
submitting a huge file, a link or a FIFO; and carol submitting alice's notebook, byte for
byte. Tests run in file order. ``xfail(strict=True, reason="HOLE: ...")``: the attack
succeeds today.
"""

# ruff: noqa: F811  (local_stack and passwords are the integration tier's fixtures, imported)
from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from statbox.certify.certificates import Keys, canonical, make_record, sign
from statbox.certify.trust import verify_url
from tests.certify.certificates import stored
from tests.conftest import REPO
from tests.integration.conftest import SETTINGS, local_stack, passwords  # noqa: F401
from tests.integration.test_classroom import (  # noqa: F401 (classroom_up: a fixture)
    COURSE,
    EXERCISE,
    PREFIX,
    Visitor,
    classroom_up,
)
from tests.racing import exchange

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.usefixtures("repo_samples"),  # grading reads the sample data
]

SOLUTION = REPO / "curriculum" / COURSE / "grader" / "solution.ipynb"


@pytest.fixture(scope="module")
def stack_settings():
    """The integration settings with cohort-test (alice, bob, carol; ines teaches it), in a
    directory every account can traverse (servers run as unprivileged accounts)."""
    directory = Path(tempfile.mkdtemp(prefix="statbox-attacks-"))
    directory.chmod(0o755)
    text = SETTINGS.format(repo=REPO).replace(
        "  cohort-test: [alice, bob]\n",
        "  cohort-test: [alice, bob, carol, ines]\ncohorts: [cohort-test]\n",
    )
    text = text.replace("cohorts: [analysts]   #", "#")
    config = directory / "statbox.yaml"
    config.write_text(text)
    yield config
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def people(local_stack, passwords):
    names = {"ines": passwords["admin"]}
    names.update({t: passwords["user"] for t in ("alice", "bob", "carol")})
    return {name: Visitor(local_stack, name, password) for name, password in names.items()}


def home_notebook(stack, trainee: str):
    return stack.state_dir / "homes" / trainee / "courses" / COURSE / EXERCISE


def put(stack, trainee: str, content: bytes) -> None:
    """What the trainee could write in their own notebook (the test writes it as root)."""
    path = home_notebook(stack, trainee)
    owner = path.parent.stat()
    if path.is_symlink() or path.exists():
        path.unlink()
    path.write_bytes(content)
    os.chown(path, owner.st_uid, owner.st_gid)


def test_published_and_opened(people):
    done = people["ines"].post_form(
        "cohorts/cohort-test/publish", {"course": COURSE, "deadline": "2031-01-31T17:00"}
    )
    assert done.status_code == 303, done.text[:300]
    for trainee in ("alice", "bob", "carol"):
        assert people[trainee].post_form(f"courses/{COURSE}/open", {}).status_code == 303


# ------------------------------------------------------------------ from alice's kernel

KERNEL_PROBE = """
import json, os, urllib.request, urllib.error
found = {}
for name, path in PATHS.items():
    try:
        with open(path, "rb") as handle:
            found[name] = "READ %d bytes" % len(handle.read())
    except OSError as exc:
        found[name] = type(exc).__name__
    try:
        found[name + " (listing)"] = sorted(os.listdir(path))[:5]
    except OSError as exc:
        pass
def get(url, token=None):
    headers = {"Authorization": "token " + token} if token else {}
    request = urllib.request.Request(url, headers=headers)
    class Stay(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None
    try:
        with urllib.request.build_opener(Stay).open(request, timeout=10) as response:
            return [response.status, response.read(300).decode(errors="replace")]
    except urllib.error.HTTPError as exc:
        return [exc.code, ""]
    except Exception as exc:
        return ["unreachable", type(exc).__name__]
direct = "http://127.0.0.1:%d" % PORT + PREFIX
token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
found["direct: api/me, no token"] = get(direct + "api/me")
found["direct: api/me, server token"] = get(direct + "api/me", token)
found["direct: cohort, server token"] = get(direct + "api/cohorts/cohort-test", token)
found["direct: keys.json"] = get(direct + "keys.json")
print(json.dumps(found))
"""


def test_alices_kernel_reads_no_classroom_state_nor_the_grader(local_stack, people):
    """From her own kernel alice tries the hub's signing key, the cohort's variant secret, the
    classroom's records (others' snapshots), the grader's solution and bob's home; and the
    classroom on its own port, bypassing the proxy."""
    state = local_stack.state_dir
    # bob's snapshot exists (the probe must not read it)
    assert people["bob"].post_form(f"courses/{COURSE}/submit", {}).status_code == 303
    paths = {
        "signing key": state / "secrets" / "certify" / "signing.key",
        "cohort secret": state / "secrets" / "certify" / "cohort-test.key",
        "classroom": state / "classroom",
        "bob's snapshot": state / "classroom" / "submissions" / "cohort-test" / COURSE / "bob",
        "grader solution": SOLUTION,
        "grader folder": SOLUTION.parent,
        "bob's home notebook": home_notebook(local_stack, "bob"),
        "run records": state / "run" / "processes.json",
    }
    ports = json.loads((state / "run" / "ports.json").read_text())
    alice = people["alice"].user
    alice.start_server()
    code = (
        f"PATHS = {json.dumps({k: str(v) for k, v in paths.items()})}\n"
        f"PORT = {int(ports['classroom'])}\nPREFIX = {PREFIX!r}\n" + KERNEL_PROBE
    )
    result = alice.run(code)
    assert result.error is None, result.stderr
    found = result.json()
    print("alice's kernel:", json.dumps(found, indent=1))
    leaked = {k: v for k, v in found.items() if isinstance(v, str) and v.startswith("READ")}
    leaked.update({k: v for k, v in found.items() if k.endswith("(listing)")})
    assert leaked == {}
    # on its own port the service still asks the hub who is calling: nobody, or alice
    assert found["direct: api/me, no token"][0] != 200
    assert found["direct: cohort, server token"][0] in (403, 404, "unreachable")
    assert "bob" not in json.dumps(found["direct: cohort, server token"])


# ------------------------------------------------------------------ submissions


@pytest.mark.parametrize("kind", ["huge", "link to the signing key", "link to bob's", "fifo"])
def test_a_huge_file_a_link_or_a_fifo_is_refused_plainly(local_stack, people, kind):
    path = home_notebook(local_stack, "alice")
    original = path.read_bytes()
    owner = path.parent.stat()
    try:
        path.unlink()
        if kind == "huge":
            with path.open("wb") as handle:
                handle.truncate(17 * 1024**2)
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            target = (
                local_stack.state_dir / "secrets" / "certify" / "signing.key"
                if "signing" in kind
                else home_notebook(local_stack, "bob")
            )
            path.symlink_to(target)
        os.lchown(path, owner.st_uid, owner.st_gid)
        refused = people["alice"].post_form(f"courses/{COURSE}/submit", {})
        assert refused.status_code == 400, (kind, refused.status_code)
        assert "Traceback" not in refused.text and "PRIVATE KEY" not in refused.text
        api = people["alice"].api("POST", f"courses/{COURSE}/submit")
        assert api.status_code == 400 and "cannot be submitted" in api.json()["message"]
    finally:
        put(local_stack, "alice", original)
    mine = people["alice"].api("GET", "me").json()["courses"][0]["submissions"]
    assert mine == []  # nothing of those was recorded


def test_the_instructor_sees_that_carol_submitted_alices_notebook(local_stack, people):
    put(local_stack, "alice", SOLUTION.read_bytes())
    assert people["alice"].post_form(f"courses/{COURSE}/submit", {}).status_code == 303
    put(local_stack, "carol", home_notebook(local_stack, "alice").read_bytes())
    assert people["carol"].post_form(f"courses/{COURSE}/submit", {}).status_code == 303
    cohort = people["ines"].api("GET", "cohorts/cohort-test").json()
    rows = {r["trainee"]: r for r in cohort["courses"][0]["roster"]}
    assert rows["alice"]["latest"]["sha256"] == rows["carol"]["latest"]["sha256"]
    page = people["ines"].get("cohorts/cohort-test").text
    carol_row = page[page.index('data-trainee="carol"') :][:2000]
    assert "alice" in json.dumps(rows["carol"]) or "alice" in carol_row


# ------------------------------------------------------------------ revocation

REVOKED: dict[str, Any] = {}


def graded(people, trainee: str | None = None) -> tuple[str, dict[str, dict[str, str]]]:
    """ines grades the cohort (or re-grades ``trainee`` alone: the page's one click), waits,
    writes the report; the job's path and the report's rows by trainee."""
    ines = people["ines"]
    form = {"trainee": trainee} if trainee else {}
    started = ines.post_form(f"cohorts/cohort-test/courses/{COURSE}/grade", form)
    assert started.status_code == 303, started.text[:300]
    job = started.headers["Location"].removeprefix(PREFIX)
    deadline = time.monotonic() + 300
    while (status := ines.api("GET", job).json())["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, "grading did not end in 300 s"
        time.sleep(1)
    assert status["state"] == "done", status["current"]
    assert ines.post_form(f"{job}/report", {}).status_code == 303
    report = csv.DictReader(io.StringIO(ines.get(f"{job}/report.csv").text))
    return job, {row["trainee"]: row for row in report}


def graded_certificate(people, trainee: str) -> requests.Response:
    """``trainee`` re-graded alone; their certificate file of that run (404 when none)."""
    REVOKED["job"], _ = graded(people, trainee)
    return people["ines"].get(f"{REVOKED['job']}/certificates/{trainee}.json")


def test_alices_certificate_is_revoked(local_stack, people):
    certificate = graded_certificate(people, "alice")
    assert certificate.status_code == 200
    REVOKED["id"] = json.loads(certificate.content)["record"]["certificate"]
    done = people["ines"].post_form(
        "certificates/revoke", {"certificate": REVOKED["id"], "reason": "copied answers"}
    )
    assert done.status_code == 303
    shown = requests.get(f"{local_stack.base_url}{PREFIX}api/verify/{REVOKED['id']}", timeout=60)
    assert shown.json()["status"] == "revoked"


def test_the_revocation_list_does_not_tell_strangers_who_was_revoked_and_why(local_stack):
    """The published list names digests, not ids; and the id alone (on the printed link)
    says revoked, not who nor why."""
    listed = requests.get(f"{local_stack.base_url}{PREFIX}revocations.json", timeout=60)
    assert REVOKED["id"] not in listed.text and "copied answers" not in listed.text
    names = [entry["digest"] for entry in listed.json()["record"]["revoked"]]
    assert names
    for name in [*names, REVOKED["id"]]:
        for path in (f"verify/{name}", f"api/verify/{name}"):
            page = requests.get(f"{local_stack.base_url}{PREFIX}{path}", timeout=60)
            assert "alice" not in page.text and "copied answers" not in page.text, path


def test_a_revoked_certificates_link_still_says_revoked_after_the_report_is_rewritten(
    local_stack, people
):
    assert people["ines"].post_form(f"{REVOKED['job']}/report", {}).status_code == 303
    shown = requests.get(f"{local_stack.base_url}{PREFIX}api/verify/{REVOKED['id']}", timeout=60)
    assert (shown.status_code, shown.json().get("status")) == (200, "revoked")


def test_alice_resubmits_her_notebook_with_one_byte_changed(local_stack, people):
    notebook = json.loads(home_notebook(local_stack, "alice").read_bytes())
    notebook["metadata"]["x"] = 1
    put(local_stack, "alice", json.dumps(notebook).encode())
    assert people["alice"].post_form(f"courses/{COURSE}/submit", {}).status_code == 303
    REVOKED["again"] = graded_certificate(people, "alice")


def test_a_revoked_certificate_does_not_come_back_with_a_changed_byte(local_stack):
    """The revocation bars alice's course and cohort: the re-grade's report issues her no
    certificate (and one issued anyway would not verify)."""
    again = REVOKED["again"]
    if again.status_code == 200:
        verdict = requests.post(
            f"{local_stack.base_url}{PREFIX}api/verify", data=again.content, timeout=60
        ).json()
        assert verdict["status"] != "valid", verdict["message"]
    else:
        assert again.status_code == 404, again.status_code


def test_only_an_instructor_of_the_cohort_lifts_the_bar(people):
    """alice cannot lift her own bar; ines (who teaches cohort-test) can: alice's next
    report certifies her again (next test), her revoked certificate stays revoked."""
    refused = people["alice"].api("POST", f"certificates/{REVOKED['id']}/lift")
    assert refused.status_code in (403, 404), refused.status_code
    # ines finds the bar on her cohort's page, with its Lift button, and presses it
    page = people["ines"].get("cohorts/cohort-test")
    action = f"{PREFIX}certificates/{REVOKED['id']}/lift"
    assert page.status_code == 200 and f'action="{action}"' in page.text, page.text[-2000:]
    barred = people["ines"].api("GET", "cohorts/cohort-test").json()["barred"]
    assert [(b["certificate"], b["trainee"]) for b in barred] == [(REVOKED["id"], "alice")]
    lifted = people["ines"].post_form(f"certificates/{REVOKED['id']}/lift", {})
    assert lifted.status_code == 303, lifted.text[:300]
    assert people["ines"].api("GET", "cohorts/cohort-test").json()["barred"] == []
    assert f'action="{action}"' not in people["ines"].get("cohorts/cohort-test").text
    shown = requests.get(f"{people['ines'].base}api/verify/{REVOKED['id']}", timeout=60)
    assert shown.json()["status"] == "revoked"


@pytest.mark.parametrize(
    "bad",
    [b"{not json", b"[" * 200_000 + b"]" * 200_000, b'{"cells": 5, "nbformat": 4}'],
    ids=["not json", "nested 200000 deep", "cells not a list"],
)
def test_a_malformed_snapshot_does_not_stop_the_cohorts_grading(local_stack, people, bad):
    """bob submits a broken notebook: the cohort is still graded, alice still passes."""
    put(local_stack, "bob", bad)
    submitted = people["bob"].post_form(f"courses/{COURSE}/submit", {})
    assert submitted.status_code in (303, 400), submitted.status_code
    assert "Traceback" not in submitted.text
    _, rows = graded(people)
    assert rows["alice"]["passed"] == "yes"  # her bar lifted, her latest submission passes
    assert "bob" in rows and rows["bob"]["passed"] == "no"


SPY_CELL = """
import glob, os
seen = []
for pattern in PATTERNS:
    for path in glob.glob(pattern)[:3] or [pattern]:
        try:
            with open(path, "rb") as handle:
                seen.append("READ " + path + " " + handle.read(40).decode(errors="replace"))
        except OSError as exc:
            seen.append(type(exc).__name__ + " " + os.path.basename(path))
raise RuntimeError("SPY " + " | ".join(seen))
"""


def test_code_graded_for_carol_reads_no_other_snapshot_nor_the_solution(local_stack, people):
    """carol's notebook, run by the grader, looks for the job's other snapshots (alice's),
    the classroom's records, the grader's solution and alice's home, and raises what it read:
    the failure's reason is what she reads back as feedback."""
    state = local_stack.state_dir
    patterns = [
        f"{state}/classroom/gradings/*/*/*/submissions/*.ipynb",
        f"{state}/classroom/submissions/*/*/alice/*.ipynb",
        str(SOLUTION),
        str(home_notebook(local_stack, "alice")),
        f"{state}/secrets/certify/*.key",
    ]
    notebook = json.loads(home_notebook(local_stack, "carol").read_bytes())
    spy = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None}
    spy["source"] = f"PATTERNS = {patterns!r}\n" + SPY_CELL
    notebook["cells"].insert(1, spy)
    put(local_stack, "carol", json.dumps(notebook).encode())
    assert people["carol"].post_form(f"courses/{COURSE}/submit", {}).status_code == 303
    _, rows = graded(people)
    print("carol's reason:", rows["carol"]["reason"][:600])
    assert "READ" not in rows["carol"]["reason"]


# ------------------------------------------------------------------ opening, raced


def test_opening_while_alice_swaps_a_folder_for_a_link_writes_nothing_elsewhere(
    local_stack, people
):
    course = local_stack.state_dir / "homes" / "alice" / "courses" / COURSE
    victim = local_stack.state_dir / "homes" / "bob" / "courses" / COURSE
    before = sorted(p.name for p in victim.iterdir())
    swap = course / "swap"
    swap.symlink_to(victim)
    owner = course.stat()
    os.lchown(swap, owner.st_uid, owner.st_gid)
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            exchange(course / "exercise", swap)

    flipper = threading.Thread(target=flip, daemon=True)
    flipper.start()
    try:
        for attempt in range(200):  # the race is won within a few clicks here
            people["alice"].post_form(f"courses/{COURSE}/open", {})
            if sorted(p.name for p in victim.iterdir()) != before:
                print(f"a file landed in bob's folder at alice's Open number {attempt + 1}")
                break
    finally:
        stop.set()
        flipper.join(10)
        if (course / "exercise").is_symlink():
            exchange(course / "exercise", swap)
        swap.unlink()
        after = {p.name: p.lstat().st_uid for p in victim.iterdir()}
        for name in set(after) - set(before):  # what landed there, for the next tests
            (victim / name).unlink()
    assert sorted(after) == before, after


# ------------------------------------------------------------------ who is calling


def test_the_api_refuses_the_session_cookie_without_the_xsrf_token(people):
    """A page elsewhere making ines's browser POST JSON to the API (her cookie goes along)."""
    ines = people["ines"]
    for path, body in (
        ("cohorts/cohort-test/publish", {"course": "ais-port-calls"}),
        (f"cohorts/cohort-test/courses/{COURSE}/release", {}),
    ):
        response = ines.user.session.post(
            f"{ines.base}api/{path}", json=body, allow_redirects=False, timeout=60
        )
        assert response.status_code in (302, 403), (path, response.status_code)
    courses = ines.api("GET", "cohorts/cohort-test").json()["courses"]
    assert [c["publication"]["course"] for c in courses] == [COURSE]


def test_a_token_without_the_services_scope_is_refused(local_stack, people):
    """ines's token made for reading her own name only may not act in the classroom."""
    ines = people["ines"].user
    made = ines.session.post(
        f"{local_stack.base_url}/hub/api/users/ines/tokens",
        json={"note": "narrow", "expires_in": 600, "scopes": ["read:users:name!user=ines"]},
        headers=ines._xsrf_headers(),
        timeout=30,
    )
    assert made.status_code == 201, made.text
    narrow = made.json()["token"]
    for method, path in (("GET", "cohorts/cohort-test"), ("POST", "cohorts/cohort-test/publish")):
        response = requests.request(
            method,
            f"{local_stack.base_url}{PREFIX}api/{path}",
            headers={"Authorization": f"token {narrow}"},
            json={"course": "ais-port-calls"},
            allow_redirects=False,
            timeout=60,
        )
        assert response.status_code in (302, 403), (path, response.status_code, response.text[:200])


# ------------------------------------------------------------------ the public page


def signed_with_the_hubs_key(stack, **change) -> bytes:
    """A certificate as this hub's report would sign it for a person whose name (from the
    identity provider, which the trainee sets) carries markup."""
    keys = Keys(stack.state_dir)
    attempt = stored("mallory")
    record = make_record(attempt, "Shop prices", "Statbox test hub", None, verify_url("", "x"))
    record.update(change)
    key = keys.signing_key(create=False)
    assert key is not None
    return sign(record, key)


MARKUP = '<script>alert(1)</script><img src=x onerror="alert(2)">'


def test_markup_in_a_certificate_is_shown_as_text(local_stack, people):
    content = signed_with_the_hubs_key(
        local_stack, name=MARKUP, course={"id": "c", "title": MARKUP}, cohort=MARKUP
    )
    forged_key = json.loads(content)
    forged_key["signature"]["key_id"] = MARKUP
    for upload in (content, canonical(forged_key) + b"\n"):
        response = requests.post(
            f"{local_stack.base_url}{PREFIX}verify",
            files={"certificate": ("c.json", upload)},
            timeout=60,
        )
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "<script>alert" not in response.text and "<img src=x" not in response.text
        assert "&lt;script&gt;alert(1)" in response.text


def test_a_compressed_upload_is_not_inflated(local_stack):
    """A gzip bomb (64 MiB of zeros in about 64 KiB) sent as Content-Encoding: gzip: the
    service must not inflate it (tornado would, with decompress_request)."""
    bomb = gzip.compress(b"\0" * (64 * 1024**2), compresslevel=9)
    response = requests.post(
        f"{local_stack.base_url}{PREFIX}api/verify",
        data=bomb,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        timeout=120,
    )
    assert response.status_code == 400
    assert requests.get(f"{local_stack.base_url}{PREFIX}keys.json", timeout=30).ok


def test_private_pages_are_not_cached(people):
    for person, path in (
        ("alice", ""),
        ("alice", "api/me"),
        ("ines", "cohorts/cohort-test"),
        ("ines", "api/cohorts/cohort-test"),
    ):
        response = people[person].get(path)
        assert response.status_code == 200, path
        cache = response.headers.get("Cache-Control", "")
        assert "no-store" in cache or "private" in cache, (path, cache)
