"""Local mode: run Dask Gateway, the proxy and JupyterHub as processes on this machine, and
keep them running.

Invariants:

* Preparation (settings, proxy, ports, accounts) is checked before anything starts; a problem
  raises with a message saying what to do, and no process is left running.
* The gateway starts first (the hub waits up to 30 s for a service that is not up), then the
  proxy, then the hub; each in its own session. The stack starts the proxy, never the hub:
  a hub that dies and comes back leaves the proxy, and the users' open notebooks, alone.
* ``wait()`` supervises: a part that dies is started again after a back-off, on the same
  ports (kept in ``run/ports.json``), the others untouched; what a dead part started to help
  it (the hub's services, the gateway's proxy) goes with it, users' servers and clusters
  stay. Too many deaths and the run gives up.
* A Ctrl-C or SIGTERM stops hub (which stops its servers and services), proxy, gateway, in
  that order, within seconds; anything of theirs still alive after that is killed, clusters
  included: nothing is left behind. ``run/processes.json`` records the run's processes
  (statbox.modes.local.supervisor) until then, so that a crashed run's are recognised.
* When started as root, each user's server and Dask clusters run in their sandbox under a
  uid of that user's own (statbox.spawners.local, statbox.spawners.local_dask); the hub and
  the gateway stay root to start them, the proxy runs as the unprivileged ``local.run_as``.
  Secrets reach the hub and the gateway as files only root may read, never by environment;
  the proxy takes its one token by environment (its only way), as that account.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
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
from statbox.contract import CLASSROOM_SERVICE, SECRET_ENV, SECRETS_DIR_ENV
from statbox.dashboards.firewall import UidFirewall, dashboards_firewall
from statbox.errors import BadInput, EnvironmentProblem, StatboxError
from statbox.modes.local.supervisor import RECORD_FILE, RecordBook
from statbox.resources import resource
from statbox.sandbox import CgroupTree
from statbox.sandbox.records import cgroup_of
from statbox.sandbox.restarts import RestartPolicy
from statbox.settings.model import LoadedSettings

HUB_CONFIG = resource(resources.HUB_CONFIG)
GATEWAY_CONFIG = resource(resources.GATEWAY_CONFIG)
PROXY_NAME = "configurable-http-proxy"

PARTS = ("gateway", "proxy", "hub")
"""The supervised processes, in the order they start (the hub needs the other two up)."""
SUPERVISOR = "supervisor"
"""The record of ``statbox up`` itself."""
INTERNAL_PORTS = (
    "hub_api",
    "proxy_api",
    "gateway_api",
    "gateway_http",
    "gateway_tcp",
    "dashboards",
    "classroom",
    "indicators",
)
"""Ports on loopback, kept from run to run (run/ports.json)."""
SANDBOXES = frozenset({"bwrap", "setpriv"})
"""How a user's server or cluster process starts (statbox.sandbox) without control groups."""
LOOK_EVERY = 2.0
"""Seconds between the supervisor's notes of the parts' children and the proxy's routes."""


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
        self.book = RecordBook(self.state_dir / "run" / RECORD_FILE)
        restarts = loaded.settings.local.restarts
        self.policies = {
            name: RestartPolicy(limit=restarts.limit, window=restarts.window_seconds)
            for name in PARTS
        }
        self.leftovers: list[str] = []
        """What a crashed run left and this one stopped (one line each, for the operator)."""
        self._seen: dict[int, tuple[str, float]] = {}
        """pid -> (part that started it, its start time): processes the stack started."""
        self._routes: dict[str, dict[str, Any]] = {}

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

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    def prepare(self) -> Runtime:
        """Check everything and write the run's files; start nothing (but stop what a
        crashed run of this state left running, saying so)."""
        settings = self.loaded.settings
        proxy = find_proxy()
        if proxy is None:
            raise EnvironmentProblem(
                f"{PROXY_NAME} was not found: `make up` installs it; or install it with "
                f"`npm install -g {PROXY_NAME}`, or point STATBOX_PROXY at it"
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
        # A crashed run of this state may hold the ports: its own processes go first.
        self.leftovers = self._stop_leftovers()
        if settings.hub.port and not port_is_free(settings.hub.ip, settings.hub.port):
            self._ports(settings.hub.ip, settings.hub.port)  # raises, naming the holder
        run_dir = self.run_dir
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
        ports = self._ports(settings.hub.ip, settings.hub.port)

        self.credentials = resolve_credentials(settings, self.state_dir)
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

    def _stop_leftovers(self) -> list[str]:
        """Stop what a crashed run of this state left running; one line per part stopped.

        Only processes that match their record in every respect are signalled. The hub and
        the gateway are killed outright, never asked to stop: asked, they would stop the
        users' servers and clusters, which the new run takes back instead."""
        book = RecordBook.load(self.run_dir / RECORD_FILE)
        living = book.living()
        supervisor = living.pop(SUPERVISOR, None)
        if supervisor is not None:
            raise EnvironmentProblem(
                f"Statbox is already running with {self.state_dir} "
                f"(statbox up, pid {supervisor.pid}): stop it first (Ctrl-C, or SIGTERM to it)"
            )
        stopped = []
        for name, proc in living.items():
            helpers = helpers_of(proc, book.records[name].proc_cgroup or "")
            for victim in [*helpers, proc]:
                with contextlib.suppress(psutil.Error):
                    victim.kill()
            psutil.wait_procs([*helpers, proc], timeout=5)
            stopped.append(
                f"The previous run ended without stopping its {name} "
                f"({book.records[name].describe()}): stopped it; a new one takes its place."
            )
        book.clear()
        return stopped

    def _ports(self, ip: str, public: int) -> Ports:
        """The ports of the last run where they are free, else new ones, kept in
        ``run/ports.json``: servers and clusters that outlive a run keep the hub's and the
        gateway's addresses they were given, and reach them again after a restart."""
        ports_file = self.run_dir / "ports.json"
        kept: Ports | None = None
        with contextlib.suppress(OSError, ValueError):
            kept = Ports.model_validate_json(ports_file.read_text())
        if public == 0:
            public = kept.public if kept and port_is_free(ip, kept.public) else free_port(ip)
        elif not port_is_free(ip, public):
            raise EnvironmentProblem(
                f"port {public} on {ip} is in use{port_holder(public, kept)}: stop what uses it, "
                "or choose another port with --port (or hub.port in the settings)"
            )
        chosen: dict[str, int] = {"public": public}
        for name in INTERNAL_PORTS:
            port = getattr(kept, name) if kept is not None else 0
            if port and port != public and port not in chosen.values():
                if not port_is_free("127.0.0.1", port):
                    raise EnvironmentProblem(
                        f"port {port} on 127.0.0.1 ({name}, kept in {ports_file} so that "
                        f"running servers and clusters find it again) is in use"
                        f"{port_holder(port)}: stop what uses it, or remove {ports_file} "
                        "(servers and clusters of the last run then lose the hub and gateway)"
                    )
            else:
                port = free_port()
                while port in chosen.values():
                    port = free_port()
            chosen[name] = port
        ports = Ports(**chosen)
        ports_file.write_text(ports.model_dump_json(indent=2))
        return ports

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
        """Start gateway, proxy, then hub; on any failure stop what started and raise."""
        if self.runtime is None:
            self.prepare()
        assert self.runtime is not None
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        ):
            # Launched in the background (`setsid statbox up &`): SIGINT is ignored, and the
            # hub's services would inherit that and each hold its stop up for 10 s.
            signal.signal(signal.SIGINT, signal.default_int_handler)
        self.book = RecordBook(self.run_dir / RECORD_FILE)
        self.book.add(SUPERVISOR, os.getpid())
        try:
            self._guard_dashboards()
            for name in PARTS:
                self._start_part(name)
            self._wait_for_services()
        except BaseException:
            self.stop()
            raise

    def _start_part(self, name: str) -> None:
        {"gateway": self._start_gateway, "proxy": self._start_proxy, "hub": self._start_hub}[name]()
        self.book.add(name, self.processes[name].pid)

    def _guard_dashboards(self) -> None:
        """Root runs users under their own uids: keep those off the gateway's HTTP side and
        the dashboards (only the hub's front may reach them). Without root every server runs
        as this account, and there is no other uid to keep out."""
        assert self.runtime is not None
        if os.geteuid() == 0:
            self._firewall = dashboards_firewall(self.state_dir, self.runtime.ports.gateway_http)
            self._firewall.install()

    def _spawn(
        self, name: str, cmd: list[str], env: dict[str, str] | None = None, **kwargs: Any
    ) -> subprocess.Popen[bytes]:
        log = open(self.state_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 (closed in stop)
        self._logs.append(log)
        proc = subprocess.Popen(
            cmd,
            env=env or self.environment(),
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

    def _start_proxy(self) -> None:
        """configurable-http-proxy, as the hub would start it, but the stack's own child:
        it outlives the hub, so open notebooks keep working while a dead hub comes back."""
        assert self.runtime is not None and self.credentials is not None
        ports = self.runtime.ports
        hub = f"http://127.0.0.1:{ports.hub_api}"
        env = {k: v for k, v in self.environment().items() if k != SECRETS_DIR_ENV}
        # The only way the proxy takes its token; it runs as local.run_as, which no user
        # code runs as, so no user can read it from /proc.
        env["CONFIGPROXY_AUTH_TOKEN"] = self.credentials.values["proxy_auth_token"]
        proc = self._spawn(
            "proxy",
            [
                *self.runtime.proxy_command,
                *("--ip", self.loaded.settings.hub.ip, "--port", str(ports.public)),
                *("--api-ip", "127.0.0.1", "--api-port", str(ports.proxy_api)),
                *("--default-target", hub, "--error-target", f"{hub}/hub/error"),
                *("--log-level", "warn"),
            ],
            env=env,
        )
        self._wait_for(self._proxy_api("/api/routes"), proc, "proxy")
        self._replay_routes()

    def _proxy_api(self, path: str, data: bytes | None = None) -> urllib.request.Request:
        assert self.runtime is not None and self.credentials is not None
        token = self.credentials.values["proxy_auth_token"]
        return urllib.request.Request(
            f"http://127.0.0.1:{self.runtime.ports.proxy_api}{path}",
            data=data,
            headers={"Authorization": f"token {token}"},
        )

    def _snapshot_routes(self) -> None:
        """Remember the proxy's routes, to give a restarted proxy at once (the hub checks
        its routes only every few minutes)."""
        with (
            contextlib.suppress(OSError, ValueError),
            urllib.request.urlopen(self._proxy_api("/api/routes"), timeout=2) as response,
        ):
            self._routes = json.loads(response.read())

    def _replay_routes(self) -> None:
        for path, route in self._routes.items():
            body = {k: v for k, v in route.items() if k != "last_activity"}
            request = self._proxy_api(f"/api/routes{path}", json.dumps(body).encode())
            with contextlib.suppress(OSError):
                urllib.request.urlopen(request, timeout=2).close()

    def _start_hub(self) -> None:
        assert self.runtime is not None
        proc = self._spawn(
            "hub",
            [self.runtime.python, "-m", "jupyterhub", "-f", str(HUB_CONFIG)],
            cwd=str(self.state_dir),
            umask=0o077,  # the hub's database and cookie secret: not for user servers' eyes
        )
        self._wait_for(f"http://127.0.0.1:{self.runtime.ports.hub_api}/hub/health", proc, "hub")

    def _wait_for_services(self) -> None:
        """The hub answers its health check a few seconds before it has started its
        services and given the proxy their routes: "running" is said only once the
        classroom's public page answers through the public port, as a visitor reaches it."""
        assert self.runtime is not None
        host = self.runtime.settings.hub.ip
        host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        if ":" in host:
            host = f"[{host}]"
        url = f"http://{host}:{self.runtime.ports.public}/services/{CLASSROOM_SERVICE}/keys.json"
        self._wait_for(url, self.processes["hub"], "hub")

    def _wait_for(
        self, url: str | urllib.request.Request, proc: subprocess.Popen[bytes], name: str
    ) -> None:
        shown = url if isinstance(url, str) else url.full_url
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
        proc.kill()  # a part that does not answer is dead to the supervisor
        raise StatboxError(
            f"the {name} did not answer {shown} within {self.start_timeout:.0f} s. "
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
        """Every live process this stack started, directly or through the hub or gateway,
        including those a dead part left behind."""
        self._track_descendants()
        found: list[psutil.Process] = []
        for pid, (_, created) in self._seen.items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created:
                    found.append(proc)
        return found

    def _track_descendants(self) -> None:
        """Note every process each part has started, with its start time: when the part
        dies, they are orphaned (no longer its children) but still the stack's."""
        for pid in [pid for pid in self._seen if not psutil.pid_exists(pid)]:
            del self._seen[pid]
        for name, proc in self.processes.items():
            with contextlib.suppress(psutil.Error):
                part = psutil.Process(proc.pid)
                for child in [part, *part.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        created = child.create_time()
                        if self._seen.get(child.pid, ("", 0.0))[1] != created:  # new, or reused
                            self._seen[child.pid] = (name, created)

    def _orphans_of(self, name: str) -> list[psutil.Process]:
        """What the dead part ``name`` started to help it (the hub's services, the
        gateway's proxy), not the users' servers and clusters, which outlive it."""
        record = self.book.records.get(name)
        if record is None:
            return []
        orphans = []
        for proc in self.descendants():
            if self._seen[proc.pid][0] == name and proc.pid != record.pid:
                orphans.append(proc)
        return [p for p in orphans if is_helper(p, record.proc_cgroup or "")]

    def stop(self, timeout: float = 6.0) -> None:
        """Stop hub, proxy, gateway gracefully (the hub within ``timeout`` seconds, the
        others within 2); kill whatever of theirs is left, clusters included."""
        leftovers = self.descendants()
        # The hub first (it stops servers and services, and needs the proxy and gateway up
        # to do so), then the other two together.
        for names, limit in ((("hub",), timeout), (("proxy", "gateway"), 2.0)):
            procs = [self.processes[n] for n in names if n in self.processes]
            running = [proc for proc in procs if proc.poll() is None]
            for proc in running:
                proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + limit
            for proc in running:
                try:
                    proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for survivor in [*leftovers, *self.descendants()]:
            with contextlib.suppress(psutil.NoSuchProcess):
                survivor.kill()
        psutil.wait_procs(leftovers, timeout=3)
        self.clear_control_groups()
        if self._firewall is not None:
            self._firewall.remove()
            self._firewall = None
        shutil.rmtree(self.run_dir / "secrets", ignore_errors=True)
        self.book.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
        self.processes.clear()
        self._seen.clear()

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
        """Keep every part running, each restarted on its own when it dies; return the
        name of one that died too often (the run then gives up, and the caller stops it)."""
        last_look = 0.0
        while True:
            for name in PARTS:
                proc = self.processes[name]
                if proc.poll() is None:
                    continue
                if not self._restart(name, proc.returncode):
                    return name
            if time.monotonic() - last_look > LOOK_EVERY:
                self._track_descendants()
                self._snapshot_routes()
                last_look = time.monotonic()
            time.sleep(0.2)

    def _restart(self, name: str, code: int) -> bool:
        """Start the dead part ``name`` again after its back-off; False: gave up on it."""
        delay = self.policies[name].death()
        if delay is None:
            print(
                f"The {name} died {self.policies[name].limit + 1} times within "
                f"{self.policies[name].window:.0f} s; giving up and stopping Statbox.",
                file=sys.stderr,
                flush=True,
            )
            return False
        orphans = self._orphans_of(name)
        for orphan in orphans:
            with contextlib.suppress(psutil.Error):
                orphan.kill()
        psutil.wait_procs(orphans, timeout=3)
        print(
            f"The {name} stopped (exit code {code}); starting it again in {delay:.1f} s "
            f"(log: {self.state_dir / 'logs' / (name + '.log')}).",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(delay)
        try:
            self._start_part(name)
        except StatboxError as problem:
            print(str(problem).splitlines()[0], file=sys.stderr, flush=True)
        else:
            print(f"The {name} is back.", file=sys.stderr, flush=True)
        return True

    @contextlib.contextmanager
    def running(self) -> Iterator[LocalStack]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def helpers_of(part: psutil.Process, cgroup: str) -> list[psutil.Process]:
    """The living processes ``part`` started to help it (services, proxies)."""
    try:
        children = part.children(recursive=True)
    except psutil.Error:
        return []
    return [child for child in children if is_helper(child, cgroup)]


def is_helper(proc: psutil.Process, cgroup: str) -> bool:
    """Whether ``proc``, started by a part whose control groups are ``cgroup``, is a
    helper of that part rather than a user's server or cluster. As root, those run in
    control groups of their own; without root, in a sandbox (bwrap) all the same."""
    try:
        return cgroup_of(proc.pid) == cgroup and not in_sandbox(proc)
    except (psutil.Error, IndexError):
        return False


def in_sandbox(proc: psutil.Process) -> bool:
    """Whether ``proc`` runs in a sandbox (statbox.sandbox): it or an ancestor is one."""
    found: psutil.Process | None = proc
    while found is not None and found.pid > 1:
        if found.name() in SANDBOXES:
            return True
        found = found.parent()
    return False


def port_holder(port: int, kept: Ports | None = None) -> str:
    """Who listens on ``port`` (for a message), e.g. " by configurable-http-proxy (pid 7)";
    ``kept``: this state's ports, to recognise a proxy of its own whose record is lost."""
    with contextlib.suppress(psutil.Error):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid is None:
                    return ""
                proc = psutil.Process(conn.pid)
                command = " ".join(proc.cmdline())
                text = f" by {proc.name()} (pid {conn.pid}, `{command[:80]}`)"
                if PROXY_NAME not in command:
                    return text
                if kept is not None and f"--api-port {kept.proxy_api}" in command:
                    return text + (
                        ", the proxy of an earlier run of this state whose record "
                        "(run/processes.json) is gone: without it Statbox does not signal it"
                    )
                return text + (
                    ", a proxy of JupyterHub or of a Statbox that is not this state's "
                    "(Statbox stops its own leftovers itself, and this one is not recorded)"
                )
    return ""


def kill_recorded_run(state_dir: Path) -> list[str]:
    """Kill everything a run of ``state_dir`` recorded and still runs (``statbox up``, hub,
    proxy, gateway, and whatever they started), its control groups and its firewall chain;
    one line per part killed. For a supervisor that cannot stop the run itself (a test's
    fixture after a timeout): only processes matching their record are signalled."""
    run_dir = state_dir / "run"
    book = RecordBook.load(run_dir / RECORD_FILE)
    killed = []
    for name, proc in book.living().items():
        with contextlib.suppress(psutil.Error):
            victims = [proc, *proc.children(recursive=True)]
            for victim in victims:
                with contextlib.suppress(psutil.Error):
                    victim.kill()
            psutil.wait_procs(victims, timeout=5)
            killed.append(f"{name}: {book.records[name].describe()}")
    book.clear()
    with contextlib.suppress(OSError, ValueError):
        ports = Ports.model_validate_json((run_dir / "ports.json").read_text())
        if os.geteuid() == 0:
            for tree_name in (f"statbox-servers-{ports.public}", f"statbox-dask-{ports.public}"):
                tree = CgroupTree.detect(tree_name)
                if tree is not None:
                    tree.clear()
            dashboards_firewall(state_dir, ports.gateway_http).remove()
    shutil.rmtree(run_dir / "secrets", ignore_errors=True)
    return killed
