"""Throttling of failed sign-ins, keyed so that nobody can lock someone else out from afar.

Two limits, both counting failures only and both checked before a password is:

* per (username, client address): a few free failures, then a back-off that doubles with each
  further failure up to a cap. Someone hammering "alice" from their address makes *that pair*
  wait; alice signing in from her own address is untouched.
* per client address: a budget of failures refilled at a steady rate. It is what stops a
  guesser who tries a new username every time (with a class password, any username will do).
  Everyone behind one address shares it, so it is generous: a whole class mistyping at 9:00
  stays well inside it.

A throttled attempt is refused without looking at the password, so the refusal tells the
guesser nothing; the right password works again as soon as the wait is over.

The client address is the connection's peer, except for requests the hub's own proxy passed on,
whose address the proxy appended to ``X-Forwarded-For``. Whether a connection comes from the
proxy is decided by who owns the socket at the other end (``/proc/net/tcp``: the proxy's
account, in the hub's network namespace) or, where the proxy has a network namespace of its own
(a container, a pod), by the peer's address being one a name of the proxy's resolves to
(:class:`ProxyPeers`: a container name on a private network, a headless Service selecting the
proxy's pods); never by headers a client can send: a user's kernel reaches the hub's port too,
and Tornado itself believes any ``X-Forwarded-For`` or ``X-Real-Ip``.

Invariant: memory is bounded (:attr:`ThrottlePolicy.max_entries` records per table) and no call
sleeps: a throttled attempt is answered at once with how long to wait.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many failed sign-ins are let through, and how long the rest wait (seconds)."""

    free_failures: int = 5
    """Failures of one (username, address) pair before it must wait."""
    first_backoff: float = 2.0
    """The first wait of a pair; each further failure doubles it."""
    max_backoff: float = 300.0
    """The longest wait of a pair."""
    forget_after: float = 900.0
    """A pair with no failure for this long starts again with its free failures."""
    address_budget: int = 60
    """Failures from one address (any usernames) before it must wait."""
    address_refill: float = 5.0
    """Seconds that give one failure back to an address's budget."""
    max_entries: int = 100_000
    """Records kept per table; the oldest go first."""


@dataclass
class _Pair:
    failures: int
    last_failure: float
    until: float


@dataclass
class _Budget:
    left: float
    updated: float


class SignInThrottle:
    """Failed sign-ins per (username, address) and per address; see the module's docstring."""

    def __init__(
        self, policy: ThrottlePolicy | None = None, clock: Callable[[], float] = time.monotonic
    ):
        self.policy = policy or ThrottlePolicy()
        self.clock = clock
        self._pairs: OrderedDict[tuple[str, str], _Pair] = OrderedDict()
        self._budgets: OrderedDict[str, _Budget] = OrderedDict()

    def wait(self, username: str, address: str) -> float:
        """Seconds before ``username`` may try again from ``address`` (0: try now)."""
        now = self.clock()
        pair = self._pair(username, address, now)
        pair_wait = max(0.0, pair.until - now) if pair else 0.0
        budget = self._budget(address, now)
        address_wait = (1 - budget.left) * self.policy.address_refill if budget.left < 1 else 0.0
        return max(pair_wait, address_wait)

    def failed(self, username: str, address: str) -> None:
        """Count a wrong password of ``username`` from ``address``."""
        p, now = self.policy, self.clock()
        pair = self._pair(username, address, now) or _Pair(0, now, now)
        pair.failures += 1
        pair.last_failure = now
        beyond = pair.failures - p.free_failures
        if beyond > 0:
            pair.until = now + min(p.max_backoff, p.first_backoff * 2 ** min(beyond - 1, 30))
        self._keep(self._pairs, (username, address), pair)
        budget = self._budget(address, now)
        budget.left -= 1
        self._keep(self._budgets, address, budget)

    def succeeded(self, username: str, address: str) -> None:
        """A right password: the pair starts afresh (the address's budget refills with time)."""
        self._pairs.pop((username, address), None)

    def _pair(self, username: str, address: str, now: float) -> _Pair | None:
        pair = self._pairs.get((username, address))
        if pair and now - pair.last_failure > self.policy.forget_after and now >= pair.until:
            del self._pairs[(username, address)]
            return None
        return pair

    def _budget(self, address: str, now: float) -> _Budget:
        p = self.policy
        budget = self._budgets.get(address) or _Budget(float(p.address_budget), now)
        budget.left = min(p.address_budget, budget.left + (now - budget.updated) / p.address_refill)
        budget.updated = now
        return budget

    def _keep(self, table: OrderedDict[Any, Any], key: Any, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self.policy.max_entries:
            table.popitem(last=False)


# --------------------------------------------------------------------------- client address

PROC_NET_TCP = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def _hex_address(text: str) -> tuple[str, int]:
    """``0100007F:1F90`` (as /proc/net/tcp writes it: 32-bit words in host order) to
    ``("127.0.0.1", 8080)``."""
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    # each 4-byte word is little-endian on the machines Statbox runs on (x86-64, arm64)
    packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return normal_ip(str(ipaddress.ip_address(packed))), int(port, 16)


def normal_ip(text: str) -> str:
    """An address in one spelling: IPv4-mapped IPv6 as IPv4; anything unparsable as is."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return text.strip()
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def socket_owner(
    tables: Iterable[str], peer: tuple[str, int], local: tuple[str, int]
) -> int | None:
    """The uid owning the socket at ``peer`` connected to ``local``, from the text of
    ``/proc/net/tcp`` tables; None when it is not in them (another network namespace)."""
    want_peer = (normal_ip(peer[0]), peer[1])
    want_local = (normal_ip(local[0]), local[1])
    # Parse only the lines holding both ports: a busy hub has thousands of sockets.
    ports = (f":{peer[1]:04X} ", f":{local[1]:04X} ")
    for table in tables:
        for line in table.splitlines()[1:]:
            if not all(port in line for port in ports):
                continue
            fields = line.split()
            if len(fields) < 8:
                continue
            try:
                mine, theirs = _hex_address(fields[1]), _hex_address(fields[2])
            except ValueError:
                continue
            if mine == want_peer and theirs == want_local:
                return int(fields[7])
    return None


def read_socket_tables(paths: Iterable[Path] = PROC_NET_TCP) -> list[str]:
    """The machine's TCP socket tables as text (those that exist)."""
    tables = []
    for path in paths:
        try:
            tables.append(path.read_text())
        except OSError:
            continue
    return tables


def forwarded_client(forwarded_for: str | None, peer: str) -> str:
    """The address the proxy saw: the last entry of ``X-Forwarded-For`` (the proxy appends it;
    entries before it are the client's to write), else the peer."""
    if not forwarded_for:
        return normal_ip(peer)
    return normal_ip(forwarded_for.split(",")[-1])


class ProxyPeers:
    """The addresses a name of the proxy resolves to, looked up at most once per ``ttl``.

    The name must resolve to the proxy's own addresses and nobody else's (docker mode: the
    proxy container's name on a private network; Kubernetes: a headless Service selecting the
    proxy's pods, whose DNS answer is the pods' addresses). A name that does not resolve (the
    proxy is being replaced) gives no address: nobody's ``X-Forwarded-For`` is believed then,
    and sign-ins are counted by their peer.

    The lookup runs off the event loop (the resolver may take seconds), at most one at a
    time: thirty sign-ins at 9:00 wait for one answer. Each answer, found or not, is kept for
    ``ttl`` seconds, so a proxy created again with another address is known within that.
    """

    def __init__(
        self, name: str, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.ttl = ttl
        self.clock = clock
        self._addresses: frozenset[str] = frozenset()
        self._until = -float("inf")
        self._lookup: asyncio.Future[frozenset[str]] | None = None

    async def addresses(self) -> frozenset[str]:
        """Where the proxy is now (normal spellings, see :func:`normal_ip`)."""
        if self.clock() < self._until:
            return self._addresses
        if self._lookup is None:
            self._lookup = asyncio.ensure_future(self._resolve())
        lookup = self._lookup
        try:
            found = await asyncio.shield(lookup)
        finally:
            if self._lookup is lookup and lookup.done():
                self._lookup = None
        self._addresses, self._until = found, self.clock() + self.ttl
        return found

    async def _resolve(self) -> frozenset[str]:
        if not self.name:
            return frozenset()
        loop = asyncio.get_running_loop()
        try:
            answers = await loop.getaddrinfo(self.name, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):  # not found, or a name the resolver cannot spell
            return frozenset()
        return frozenset(normal_ip(str(answer[4][0])) for answer in answers)
