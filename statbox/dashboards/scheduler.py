"""``dask scheduler``, its dashboard on a free port of the reserved range (local mode).

Dask Gateway starts every scheduler with ``--dashboard-address <host>:0``: a random port,
which no firewall rule can name. Set as ``ClusterConfig.scheduler_cmd``, this picks a free
port in :data:`statbox.contract.LOCAL_DASHBOARD_PORTS` instead and then becomes ``dask
scheduler`` (same process, same arguments otherwise), so the rule that keeps users' uids off
those ports covers every dashboard.

A port taken between the check and the scheduler's bind makes distributed fall back to a
random port (with a warning): the range is wide and the choice random to make that rare.
"""

from __future__ import annotations

import os
import random
import socket
import sys
from pathlib import Path

from statbox.contract import LOCAL_DASHBOARD_PORTS

DASHBOARD_FLAG = "--dashboard-address"


def free_port_in_range(host: str, first: int, last: int) -> int:
    """A port in [first, last] nothing listens on now, tried in random order."""
    ports = list(range(first, last + 1))
    random.shuffle(ports)
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {first}-{last} on {host} for a Dask dashboard")


def with_dashboard_port(args: list[str], first: int, last: int) -> list[str]:
    """``args`` with the dashboard's address moved onto a free port of the range."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg == DASHBOARD_FLAG and i + 1 < len(out):
            host = out[i + 1].rpartition(":")[0] or "127.0.0.1"
            out[i + 1] = f"{host}:{free_port_in_range(host, first, last)}"
            return out
    host = "127.0.0.1"
    return [*out, DASHBOARD_FLAG, f"{host}:{free_port_in_range(host, first, last)}"]


def main() -> None:
    dask = str(Path(sys.executable).parent / "dask")
    args = with_dashboard_port(sys.argv[1:], *LOCAL_DASHBOARD_PORTS)
    os.execv(dask, [dask, "scheduler", *args])


if __name__ == "__main__":
    main()
