"""Attacks on the hub's API and sign-in, against a real local stack (issue 14).

Each test is what was measured on main before the limits: 10 MiB token notes stored and
listed, 500 for ill-typed JSON, a 150 MiB body answered 503 after seconds, a 10 MiB username
echoed whole, and unthrottled password guessing.
"""

from __future__ import annotations

import socket
import time

import pytest
import requests
from requests.adapters import HTTPAdapter

from statbox.contract.runtime import RuntimeDocument
from statbox.identity.hubapi import MAX_API_TOKENS
from statbox.identity.limits import MAX_BODY_BYTES, MAX_MESSAGE_CHARS
from statbox.identity.throttle import ThrottlePolicy
from tests.integration.hubclient import HubUser

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MiB = 1024 * 1024
SMALL_ERROR = MAX_MESSAGE_CHARS + 200
"""An error body quoting no more than a short prefix of the input."""


class FromAddress(HTTPAdapter):
    """Connections from another loopback address (all of 127/8 is this machine's)."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def user_from(base_url: str, name: str, address: str = "127.0.0.1") -> HubUser:
    user = HubUser(base_url, name)
    user.session.mount("http://", FromAddress(address))
    return user


def sign_in(base_url: str, name: str, password: str, address: str) -> requests.Response:
    """One sign-in through the form, from ``address``; the response (302 on success)."""
    user = user_from(base_url, name, address)
    user.session.get(f"{base_url}/hub/login", timeout=30).raise_for_status()
    return user.session.post(
        f"{base_url}/hub/login",
        data={"username": name, "password": password, "_xsrf": user.session.cookies["_xsrf"]},
        allow_redirects=False,
        timeout=30,
    )


def signed_in(base_url: str, name: str, password: str, address: str) -> HubUser:
    """``name`` signed in from ``address`` (each user its own, so that sign-ins elsewhere in
    this module never share its throttle budget), with an API token."""
    user = user_from(base_url, name, address)
    user.login(password)
    user.create_token()
    return user


@pytest.fixture(scope="module")
def trainee(local_stack, passwords) -> HubUser:
    return signed_in(local_stack.base_url, "tina", passwords["user"], "127.0.0.9")


@pytest.fixture(scope="module")
def stack_settings(stack_settings):
    """The shared settings, with an admin (ada): POST /hub/api/users is an admin's."""
    text = stack_settings.read_text()
    stack_settings.write_text(text.replace("roles:\n", "roles:\n  admin:\n    users: [ada]\n", 1))
    return stack_settings


@pytest.fixture(scope="module")
def admin_token(local_stack, passwords) -> HubUser:
    return signed_in(local_stack.base_url, "ada", passwords["admin"], "127.0.0.10")


@pytest.fixture(scope="module")
def runtime(local_stack) -> RuntimeDocument:
    return RuntimeDocument.model_validate_json(
        (local_stack.state_dir / "run" / "runtime.json").read_text()
    )


def token_request(user: HubUser, body: bytes | dict) -> requests.Response:
    path = f"/hub/api/users/{user.name}/tokens"
    if isinstance(body, dict):
        return user.api("POST", path, json=body)
    return user.api("POST", path, data=body, headers={"Content-Type": "application/json"})


# --------------------------------------------------------------------------- bodies and notes


def test_a_large_note_is_refused_and_nothing_is_stored(trainee):
    before = trainee.api("GET", f"/hub/api/users/{trainee.name}/tokens").json()["api_tokens"]
    huge = token_request(trainee, {"note": "n" * (10 * MiB)})
    assert huge.status_code == 413, huge.text[:200]
    long = token_request(trainee, {"note": "n" * 5000})
    assert long.status_code == 400 and len(long.content) < SMALL_ERROR, long.text[:300]
    assert "note" in long.json()["message"]
    after = trainee.api("GET", f"/hub/api/users/{trainee.name}/tokens")
    assert len(after.json()["api_tokens"]) == len(before)
    assert len(after.content) < 64 * 1024


def test_a_fair_note_still_makes_a_token(trainee):
    made = token_request(trainee, {"note": "n" * 1000, "expires_in": 600})
    assert made.status_code == 201, made.text[:300]
    assert made.json()["note"] == "n" * 1000


def test_an_over_large_body_is_answered_413_before_it_is_read(local_stack, trainee):
    """Headers declaring 150 MiB and the first 64 KiB of it (the proxy passes a request on
    with its first chunk): the answer comes without the rest."""
    with socket.create_connection(("127.0.0.1", local_stack.port), timeout=10) as conn:
        conn.sendall(
            (
                f"POST /hub/api/users/{trainee.name}/tokens HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{local_stack.port}\r\n"
                f"Authorization: token {trainee.token}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {150 * MiB}\r\n\r\n"
            ).encode()
            + b"x" * (64 * 1024)
        )
        started = time.monotonic()
        head = conn.recv(4096).decode(errors="replace")
    assert head.startswith("HTTP/1.1 413"), head[:200]
    assert time.monotonic() - started < 2


def test_a_client_sending_150_mib_gets_413_fast(trainee):
    started = time.monotonic()
    try:
        response = token_request(trainee, b"x" * (150 * MiB))
    except requests.ConnectionError as error:  # a reset after the answer: still refused
        pytest.fail(f"no answer, only {error!r}")
    assert response.status_code == 413, response.text[:200]
    assert time.monotonic() - started < 10


def test_bodies_up_to_the_limit_still_reach_the_api(trainee):
    # just under the limit, well-formed: checked (400 for the note), not refused for its size
    body = b'{"note": "' + b"n" * (MAX_BODY_BYTES - 100) + b'"}'
    response = token_request(trainee, body)
    assert response.status_code == 400, response.text[:200]
    assert "note" in response.json()["message"]


def test_a_notebook_of_some_mib_still_uploads_to_the_users_server(trainee):
    """Uploads go to the user's own server, which the hub's limit does not stand before."""
    trainee.start_server()
    try:
        big = {"cells": [], "metadata": {"blob": "b" * (6 * MiB)}, "nbformat": 4}
        put = trainee.api(
            "PUT",
            f"/user/{trainee.name}/api/contents/upload.ipynb",
            json={"type": "notebook", "format": "json", "content": big},
        )
        assert put.status_code in (200, 201), put.text[:300]
        assert put.json()["size"] > 6 * MiB
    finally:
        trainee.api("DELETE", f"/hub/api/users/{trainee.name}/server")


def test_tokens_per_user_are_bounded(trainee):
    path = f"/hub/api/users/{trainee.name}/tokens"
    held = len(trainee.api("GET", path).json()["api_tokens"])
    statuses = {
        token_request(trainee, {"note": "many", "expires_in": 600}).status_code
        for _ in range(MAX_API_TOKENS + 1 - held)
    }
    assert statuses == {201, 400}
    assert len(trainee.api("GET", path).json()["api_tokens"]) <= MAX_API_TOKENS + 2
    for token in trainee.api("GET", path).json()["api_tokens"]:
        if token["note"] == "many":
            trainee.api("DELETE", f"{path}/{token['id']}")


# --------------------------------------------------------------------------- typed JSON


@pytest.mark.parametrize(
    "body",
    [
        {"usernames": [1, 2, 3]},
        {"usernames": "x"},
        {"usernames": ["x"], "admin": "yes"},
        [1, 2, 3],
        b"not json at all",
        b"\xff\xfe\x00",
    ],
    ids=["ints", "string", "admin-string", "array", "not-json", "not-utf8"],
)
def test_ill_typed_json_is_a_400(admin_token, body):
    if isinstance(body, bytes):
        response = admin_token.api("POST", "/hub/api/users", data=body)
    else:
        response = admin_token.api("POST", "/hub/api/users", json=body)
    assert response.status_code == 400, response.text[:300]


@pytest.mark.parametrize(
    "body",
    [
        {"expires_in": 10**30},
        {"expires_in": "3600"},
        {"expires_in": -5},
        {"scopes": "read:users"},
        {"scopes": [1]},
        {"note": ["x"]},
    ],
    ids=[
        "expires-overflow",
        "expires-string",
        "expires-negative",
        "scopes-string",
        "scopes-ints",
        "note-list",
    ],
)
def test_ill_typed_token_requests_are_400(trainee, body):
    response = token_request(trainee, body)
    assert response.status_code == 400, response.text[:300]


# --------------------------------------------------------------------------- echoes


def test_errors_quote_only_a_short_prefix_of_the_input(trainee):
    big = "A" * (900 * 1024)
    for body in ({"scopes": [big]}, {"roles": [big]}, {"scopes": ["read:" + "x" * 200]}):
        response = token_request(trainee, body)
        assert response.status_code in (400, 403), response.text[:300]
        assert len(response.content) < SMALL_ERROR, response.text[:300]


def test_an_invalid_username_is_not_echoed_whole(admin_token):
    for name in ("A" * (900 * 1024), "A" * 250 + "!"):
        response = admin_token.api("POST", "/hub/api/users", json={"usernames": [name]})
        assert response.status_code == 400, response.text[:300]
        assert len(response.content) < SMALL_ERROR, response.text[:300]
    huge = admin_token.api("POST", "/hub/api/users", json={"usernames": ["A" * (10 * MiB)]})
    assert huge.status_code == 413 and len(huge.content) < SMALL_ERROR


def test_a_long_url_is_refused_short(trainee):
    # 12 KiB: the proxy itself refuses more than 16 KiB of headers (431)
    response = trainee.api("GET", "/hub/api/users/" + "a" * (12 * 1024))
    assert response.status_code == 414, response.text[:200]
    assert len(response.content) < SMALL_ERROR


# --------------------------------------------------------------------------- sign-in throttling

POLICY = ThrottlePolicy()


def test_guessing_a_password_is_throttled_without_locking_its_owner_out(local_stack, passwords):
    base = local_stack.base_url
    statuses = [
        sign_in(base, "ines", "wrong-guess", "127.0.0.2").status_code
        for _ in range(POLICY.free_failures + 2)
    ]
    assert statuses[: POLICY.free_failures] == [403] * POLICY.free_failures
    assert statuses[-1] == 429
    # the right password from the guesser's address is refused while the pair waits
    started = time.monotonic()
    refused = sign_in(base, "ines", passwords["admin"], "127.0.0.2")
    assert refused.status_code == 429 and "wait" in refused.text
    assert time.monotonic() - started < 2
    # ines from her own address is not held up
    assert sign_in(base, "ines", passwords["admin"], "127.0.0.3").status_code == 302
    # and once the wait is over, the right password works from anywhere
    time.sleep(float(refused.headers["Retry-After"]) + 0.5)
    assert sign_in(base, "ines", passwords["admin"], "127.0.0.2").status_code == 302


def test_spraying_usernames_exhausts_only_the_sprayers_address(local_stack, passwords):
    base = local_stack.base_url
    statuses = [
        sign_in(base, f"spray{n}", "wrong-guess", "127.0.0.4").status_code
        for n in range(POLICY.address_budget + 5)
    ]
    assert 429 in statuses[POLICY.address_budget :], statuses
    assert sign_in(base, "alice", passwords["user"], "127.0.0.5").status_code == 302


@pytest.mark.parametrize("through", ["proxy", "hub-port"])
def test_a_forged_forwarded_for_does_not_escape_the_throttle(local_stack, runtime, through):
    """Through the proxy, the address it appends is the one believed; straight to the hub's
    own port (a kernel reaches it on loopback), X-Forwarded-For is not believed at all."""
    if through == "proxy":
        hub, address = local_stack.base_url, "127.0.0.12"
    else:
        hub, address = f"http://127.0.0.1:{runtime.ports.hub_api}", "127.0.0.6"
    statuses = []
    for n in range(POLICY.free_failures + 2):
        user = user_from(hub, "ines", address)
        forged = {"X-Forwarded-For": f"10.9.{n}.1", "X-Real-Ip": f"10.8.{n}.1"}
        user.session.headers.update(forged)
        user.session.get(f"{hub}/hub/login", timeout=30)
        response = user.session.post(
            f"{hub}/hub/login",
            data={"username": "ines", "password": "wrong", "_xsrf": user.session.cookies["_xsrf"]},
            allow_redirects=False,
            timeout=30,
        )
        statuses.append(response.status_code)
    assert statuses[-1] == 429, statuses


def test_guessing_through_the_token_api_counts_too(local_stack, passwords, trainee):
    """``POST /hub/api/users/:name/tokens`` takes a username and password in its body (of a
    user the hub knows: tina, signed in by the fixture)."""
    session = requests.Session()
    session.mount("http://", FromAddress("127.0.0.7"))
    url = f"{local_stack.base_url}/hub/api/users/tina/tokens"

    def attempt(password: str) -> int:
        body = {"auth": {"username": "tina", "password": password}, "expires_in": 60}
        return session.post(url, json=body, timeout=30).status_code

    assert attempt(passwords["user"]) == 201
    statuses = [attempt("wrong-guess") for _ in range(POLICY.free_failures + 1)]
    assert statuses == [403] * (POLICY.free_failures + 1)
    # the pair now waits: the right password is refused unread, like a wrong one
    assert attempt(passwords["user"]) == 403
    # and the sign-in form from the same address says why
    assert sign_in(local_stack.base_url, "tina", passwords["user"], "127.0.0.7").status_code == 429


@pytest.mark.parametrize(
    "form",
    [{}, {"username": "tina"}, {"password": "x"}, {"username": "t" * 10_000, "password": "x"}],
    ids=["empty", "no-password", "no-username", "long-username"],
)
def test_odd_sign_in_forms_are_refused_not_500(local_stack, form):
    user = user_from(local_stack.base_url, "x", "127.0.0.8")
    user.session.get(f"{local_stack.base_url}/hub/login", timeout=30)
    response = user.session.post(
        f"{local_stack.base_url}/hub/login",
        data={**form, "_xsrf": user.session.cookies["_xsrf"]},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code in (400, 403), response.text[:300]
    assert "t" * 100 not in response.text
