"""``statbox doctor``: what each mode needs, whether this machine has it, and how to fix it.

Each check is a small function returning a :class:`Finding`; the table :data:`CHECKS` says
which modes need it. A check never changes the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from statbox import sandbox
from statbox.modes.local.stack import PROXY_NAME, find_proxy, port_is_free
from statbox.sandbox import CgroupTree
from statbox.settings.model import LoadedSettings, Mode


@dataclass(frozen=True)
class Finding:
    ok: bool
    detail: str
    fix: str = ""


def check_proxy(loaded: LoadedSettings) -> Finding:
    proxy = find_proxy()
    if proxy is None:
        return Finding(
            False,
            f"{PROXY_NAME} not found",
            f"run `make up` (installs it), or `npm install -g {PROXY_NAME}`",
        )
    env = dict(os.environ, NODE_PATH=os.environ.get("NODE_PATH", "/usr/share/nodejs"))
    try:
        result = subprocess.run(
            [*proxy, "--version"], capture_output=True, text=True, timeout=30, env=env
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Finding(False, f"{proxy[0]} does not run: {exc}", "reinstall it with `make install`")
    if result.returncode != 0:
        return Finding(
            False,
            f"{proxy[0]} fails: {result.stderr.strip()[:200]}",
            "reinstall it with `make install`",
        )
    return Finding(True, f"{PROXY_NAME} {result.stdout.strip()} at {proxy[0]}")


def check_dask(loaded: LoadedSettings) -> Finding:
    dask = Path(sys.executable).parent / "dask"
    if dask.exists():
        return Finding(True, f"dask command at {dask}")
    return Finding(False, f"{dask} is missing", "reinstall Statbox: `make install`")


def check_port(loaded: LoadedSettings) -> Finding:
    hub = loaded.settings.hub
    if hub.port == 0 or port_is_free(hub.ip, hub.port):
        return Finding(True, f"port {hub.port} on {hub.ip} is free")
    own = own_running_port(loaded.paths.state_dir)
    if own is not None and own[1] == hub.port:
        # The running hub of this very state holds it: that is no failure.
        return Finding(
            True, f"port {hub.port} on {hub.ip} is this Statbox's own (its hub runs, pid {own[0]})"
        )
    return Finding(
        False, f"port {hub.port} on {hub.ip} is in use", "stop what uses it, or use --port"
    )


def own_running_port(state_dir: Path) -> tuple[int, int] | None:
    """(hub pid, public port) of a running ``statbox up`` of ``state_dir``, or None."""
    from statbox.configure.runtime import Ports
    from statbox.modes.local.stack import hub_running

    pid = hub_running(state_dir)
    if pid is None:
        return None
    try:
        ports = Ports.model_validate_json((state_dir / "run" / "ports.json").read_text())
    except (OSError, ValueError):
        return None
    return pid, ports.public


def check_state_dir(loaded: LoadedSettings) -> Finding:
    state = loaded.paths.state_dir
    existing = next((p for p in (state, *state.parents) if p.exists()), None)
    if existing is not None and os.access(existing, os.W_OK):
        return Finding(True, f"state directory {state} is writable")
    return Finding(False, f"cannot write {state}", "choose another with --state-dir")


def check_account(loaded: LoadedSettings) -> Finding:
    problem = sandbox.available()
    if problem:
        return Finding(False, "user servers cannot be sandboxed", problem)
    if os.geteuid() != 0:
        return Finding(True, f"servers run sandboxed as this account (uid {os.getuid()})")
    return Finding(True, "servers run sandboxed, each user under a uid of their own")


def check_isolation(loaded: LoadedSettings) -> Finding:
    """Advisory: what a local stack started by this account isolates."""
    if os.geteuid() != 0:
        return Finding(
            False,
            "started as a normal user, every user's server and Dask cluster runs under this "
            "one account, without memory, CPU or process caps: users can read each other's "
            "homes and tokens",
            "start `statbox up` as root to give each user a uid and a control group",
        )
    if CgroupTree.detect("statbox-doctor") is None:
        return Finding(
            False,
            "no writable control groups (memory, pids): role limits are not enforced",
            "run on a machine with cgroups v1, or v2 with memory and pids delegated",
        )
    tree = CgroupTree.detect("statbox-doctor")
    if tree is not None:
        tree.remove()
    return Finding(True, "a uid per user, memory, CPU and process caps per server and cluster")


PROJECT_QUOTA_OPTIONS = ("prjquota", "pquota", "pqnoenforce")


def check_home_quota(loaded: LoadedSettings) -> Finding:
    """Advisory: Statbox sets no per-home disk limit; say whether the file system could."""
    state = loaded.paths.state_dir
    existing = next((p for p in (state, *state.parents) if p.exists()), Path("/"))
    mount, fstype, options = _mount_of(existing)
    has_quota = any(option in options for option in PROJECT_QUOTA_OPTIONS)
    where = f"{mount} ({fstype}{', project quotas on' if has_quota else ', no project quotas'})"
    return Finding(
        False,
        f"per-home disk limit not enforced: homes share the free space of {where}; "
        "one user can fill it for everyone",
        "put paths.state_dir on a file system of its own, sized for the class"
        + (", and set a project quota per home (xfs_quota)" if has_quota else ""),
    )


def _mount_of(path: Path) -> tuple[str, str, list[str]]:
    """(mount point, file system type, options) of the mount holding ``path``."""
    best: tuple[str, str, list[str]] = ("/", "unknown", [])
    resolved = str(path.resolve())
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return best
    for line in lines:
        parts = line.split()
        if len(parts) < 4:
            continue
        point = parts[1]
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, parts[2], parts[3].split(","))
    return best


def check_docker(loaded: LoadedSettings) -> Finding:
    docker = shutil.which("docker")
    if docker is None:
        return Finding(False, "no docker client", "apt-get install docker.io")
    try:
        result = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return Finding(False, "the Docker engine does not answer", "start it, or set DOCKER_HOST")
    if result.returncode != 0:
        return Finding(
            False,
            "no Docker engine reachable",
            "start dockerd, or set DOCKER_HOST to a running engine",
        )
    return Finding(True, f"Docker engine {result.stdout.strip()}")


CHECKS: list[tuple[str, set[Mode], Callable[[LoadedSettings], Finding]]] = [
    ("proxy", {Mode.local}, check_proxy),
    ("dask", {Mode.local}, check_dask),
    ("port", {Mode.local}, check_port),
    ("state directory", {Mode.local, Mode.docker}, check_state_dir),
    ("server account", {Mode.local}, check_account),
    ("user isolation", set(), check_isolation),
    ("home disk limit", set(), check_home_quota),
    ("docker engine", {Mode.docker}, check_docker),
]
"""(name, modes that need it, check)."""


def run_checks(
    loaded: LoadedSettings, modes: set[Mode] | None = None
) -> list[tuple[str, bool, Finding]]:
    """Run every check; returns (name, needed by the selected modes, finding)."""
    selected = modes if modes is not None else {loaded.settings.mode}
    return [(name, bool(needed & selected), check(loaded)) for name, needed, check in CHECKS]
