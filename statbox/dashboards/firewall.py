"""Local mode: keep users' uids off the gateway's HTTP proxy and the schedulers' dashboards.

Users' servers and kernels run under uids from :data:`statbox.sandbox.accounts.FIRST_UID`
on, on the same host as the gateway, and share its loopback. An ``iptables`` chain of this
stack's own, jumped to from ``OUTPUT`` for loopback traffic, rejects (TCP reset) their
connections to the gateway's HTTP port and to :data:`statbox.contract.LOCAL_DASHBOARD_PORTS`,
so the dashboards' front (the hub's service, running as the hub's account) is the only way
in. Everything else they need stays open (the hub, the gateway's TLS entrypoint).

Installed when the stack starts and removed when it stops; a chain left by a crash is
replaced at the next start. Needs root (as does running users under their own uids).
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

LAST_UID = 2**32 - 2
"""The largest uid (``(uid_t)-1`` means "no uid")."""


@dataclass(frozen=True)
class LoopbackFirewall:
    """Rejects TCP connections over loopback from ``uids`` (first, last) to ``ports``.

    ``ports``: single ports and ``(first, last)`` ranges.
    """

    chain: str
    uids: tuple[int, int]
    ports: tuple[int | tuple[int, int], ...]

    def _iptables(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # -w: wait for the xtables lock rather than fail when another tool holds it
        return subprocess.run(
            ["iptables", "-w", *args], capture_output=True, text=True, check=check, timeout=60
        )

    def _jump(self) -> list[str]:
        return ["OUTPUT", "-o", "lo", "-j", self.chain]

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
        if shutil.which("iptables") is None:
            raise EnvironmentProblem(
                "iptables was not found: local mode needs it, as root, to keep users away from "
                "Dask dashboards (apt-get install iptables)"
            )
        self.remove()
        try:
            self._iptables("-N", self.chain)
            self._iptables("-A", self.chain, *self.rule())
            self._iptables("-I", *self._jump()[:1], "1", *self._jump()[1:])
        except subprocess.CalledProcessError as exc:
            self.remove()
            raise EnvironmentProblem(
                f"iptables refused the dashboards' rule ({exc.stderr.strip()}): "
                "local mode needs the owner and multiport matches (xt_owner, xt_multiport)"
            ) from None

    def remove(self) -> None:
        """Remove the jump(s) and the chain; nothing when they are not there."""
        if shutil.which("iptables") is None:
            return
        while self._iptables("-D", *self._jump(), check=False).returncode == 0:
            pass
        self._iptables("-F", self.chain, check=False)
        self._iptables("-X", self.chain, check=False)


def dashboards_firewall(state_dir: Path, gateway_http: int) -> LoopbackFirewall:
    """The rule of the stack whose state is in ``state_dir`` (its chain is named after it,
    so that two stacks on one machine keep their own)."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:10]
    return LoopbackFirewall(
        chain=f"STATBOX-DASH-{digest}",
        uids=(FIRST_UID, LAST_UID),
        ports=(gateway_http, LOCAL_DASHBOARD_PORTS),
    )
