"""Stock JupyterHub beside Statbox in the benchmarks (bench/spawn.py, bench/faults.py): where
it listens and keeps its files, and how it is started.

Every port is a free one on loopback, every file in the hub's own folder; the hub runs in a
session of its own, so that the benchmark can stop it and what it started, by pid.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from statbox.modes.local.stack import find_proxy, free_port

PLACES = """\
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_port}"
c.ConfigurableHTTPProxy.command = {proxy!r}
c.ConfigurableHTTPProxy.pid_file = "{folder}/proxy.pid"
c.JupyterHub.pid_file = "{folder}/jupyterhub.pid"
c.JupyterHub.db_url = "sqlite:///{folder}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{folder}/cookie_secret"
"""
"""The start of every stock hub's configuration: its addresses and files."""

CONFIG_FILE = "jupyterhub_config.py"


@dataclass(frozen=True)
class StockHub:
    """A stock JupyterHub's folder and ports (see :meth:`prepare`)."""

    folder: Path
    port: int
    hub_port: int
    proxy_port: int

    @classmethod
    def prepare(cls, folder: Path, rest: str) -> StockHub:
        """Free ports, and ``folder/jupyterhub_config.py``: :data:`PLACES`, then ``rest``
        (the authenticator and the spawner, already formatted)."""
        hub = cls(folder, free_port(), free_port(), free_port())
        places = PLACES.format(
            port=hub.port,
            hub_port=hub.hub_port,
            proxy_port=hub.proxy_port,
            proxy=find_proxy(),
            folder=folder,
        )
        (folder / CONFIG_FILE).write_text(places + rest)
        return hub

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(
        self, log: str = "jupyterhub.log", env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start the hub (it starts its proxy), its output appended to ``folder/log``, with
        ``env`` added to this environment."""
        output = open(self.folder / log, "ab")  # noqa: SIM115 (the child holds it)
        # Debian's configurable-http-proxy finds its modules (commander) only there
        node_path = os.environ.get("NODE_PATH", "/usr/share/nodejs")
        return subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.folder / CONFIG_FILE)],
            cwd=self.folder,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NODE_PATH": node_path, **(env or {})},
            start_new_session=True,
        )
