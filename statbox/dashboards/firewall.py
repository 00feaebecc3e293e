"""Keep users' uids off the gateway's HTTP proxy and the schedulers' dashboards.

Wherever users' code shares a network namespace with the gateway and other users' clusters,
a connection's only mark of who made it is the uid of the socket's owner:

- local mode: users' servers, kernels and clusters run under uids from
  :data:`statbox.sandbox.accounts.FIRST_UID` on, on the host, and share its loopback;
- docker mode: every user's schedulers and workers run in the gateway's container, each
  user under a uid from :attr:`statbox.configure.gateway.PerUserAccountBackend.first_uid`
  on, and share its loopback and its private-network address.

An ``iptables`` chain, jumped to first thing from ``OUTPUT``, rejects (TCP reset) those
uids' connections to the gateway's HTTP port and to
:data:`statbox.contract.LOCAL_DASHBOARD_PORTS` (where every scheduler serves its dashboard,
:mod:`statbox.dashboards.scheduler`; workers serve none), so the dashboards' front (the
hub's service, which checks who asks) is the only way in. Everything else they need stays
open (the hub, the gateway's TLS entrypoint and internal API).

Local mode installs its chain when the stack starts and removes it when it stops (a chain
left by a crash is replaced at the next start); the gateway's container installs its own
(:func:`gateway_container_firewall`) each time the gateway starts there, before any cluster
can run (``statbox/resources/gateway_config.py``). Needs root (with ``CAP_NET_ADMIN`` in a
container).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from statbox.contract import LOCAL_DASHBOARD_PORTS
from statbox.errors import EnvironmentProblem
from statbox.sandbox.accounts import FIRST_UID

SYSTEM_BIN = "/usr/sbin:/sbin"
"""Where iptables lives, also when PATH has no sbin folder (as in Statbox's images)."""

LAST_UID = 2**32 - 2
"""The largest uid (``(uid_t)-1`` means "no uid")."""


def iptables() -> str | None:
    """The iptables command: on PATH, else in the system's sbin folders; None if absent."""
    return shutil.which("iptables") or shutil.which("iptables", path=SYSTEM_BIN)


@dataclass(frozen=True)
class UidFirewall:
    """Rejects TCP connections from ``uids`` (first, last) to ``ports`` (single ports and
    ``(first, last)`` ranges), over ``interface`` only (None: over every interface)."""

    chain: str
    uids: tuple[int, int]
    ports: tuple[int | tuple[int, int], ...]
    interface: str | None = "lo"

    def _iptables(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # -w: wait for the xtables lock rather than fail when another tool holds it
        return subprocess.run(
            [iptables() or "iptables", "-w", *args],
            capture_output=True, text=True, check=check, timeout=60,
        )  # fmt: skip

    def jump(self) -> list[str]:
        through = ["-o", self.interface] if self.interface else []
        return ["OUTPUT", *through, "-j", self.chain]

    def rule(self) -> list[str]:
        ports = ",".join(str(p) if isinstance(p, int) else f"{p[0]}:{p[1]}" for p in self.ports)
        return [
            "-p", "tcp",
            "-m", "owner", "--uid-owner", f"{self.uids[0]}-{self.uids[1]}",
            "-m", "multiport", "--dports", ports,
            "-j", "REJECT", "--reject-with", "tcp-reset",
        ]  # fmt: skip

    def install(self) -> None:
        """(Re)create the chain with the rule and jump to it first thing in OUTPUT."""
        if iptables() is None:
            raise EnvironmentProblem(
                "iptables was not found: it keeps users away from each other's Dask "
                "dashboards; as root: apt-get install iptables"
            )
        self.remove()
        try:
            self._iptables("-N", self.chain)
            self._iptables("-A", self.chain, *self.rule())
            self._iptables("-I", *self.jump()[:1], "1", *self.jump()[1:])
        except subprocess.CalledProcessError as exc:
            self.remove()
            raise EnvironmentProblem(
                f"iptables refused the dashboards' rule ({exc.stderr.strip()}): "
                "it needs CAP_NET_ADMIN and the owner and multiport matches (xt_owner, "
                "xt_multiport)"
            ) from None

    def remove(self) -> None:
        """Remove the jump(s) and the chain; nothing when they are not there."""
        if iptables() is None:
            return
        while self._iptables("-D", *self.jump(), check=False).returncode == 0:
            pass
        self._iptables("-F", self.chain, check=False)
        self._iptables("-X", self.chain, check=False)


def dashboards_firewall(state_dir: Path, gateway_http: int) -> UidFirewall:
    """Local mode: the loopback rule of the stack whose state is in ``state_dir`` (its chain
    is named after it, so that two stacks on one machine keep their own)."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]
    return UidFirewall(
        chain=f"STATBOX-DASH-{digest}",
        uids=(FIRST_UID, LAST_UID),
        ports=(gateway_http, LOCAL_DASHBOARD_PORTS),
    )


GATEWAY_CONTAINER_CHAIN = "STATBOX-DASH"
"""The chain's name in the gateway's container (a network namespace of its own)."""


def gateway_container_firewall(first_uid: int, gateway_http: int) -> UidFirewall:
    """Docker mode: the rule in the gateway's container, over every interface (its HTTP
    side listens on the private network's address, not on loopback)."""
    return UidFirewall(
        chain=GATEWAY_CONTAINER_CHAIN,
        uids=(first_uid, LAST_UID),
        ports=(gateway_http, LOCAL_DASHBOARD_PORTS),
        interface=None,
    )
