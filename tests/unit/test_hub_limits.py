"""The hub's request limits, checked bodies and sign-in throttle, as pure parts and on a real
Tornado server; and that every mode's configuration applies them.

The same attacks against the whole local stack are in tests/integration/test_api_limits.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from traitlets.config import Config

from statbox.configure.hub import configure_hub
from statbox.contract import KUBE_PROXY_PEERS
from statbox.identity.auth import (
    SignInThrottled,
    StatboxOIDCAuthenticator,
    StatboxSharedPasswordAuthenticator,
)
from statbox.identity.hubapi import CHECKED_HANDLERS, NewToken, NewUsers, shape_error
from statbox.identity.limits import (
    MAX_MESSAGE_CHARS,
    MAX_TOKEN_LIFETIME_SECONDS,
    BoundedErrors,
    RequestLimits,
    bounded_message,
)
from statbox.identity.throttle import (
    ProxyPeers,
    SignInThrottle,
    ThrottlePolicy,
    forwarded_client,
    read_socket_tables,
    socket_owner,
)
from statbox.settings.model import parse_settings

# --------------------------------------------------------------------------- every mode


@pytest.fixture(params=["local", "docker", "kubernetes"])
def mode_config(request, runtime) -> tuple[str, Config]:
    settings = parse_settings({"mode": request.param})
    rt = dataclasses.replace(
        runtime,
        settings=settings,
        secrets={**runtime.secrets, "db_password": "p", "proxy_auth_token": "t"},
    )
    c = Config()
    configure_hub(c, rt)
    return request.param, c


def test_every_mode_bounds_errors_tokens_and_sign_ins(mode_config):
    mode, c = mode_config
    settings = c.JupyterHub.tornado_settings.get_value({"xsrf_cookies": True})
    assert settings == {"xsrf_cookies": True, "transforms": [BoundedErrors]}
    assert c.JupyterHub.token_expires_in_max_seconds == MAX_TOKEN_LIFETIME_SECONDS
    auth = c.StatboxSharedPasswordAuthenticator
    # only where the hub starts the proxy beside itself can it tell the proxy's socket; docker
    # mode's proxy is a container of its own, known by its private-network-only name
    expected = {"local": "proxy-socket", "docker": "proxy-host", "kubernetes": "proxy-host"}
    assert auth.forwarded_for_from == expected[mode]
    assert auth.proxy_account == ("nobody" if mode == "local" else "")
    # docker: the proxy container's private-network-only name; kubernetes: the chart's
    # headless Service selecting the proxy's pods (tests/chart checks it renders so)
    hosts = {"local": "", "docker": "statbox-proxy-api", "kubernetes": KUBE_PROXY_PEERS}
    assert auth.get("proxy_host", "") == hosts[mode]


def _sign_in_from(peer: str, forwarded: str) -> SimpleNamespace:
    """A sign-in request as the hub's handler sees it, from ``peer`` over TCP."""
    connection = SimpleNamespace(context=SimpleNamespace(address=(peer, 40000)), stream=None)
    request = SimpleNamespace(connection=connection, headers={"X-Forwarded-For": forwarded})
    return SimpleNamespace(request=request)


def test_only_the_proxy_hosts_address_may_name_the_client():
    auth = StatboxSharedPasswordAuthenticator(
        forwarded_for_from="proxy-host", proxy_host="localhost"
    )

    def client(peer: str, forwarded: str) -> str:
        return asyncio.run(auth.client_address(_sign_in_from(peer, forwarded)))

    # the proxy (here: what localhost resolves to) appends the address it saw
    assert client("127.0.0.1", "1.2.3.4, 203.0.113.9") == "203.0.113.9"
    # a user's server reaching the hub's API directly cannot name another address
    assert client("172.30.0.5", "203.0.113.9") == "172.30.0.5"
    # a proxy name that does not resolve (its container gone): nobody is trusted
    auth = StatboxSharedPasswordAuthenticator(
        forwarded_for_from="proxy-host", proxy_host="statbox-no-such-host.invalid"
    )
    assert client("127.0.0.1", "203.0.113.9") == "127.0.0.1"


class SignInOnly(web.RequestHandler):
    """The deciding part of the hub's login handler (statbox.identity.auth.StatboxLoginHandler
    posts to the authenticator and answers 429 when it is throttled), without the rest of a
    JupyterHub app: the real authenticator sees the real connection."""

    async def post(self) -> None:
        auth = self.settings["authenticator"]
        data = {k: self.get_body_argument(k) for k in ("username", "password")}
        try:
            user = await auth.authenticate(self, data)
        except SignInThrottled:
            self.set_status(429)
            return
        self.set_status(200 if user else 403)


def _post_sign_in(port: int, source: str, forwarded: str, username: str, password: str) -> int:
    """POST a sign-in from loopback address ``source`` (127.0.0.0/8 all reaches the server on
    127.0.0.1, each its own peer address), claiming to be ``forwarded``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        body = f"username={username}&password={password}"
        headers = {
            "X-Forwarded-For": forwarded,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        conn.request("POST", "/login", body=body, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_user_pod_forging_forwarded_for_spends_only_its_own_budget(runtime):
    """The attack on Kubernetes: a user pod reaches the hub's API directly (zero-to-jupyterhub's
    network policy lets it) and signs in wrongly with a forged X-Forwarded-For naming a
    classmate's address, to spend that address's budget and lock the classmate out. The hub
    configured for kubernetes mode believes the header from the proxy's addresses only (what
    proxy_host resolves to: in the cluster the chart's headless Service, here localhost, which
    /etc/hosts resolves to 127.0.0.1); the user pod is 127.0.0.2, counted by its own address."""
    settings = parse_settings({"mode": "kubernetes"})
    c = Config()
    configure_hub(c, dataclasses.replace(runtime, settings=settings))
    c.StatboxSharedPasswordAuthenticator.proxy_host = "localhost"  # the cluster's name, here
    auth = StatboxSharedPasswordAuthenticator(config=c, user_password="class-password-1")
    auth.throttle = SignInThrottle(ThrottlePolicy(free_failures=100, address_budget=3))
    proxy, user_pod, classmate = "127.0.0.1", "127.0.0.2", "203.0.113.9"
    with serving(lambda: web.Application([("/login", SignInOnly)], authenticator=auth)) as port:
        wrong = [
            _post_sign_in(port, user_pod, classmate, f"guess{n}", "wrong-password")
            for n in range(5)
        ]
        # the forger's own address ran out, after its budget of 3
        assert wrong == [403, 403, 403, 429, 429]
        # the classmate, through the proxy, from the forged address: untouched
        assert _post_sign_in(port, proxy, classmate, "amina", "class-password-1") == 200
        # and the proxy's own word is believed: a guesser behind it spends *its* address
        guesser = "198.51.100.7"
        tries = [_post_sign_in(port, proxy, guesser, f"g{n}", "nope") for n in range(4)]
        assert tries == [403, 403, 403, 429]
        assert _post_sign_in(port, proxy, classmate, "amina", "class-password-1") == 200


class CountingProxyPeers(ProxyPeers):
    """Real lookups, counted."""

    lookups = 0

    async def _resolve(self) -> frozenset[str]:
        self.lookups += 1
        return await super()._resolve()


def test_the_proxys_addresses_are_looked_up_once_per_ttl_even_by_a_crowd():
    now = [0.0]
    peers = CountingProxyPeers("localhost", ttl=5.0, clock=lambda: now[0])

    async def crowd() -> list[frozenset[str]]:
        return await asyncio.gather(*(peers.addresses() for _ in range(30)))

    answers = asyncio.run(crowd())
    assert peers.lookups == 1 and all(a == answers[0] for a in answers)
    assert "127.0.0.1" in answers[0]
    now[0] = 4.9
    asyncio.run(peers.addresses())
    assert peers.lookups == 1
    now[0] = 5.1
    asyncio.run(peers.addresses())
    assert peers.lookups == 2
    # a name that does not resolve: no address, nobody believed
    assert asyncio.run(ProxyPeers("statbox-no-such-host.invalid").addresses()) == frozenset()


@pytest.mark.parametrize("kind", [StatboxSharedPasswordAuthenticator, StatboxOIDCAuthenticator])
def test_the_limits_stand_before_every_upstream_handler(kind):
    handlers = kind(issuer="https://id.example").get_handlers(app=None)
    assert handlers[0][0] == "/.*" and isinstance(handlers[0][1], RequestLimits)
    assert handlers[1 : 1 + len(CHECKED_HANDLERS)] == CHECKED_HANDLERS


# --------------------------------------------------------------------------- a real server


class LoudError(web.RequestHandler):
    """Fails quoting its whole body, as upstream's handlers do."""

    def post(self) -> None:
        self.set_status(400)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": 400, "message": self.request.body.decode()}))


@contextlib.contextmanager
def serving(make_app: Callable[[], web.Application]) -> Iterator[int]:
    """A real Tornado server of ``make_app()`` on a loopback port, in a thread of its own;
    stopped on leaving."""
    started = threading.Event()
    state: dict = {}

    def run() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        http = HTTPServer(make_app())
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        http.add_sockets([sock])
        state.update(port=sock.getsockname()[1], loop=IOLoop.current(), http=http)
        started.set()
        IOLoop.current().start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield state["port"]
    finally:
        state["loop"].add_callback(state["http"].stop)
        state["loop"].add_callback(state["loop"].stop)
        thread.join(10)


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    """A Tornado app with the limits (1000 bytes) before a handler, on a loopback port."""
    with serving(
        lambda: web.Application(
            [(r"/.*", RequestLimits(max_body=1000, max_uri=200)), (r"/loud", LoudError)],
            transforms=[BoundedErrors],
        )
    ) as port:
        yield port


def exchange(port: int, request: bytes, timeout: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_an_over_large_declared_body_is_refused_before_any_of_it_is_sent(server):
    answer = exchange(server, b"POST /loud HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in answer and b"1000 bytes" in answer


def test_a_content_length_that_is_no_number_is_a_400(server):
    answer = exchange(server, b"POST /loud HTTP/1.1\r\nHost: x\r\nContent-Length: 1e9\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ") and b"not a number" in answer


def test_a_chunked_body_is_cut_at_the_limit(server):
    chunk = b"x" * 800
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    answer = exchange(
        server, b"POST /loud HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    )
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    assert b"x" * 100 not in answer


def test_a_long_url_is_refused(server):
    answer = exchange(server, b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 414")


def test_error_messages_are_cut_and_small_bodies_pass(server):
    loud = b"y" * 900
    answer = exchange(
        server,
        b"POST /loud HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 900\r\n\r\n"
        + loud,
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    message = json.loads(body)["message"]
    assert message.startswith("y" * MAX_MESSAGE_CHARS) and "600 more characters" in message
    assert f"Content-Length: {len(body)}".encode() in head


def test_bounded_message():
    assert bounded_message("short") == "short"
    assert bounded_message("z" * 10, limit=4) == "zzzz... (6 more characters)"


# --------------------------------------------------------------------------- body shapes


@pytest.mark.parametrize(
    ("shape", "body", "field"),
    [
        (NewUsers, {"usernames": [1, 2, 3]}, "usernames.0"),
        (NewUsers, {"usernames": "SECRET"}, "usernames"),
        (NewUsers, {"usernames": ["a"], "admin": "SECRET"}, "admin"),
        (NewToken, {"note": "SECRET" * 500}, "note"),
        (NewToken, {"expires_in": True}, "expires_in"),
        (NewToken, {"expires_in": 10**30}, "expires_in"),
        (NewToken, {"expires_in": 0}, "expires_in"),
        (NewToken, {"scopes": ["SECRET" * 100]}, "scopes.0"),
        (NewToken, {"roles": "SECRET"}, "roles"),
    ],
)
def test_ill_typed_bodies_name_the_field_never_the_value(shape, body, field):
    with pytest.raises(ValidationError) as refused:
        shape.model_validate(body)
    message = shape_error(refused.value)
    assert message.startswith(f"Invalid request body: {field}: ")
    assert "SECRET" not in message and len(message) < 200


@pytest.mark.parametrize(
    ("shape", "body"),
    [
        (NewUsers, {"usernames": ["alice", "bob"], "admin": False}),
        (NewToken, {}),
        (NewToken, {"note": "n" * 1023, "expires_in": 3600, "scopes": ["read:users!user"]}),
        (NewToken, {"note": None, "expires_in": None, "auth": {"username": "a"}}),
    ],
)
def test_well_formed_bodies_pass(shape, body):
    shape.model_validate(body)


# --------------------------------------------------------------------------- throttle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_pair_backs_off_and_doubles_and_other_pairs_are_free(clock):
    t = SignInThrottle(ThrottlePolicy(free_failures=3, first_backoff=2, max_backoff=10), clock)
    for _ in range(3):
        assert t.wait("alice", "10.0.0.9") == 0
        t.failed("alice", "10.0.0.9")
    assert t.wait("alice", "10.0.0.9") == 0  # the free failures are spent, no wait yet
    t.failed("alice", "10.0.0.9")
    assert t.wait("alice", "10.0.0.9") == 2
    assert t.wait("alice", "10.0.0.1") == 0  # alice at her own address
    assert t.wait("bob", "10.0.0.9") == 0  # another name from the guesser's address
    clock.now += 2
    t.failed("alice", "10.0.0.9")
    assert t.wait("alice", "10.0.0.9") == 4
    for _ in range(5):
        clock.now += 100
        t.failed("alice", "10.0.0.9")
    assert t.wait("alice", "10.0.0.9") == 10  # capped
    clock.now += 10
    assert t.wait("alice", "10.0.0.9") == 0
    t.succeeded("alice", "10.0.0.9")
    t.failed("alice", "10.0.0.9")
    assert t.wait("alice", "10.0.0.9") == 0  # a success starts the pair afresh


def test_an_address_spending_its_budget_waits_alone_and_refills(clock):
    t = SignInThrottle(ThrottlePolicy(address_budget=10, address_refill=3), clock)
    for n in range(10):
        t.failed(f"spray{n}", "10.0.0.9")
    assert t.wait("anyone", "10.0.0.9") == pytest.approx(3)
    assert t.wait("anyone", "10.0.0.1") == 0
    clock.now += 3
    assert t.wait("anyone", "10.0.0.9") == 0


def test_a_pair_is_forgotten_after_a_quiet_while(clock):
    t = SignInThrottle(ThrottlePolicy(free_failures=1, first_backoff=5, forget_after=60), clock)
    t.failed("alice", "a")
    t.failed("alice", "a")
    clock.now += 61
    t.failed("alice", "a")
    assert t.wait("alice", "a") == 0  # counted from one again


def test_memory_is_bounded(clock):
    t = SignInThrottle(ThrottlePolicy(max_entries=50), clock)
    for n in range(500):
        t.failed(f"u{n}", f"10.0.{n // 256}.{n % 256}")
    assert len(t._pairs) == 50 and len(t._budgets) == 50


# --------------------------------------------------------------------------- client address


def test_the_owner_of_a_real_connection_is_found():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, peer = listener.accept()
        with client, accepted:
            tables = read_socket_tables()
            assert socket_owner(tables, peer, accepted.getsockname()) == os.geteuid()
            # a peer that is not connected to us is nobody's
            assert socket_owner(tables, ("127.0.0.1", 1), accepted.getsockname()) is None


def test_socket_owner_reads_ipv6_tables():
    table = (
        "  sl  local_address                         remote_address                        st\n"
        "   0: 0000000000000000FFFF00000100007F:9C40 0000000000000000FFFF00000100007F:1F90 "
        "01 00000000:00000000 00:00000000 00000000   999        0 1 1 0 20 4 30 10 -1\n"
    )
    assert socket_owner([table], ("127.0.0.1", 40000), ("::ffff:127.0.0.1", 8080)) == 999


@pytest.mark.parametrize(
    ("header", "peer", "client"),
    [
        (None, "127.0.0.1", "127.0.0.1"),
        ("10.1.1.1", "127.0.0.1", "10.1.1.1"),
        ("6.6.6.6, 10.1.1.1", "127.0.0.1", "10.1.1.1"),  # what the client wrote comes first
        ("::ffff:10.1.1.1", "127.0.0.1", "10.1.1.1"),
    ],
)
def test_the_proxy_appends_the_client(header, peer, client):
    assert forwarded_client(header, peer) == client
