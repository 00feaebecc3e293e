"""Local mode: run Dask Gateway and JupyterHub (with its proxy) as processes on this machine.

Invariants:

* Preparation (settings, proxy, ports, accounts) is checked before anything starts; a problem
  raises with a message saying what to do, and no process is left running.
* The gateway starts first (the hub waits up to 30 s for a service that is not up), then the
  hub; both in their own sessions, so a Ctrl-C reaches only this supervisor, which stops them
  in order: hub (which stops its proxy, servers and cullers), then gateway (which stops its
  clusters). Anything of theirs still alive after that is killed: nothing is left behind.
* When started as root, each user's server and Dask clusters run in their sandbox under a
  uid of that user's own (statbox.spawners.local, statbox.spawners.local_dask); the hub and
  the gateway stay root to start them, the proxy runs as the unprivileged ``local.run_as``.
  Secrets reach the hub and the gateway as files only root may read, never by environment.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import psutil

from statbox import resources
from statbox.configure.credentials import Credentials, resolve_credentials, secret_problems
from statbox.configure.hub import GATEWAY_PREFIX
from statbox.configure.hubdb import check_local as check_hub_database
from statbox.configure.runtime import RUNTIME_ENV, Ports, Runtime, write_runtime
from statbox.contract import SECRET_ENV, SECRETS_DIR_ENV
from statbox.dashboards.firewall import UidFirewall, dashboards_firewall
from statbox.errors import BadInput, EnvironmentProblem, StatboxError
from statbox.resources import resource
from statbox.sandbox import CgroupTree
from statbox.settings.model import LoadedSettings

HUB_CONFIG = resource(resources.HUB_CONFIG)
GATEWAY_CONFIG = resource(resources.GATEWAY_CONFIG)
PROXY_NAME = "configurable-http-proxy"


START_TIMEOUT = 90.0
"""Seconds the gateway and the hub each have to answer their health check."""


def find_proxy(environ: dict[str, str] | None = None) -> list[str] | None:
    """The configurable-http-proxy command: ``$STATBOX_PROXY``, the one ``make`` installs
    beside this interpreter, or one on PATH. Debian's package needs NODE_PATH (or it
    cannot find its own modules), which :meth:`LocalStack.hub_environment` provides."""
    env = os.environ if environ is None else environ
    candidates = [
        env.get("STATBOX_PROXY"),
        str(Path(sys.prefix) / "node" / "node_modules" / ".bin" / PROXY_NAME),
        # as an offline bundle lays it down (no .bin/ links)
        str(Path(sys.prefix) / "node" / "node_modules" / PROXY_NAME / "bin" / PROXY_NAME),
        shutil.which(PROXY_NAME, path=env.get("PATH")),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return [candidate]
    return None


def free_port(ip: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


def port_is_free(ip: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip, port))
        except OSError:
            return False
    return True


def unprivileged_account(name: str) -> pwd.struct_passwd | None:
    """The account servers run as: ``name`` when this process is root, else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise EnvironmentProblem(
            f"local.run_as: there is no account {name!r} on this machine: create it "
            f"(useradd --system {name}) or name another unprivileged account"
        ) from None


class LocalStack:
    """The processes of one local-mode run; use as a context manager or start()/stop()."""

    def __init__(self, loaded: LoadedSettings, start_timeout: float = START_TIMEOUT):
        self.loaded = loaded
        self.start_timeout = start_timeout
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []
        self.runtime: Runtime | None = None
        self.credentials: Credentials | None = None
        self._firewall: UidFirewall | None = None

    # ---------------------------------------------------------------- preparation

    @property
    def state_dir(self) -> Path:
        return self.loaded.paths.state_dir

    @property
    def url(self) -> str:
        assert self.runtime is not None
        host = self.loaded.settings.hub.ip
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{host}:{self.runtime.ports.public}/"

    def prepare(self) -> Runtime:
        """Check everything and write the run's files; start nothing."""
        settings = self.loaded.settings
        proxy = find_proxy()
        if proxy is None:
            raise EnvironmentProblem(
                f"{PROXY_NAME} was not found: `make up` installs it; or install it with "
                f"`npm install -g {PROXY_NAME}`, or point STATBOX_PROXY at it"
            )
        ip, port = settings.hub.ip, settings.hub.port
        if port == 0:
            port = free_port(ip)
        elif not port_is_free(ip, port):
            raise EnvironmentProblem(
                f"port {port} on {ip} is in use: stop what uses it, or choose another port "
                "with --port (or hub.port in the settings)"
            )
        problems = secret_problems(settings, self.loaded.paths.state_dir)
        if problems:
            raise BadInput(*problems)
        paths = self.loaded.paths
        for name, path in (("catalog", paths.catalog), ("curriculum", paths.curriculum)):
            if not path.exists():
                raise BadInput(
                    f"paths.{name}: {path} does not exist: create it, or set paths.{name}"
                )
        check_hub_database(self.state_dir)  # damaged or emptied: refused, nothing changed
        run_dir = self.state_dir / "run"
        gateway_dir = self.state_dir / "gateway"
        # Users reach only what their sandbox binds (statbox.spawners.local): their home and
        # their catalog. The hub database, secrets, logs, the gateway's state and the uid
        # registry are root's alone; run/runtime.json holds no secret.
        for directory, mode in (
            (self.state_dir, 0o711),
            (run_dir, 0o755),
            (self.state_dir / "homes", 0o711),
            (self.state_dir / "logs", 0o700),
            (gateway_dir, 0o700),
        ):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(mode)

        self.credentials = resolve_credentials(settings, self.state_dir)
        ports = Ports(
            public=port,
            hub_api=free_port(),
            proxy_api=free_port(),
            gateway_api=free_port(),
            gateway_http=free_port(),
            gateway_tcp=free_port(),
            dashboards=free_port(),
        )
        self.runtime = Runtime(
            settings=settings,
            paths=self.loaded.paths,
            ports=ports,
            proxy_command=self._as_service_account(proxy),
            python=sys.executable,
            run_as=None,
            secrets=dict(self.credentials.values),
        )
        write_runtime(run_dir / "runtime.json", self.runtime)
        return self.runtime

    def _as_service_account(self, command: list[str]) -> list[str]:
        """``command`` under ``local.run_as`` with no capability, as root; else as is.

        The proxy: it needs no privilege (its ports are unprivileged) and runs no user code,
        but faces the network. The hub and the gateway stay root: they start every user's
        sandbox under that user's uid and manage control groups, which needs root."""
        account = unprivileged_account(self.loaded.settings.local.run_as)
        if account is None:
            return command
        return [
            shutil.which("setpriv") or "setpriv",
            f"--reuid={account.pw_uid}",
            f"--regid={account.pw_gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
            *command,
        ]

    def environment(self) -> dict[str, str]:
        """Environment of the hub and gateway: ours, the runtime, the secrets, the tools."""
        assert self.runtime is not None and self.credentials is not None
        # No secret in it: children the hub starts (the proxy, services) inherit it. The hub
        # and gateway read theirs from files only root may read.
        env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV.values()}
        env[RUNTIME_ENV] = str(self.state_dir / "run" / "runtime.json")
        env[SECRETS_DIR_ENV] = str(self.credentials.write_files(self.state_dir / "run" / "secrets"))
        env["PATH"] = os.pathsep.join([str(self.runtime.bin_dir), env.get("PATH", "")])
        # Debian's configurable-http-proxy finds its modules only with this.
        env.setdefault("NODE_PATH", "/usr/share/nodejs")
        return env

    # ---------------------------------------------------------------- processes

    def start(self) -> None:
        """Start gateway then hub; on any failure stop what started and raise."""
        if self.runtime is None:
            self.prepare()
        assert self.runtime is not None
        try:
            self._guard_dashboards()
            self._start_gateway()
            self._start_hub()
        except BaseException:
            self.stop()
            raise

    def _guard_dashboards(self) -> None:
        """Root runs users under their own uids: keep those off the gateway's HTTP side and
        the dashboards (only the hub's front may reach them). Without root every server runs
        as this account, and there is no other uid to keep out."""
        assert self.runtime is not None
        if os.geteuid() == 0:
            self._firewall = dashboards_firewall(self.state_dir, self.runtime.ports.gateway_http)
            self._firewall.install()

    def _spawn(self, name: str, cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        log = open(self.state_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 (closed in stop)
        self._logs.append(log)
        proc = subprocess.Popen(
            cmd,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kwargs,
        )
        self.processes[name] = proc
        return proc

    def _start_gateway(self) -> None:
        assert self.runtime is not None
        # As root: it starts each user's clusters under their uid, in their sandbox, and
        # caps itself in a control group of its own (statbox.spawners.local_dask).
        proc = self._spawn(
            "gateway",
            [self.runtime.python, "-m", "dask_gateway_server", "-f", str(GATEWAY_CONFIG)],
            cwd=str(self.state_dir / "gateway"),
            umask=0o077,
        )
        url = f"{self.runtime.gateway_url}{GATEWAY_PREFIX}/api/health"
        self._wait_for(url, proc, "gateway")

    def _start_hub(self) -> None:
        assert self.runtime is not None
        proc = self._spawn(
            "hub",
            [self.runtime.python, "-m", "jupyterhub", "-f", str(HUB_CONFIG)],
            cwd=str(self.state_dir),
            umask=0o077,  # the hub's database and cookie secret: not for user servers' eyes
        )
        self._wait_for(f"http://127.0.0.1:{self.runtime.ports.public}/hub/health", proc, "hub")

    def _wait_for(self, url: str, proc: subprocess.Popen[bytes], name: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StatboxError(
                    f"the {name} exited with code {proc.returncode} while starting. "
                    f"Last lines of {self.state_dir / 'logs' / (name + '.log')}:",
                    *self.log_tail(name),
                )
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, timeout=2) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.1)
        raise StatboxError(
            f"the {name} did not answer {url} within {self.start_timeout:.0f} s. "
            f"Last lines of its log:",
            *self.log_tail(name),
        )

    def log_tail(self, name: str, lines: int = 15) -> list[str]:
        path = self.state_dir / "logs" / f"{name}.log"
        try:
            return ["  " + line for line in path.read_text(errors="replace").splitlines()[-lines:]]
        except OSError:
            return []

    def descendants(self) -> list[psutil.Process]:
        """Every live process this stack started, directly or through the hub or gateway."""
        found: list[psutil.Process] = []
        for proc in self.processes.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                parent = psutil.Process(proc.pid)
                found.append(parent)
                found.extend(parent.children(recursive=True))
        return found

    def stop(self, timeout: float = 20.0) -> None:
        """Stop hub then gateway gracefully; kill whatever of theirs is left."""
        leftovers = self.descendants()
        for name in ("hub", "gateway"):
            proc = self.processes.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for survivor in leftovers:
            with contextlib.suppress(psutil.NoSuchProcess):
                survivor.kill()
        psutil.wait_procs(leftovers, timeout=5)
        self.clear_control_groups()
        if self._firewall is not None:
            self._firewall.remove()
            self._firewall = None
        shutil.rmtree(self.state_dir / "run" / "secrets", ignore_errors=True)
        for log in self._logs:
            log.close()
        self._logs.clear()
        self.processes.clear()

    def clear_control_groups(self) -> None:
        """Kill what is left in the stack's control groups (servers', clusters', the
        gateway's): a process a user detached, reparented away from the hub, is still in
        one of them."""
        if self.runtime is None or os.geteuid() != 0:
            return
        for tree_name in (
            f"statbox-servers-{self.runtime.ports.public}",
            f"statbox-dask-{self.runtime.ports.public}",
        ):
            tree = CgroupTree.detect(tree_name)
            if tree is not None:
                tree.clear()

    def wait(self) -> str:
        """Block until the hub or gateway exits; return the name of the one that did."""
        while True:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    return name
            time.sleep(0.5)

    @contextlib.contextmanager
    def running(self) -> Iterator[LocalStack]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def hub_running(state_dir: Path) -> int | None:
    """The pid of a hub using ``state_dir``, if one is alive."""
    pid_file = state_dir / "run" / "jupyterhub.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid
