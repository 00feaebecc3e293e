"""A private Docker engine for tests and benchmarks, and test networks that cannot leak.

:class:`PrivateEngine` starts Debian's ``dockerd`` with its own data root, exec root, socket
and pid file, without touching iptables and without the default bridge, and stops it by its
pid. The data root may be kept between runs (images then survive: repeated runs are fast);
everything else a run makes is removed by id when it ends.

:func:`isolated_network` creates an ``--internal`` bridge network and, because the engine
runs without its own iptables rules, drops all forwarding to and from that bridge on the
host, removing the rules afterwards. Nothing a container on it does can leave the machine.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


@dataclass
class PrivateEngine:
    """One dockerd of our own. Use :meth:`start` / :meth:`stop` or as a context manager."""

    data_root: Path
    run_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sbx-engine-")))
    proc: subprocess.Popen[bytes] | None = None
    client: Any = None

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "docker.pid"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 60) -> None:
        self.data_root.mkdir(parents=True, exist_ok=True)
        log = open(self.run_dir / "dockerd.log", "wb")  # noqa: SIM115 (held by the daemon)
        self.proc = subprocess.Popen(
            [
                "dockerd",
                f"--data-root={self.data_root}",
                # Short: unix socket paths under the exec root must fit in 108 bytes.
                f"--exec-root={self.run_dir / 'x'}",
                f"--host={self.host}",
                f"--pidfile={self.pid_file}",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--userland-proxy=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited: {self.log_tail()}")
            if self.socket.exists():
                with contextlib.suppress(Exception):
                    self.client = docker.DockerClient(
                        base_url=self.host, version="auto", timeout=600
                    )
                    self.client.ping()
                    return
            time.sleep(0.2)
        raise RuntimeError(f"dockerd did not answer within {timeout} s: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(
                (self.run_dir / "dockerd.log").read_text(errors="replace").splitlines()[-lines:]
            )
        return ""

    def remove_everything_but_images(self) -> None:
        """Remove every container, volume and user-defined network of this engine, by id.

        The engine is ours alone, so whatever it holds besides images came from a run of
        these tests (possibly one that was killed).
        """
        for container in self.client.containers.list(all=True):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True, v=True)
        for network in self.client.networks.list():
            if network.name not in ("bridge", "host", "none"):
                with contextlib.suppress(docker.errors.NotFound):
                    network.remove()
        for volume in self.client.volumes.list():
            with contextlib.suppress(docker.errors.NotFound):
                volume.remove(force=True)

    def stop(self, timeout: float = 30) -> None:
        """Stop the daemon by its pid (it stops its containerd), then wait for both to go."""
        if self.client is not None:
            self.client.close()
        pid = None
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.pid_file.read_text())
        if pid is None and self.proc is not None:
            pid = self.proc.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Mounts of a daemon that did not clean up would block removing its run dir.
        _run("umount", "--recursive", "--lazy", str(self.run_dir / "x"))
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @contextlib.contextmanager
    def running(self) -> Iterator[PrivateEngine]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def free_subnet(exclude: tuple[str, ...] = ()) -> str:
    """A /24 in 172.30.0.0/16 that no route on this host, nor ``exclude``, overlaps."""
    routes = _run("ip", "-4", "route", "show").stdout.split()
    taken = [ipaddress.ip_network(net) for net in exclude]
    for word in routes:
        with contextlib.suppress(ValueError):
            if "/" in word or word.count(".") == 3:
                taken.append(ipaddress.ip_network(word, strict=False))
    for third in range(secrets.randbelow(200), 256):
        candidate = ipaddress.ip_network(f"172.30.{third}.0/24")
        if not any(candidate.overlaps(net) for net in taken):
            return str(candidate)
    raise RuntimeError("no free 172.30.x.0/24 subnet on this host")


@dataclass
class IsolatedNetwork:
    name: str
    bridge: str
    subnet: str
    network: Any


@contextlib.contextmanager
def isolated_network(
    client: Any, name: str, labels: dict[str, str], subnet: str | None = None
) -> Iterator[IsolatedNetwork]:
    """An internal bridge network with host forwarding to and from it dropped; removed after."""
    bridge = f"sbx{secrets.token_hex(4)}"
    subnet = subnet or free_subnet()
    network = client.networks.create(
        name,
        driver="bridge",
        internal=True,
        labels=labels,
        options={"com.docker.network.bridge.name": bridge},
        ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)]),
    )
    # Into or out of the bridge from any other interface: dropped. Between containers on the
    # bridge (bridged traffic passes FORWARD too when br_netfilter is loaded): allowed.
    rules = [
        ["-i", bridge, "!", "-o", bridge, "-j", "DROP"],
        ["-o", bridge, "!", "-i", bridge, "-j", "DROP"],
    ]
    try:
        with forward_rules(rules):
            yield IsolatedNetwork(name, bridge, subnet, network)
    finally:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            network.reload()
            for container in network.containers:
                network.disconnect(container, force=True)
            network.remove()


@contextlib.contextmanager
def forwarding_dropped(subnet: str) -> Iterator[None]:
    """Host routing into or out of ``subnet`` dropped, bridged traffic (between containers of
    one bridge) allowed: for the users' networks, which the stack makes on bridges of the
    engine's naming, cut from ``subnet``. What an engine with its own iptables rules does for
    internal networks (this one runs without). Rules removed after."""
    routed = ["-m", "physdev", "!", "--physdev-is-bridged", "-j", "DROP"]
    with forward_rules([["-s", subnet, *routed], ["-d", subnet, *routed]]):
        yield


@contextlib.contextmanager
def forward_rules(rules: list[list[str]]) -> Iterator[None]:
    """``rules`` inserted into the host's FORWARD chain, each one added removed after."""
    added = []
    try:
        for rule in rules:
            done = _run("iptables", "-I", "FORWARD", *rule)
            if done.returncode != 0:
                raise RuntimeError(f"iptables refused to drop forwarding: {done.stderr}")
            added.append(rule)
        yield
    finally:
        for rule in added:
            _run("iptables", "-D", "FORWARD", *rule)


def forwarding_rules_for(bridge: str) -> list[str]:
    """The host's FORWARD rules naming ``bridge`` (to check they are in place, and gone)."""
    return [
        line for line in _run("iptables", "-S", "FORWARD").stdout.splitlines() if bridge in line
    ]
