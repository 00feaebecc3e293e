"""How long users wait from login to a ready server: Statbox's local stack vs stock JupyterHub.

Both hubs run on this machine at once, each on its own free ports; the scenarios run
interleaved (Statbox, stock, Statbox, stock ...) so both see the same machine load. A
simulated user does what a browser does: fetch the login form, post it with its XSRF token,
follow the redirect that starts the server, then read the hub's progress event stream until
the server is ready. Every round uses fresh usernames, so every spawn is a first spawn.

The stock hub is JupyterHub with its defaults and the same spawner family
(SimpleLocalProcessSpawner running jupyterhub-singleuser), the same authenticator and the
same Python environment.

Prints, per scenario and stack, p50 / p95 / max seconds and the time until all were ready,
then Statbox's figures as ratios of stock's (lower is better).

    python bench/spawn.py [--users 8] [--rounds 3] [--burst 16]

With ``--mode docker`` the two stacks are Statbox's docker mode (``statbox up --mode docker``:
hub, PostgreSQL and Dask Gateway in containers, users in Statbox's single-user image) and a
stock DockerSpawner hub (JupyterHub on this host, ``spawner_class = "docker"`` with its
defaults) spawning a stock single-user image (bench/stock-singleuser: ``pip install
jupyterhub jupyterlab``, same versions and base). Both run on a private Docker engine on one
``--internal`` network with host forwarding dropped (tests/docker/engine.py). The sizes of
both single-user images are printed too.

    python bench/spawn.py --mode docker [--users 4] [--rounds 3] [--burst 8]
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.docker.engine, for --mode docker

from bench.stockhub import StockHub  # noqa: E402

USER_PASSWORD = "bench-class-password"
ADMIN_PASSWORD = "bench-admin-password-" + "x" * 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


@dataclass
class Hub:
    """One running hub: how to reach it, and how to stop it."""

    name: str
    url: str
    proc: subprocess.Popen
    workdir: Path
    admin_token: str = ""
    spawned: list[str] = field(default_factory=list)

    def stop_servers(self) -> None:
        headers = {"Authorization": f"token {self.admin_token}"}
        for user in self.spawned:
            requests.delete(f"{self.url}/hub/api/users/{user}/server", headers=headers, timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            users = requests.get(f"{self.url}/hub/api/users", headers=headers, timeout=30).json()
            if not any(u["servers"] for u in users if u["name"] in self.spawned):
                break
            time.sleep(0.5)
        self.spawned.clear()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_statbox(workdir: Path) -> Hub:
    port = free_port()
    config = workdir / "statbox.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            paths:
              catalog: {REPO}/catalogs/statbox.yaml
              curriculum: {REPO}/curriculum
              state_dir: {workdir}/state
            """
        )
    )
    env = dict(
        os.environ, STATBOX_USER_PASSWORD=USER_PASSWORD, STATBOX_ADMIN_PASSWORD=ADMIN_PASSWORD
    )
    log = open(workdir / "statbox-up.log", "wb")  # noqa: SIM115 (held by the child)
    proc = subprocess.Popen(
        [sys.executable, "-m", "statbox.cli", "up", "--config", str(config), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    return ready_hub("statbox", f"http://127.0.0.1:{port}", proc, workdir)


STOCK_SIGN_IN = """\
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {user_password!r}
c.SharedPasswordAuthenticator.admin_password = {admin_password!r}
c.Authenticator.admin_users = {{"admin"}}
c.Authenticator.allow_all = True
"""
"""Both stock hubs' sign-in: the class and admin passwords, everyone allowed."""

STOCK_CONFIG = (
    """\
# Stock JupyterHub: defaults, the shared-password authenticator, the simple local spawner.
import os
"""
    + STOCK_SIGN_IN
    + """\
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{workdir}/homes/{{username}}"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.default_url = "/lab"
# Stock servers run as the hub's account; as root the server insists on this flag.
if os.geteuid() == 0:
    c.Spawner.args = ["--allow-root"]
"""
)


def start_stock(workdir: Path) -> Hub:
    rest = STOCK_CONFIG.format(
        workdir=workdir,
        user_password=USER_PASSWORD,
        admin_password=ADMIN_PASSWORD,
        singleuser=str(Path(sys.executable).parent / "jupyterhub-singleuser"),
    )
    stock = StockHub.prepare(workdir, rest)
    return ready_hub("stock", stock.url, stock.start(), workdir)


def ready_hub(name: str, url: str, proc: subprocess.Popen, workdir: Path) -> Hub:
    """The hub started as ``proc``, once it answers, with an admin's API token."""
    wait_http(f"{url}/hub/health", proc)
    hub = Hub(name, url, proc, workdir)
    hub.admin_token = make_token(login(url, "admin", ADMIN_PASSWORD), url, "admin")
    return hub


STOCK_DOCKER_CONFIG = (
    """\
# Stock DockerSpawner: JupyterHub's defaults, its docker spawner with its defaults, a network.
c.JupyterHub.hub_ip = "{gateway_ip}"
"""
    + STOCK_SIGN_IN
    + """\
c.JupyterHub.spawner_class = "docker"
c.DockerSpawner.image = {image!r}
c.DockerSpawner.network_name = {network!r}
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True
c.Spawner.default_url = "/lab"
"""
)


@contextlib.contextmanager
def docker_hubs(base: Path) -> Iterator[tuple[list[Hub], dict[str, int]]]:
    """Statbox's docker stack and a stock DockerSpawner hub on a private engine; image sizes."""
    from statbox.contract import PROJECT_LABEL, DockerNames
    from statbox.modes.docker.images import (
        BY_NAME,
        DEFAULT_CACHE,
        BuildOptions,
        _docker_build,
        _link_wheels,
        build_images,
        ensure_base,
        ensure_wheelhouse,
    )
    from tests.docker.conftest import make_test_data
    from tests.docker.engine import (
        PrivateEngine,
        forwarding_dropped,
        free_subnet,
        isolated_network,
    )

    engine = PrivateEngine(DEFAULT_CACHE / "docker-data")
    engine.start()
    hubs: list[Hub] = []
    try:
        engine.remove_everything_but_images()
        progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
        built = build_images(BuildOptions(base_source="mmdebstrap"), progress, engine.client)
        spec = BY_NAME["singleuser"]
        stock_context = base / "stock-context"
        shutil.copytree(REPO / "bench" / "stock-singleuser", stock_context)
        (stock_context / "wheels").mkdir()
        _link_wheels(
            spec, ensure_wheelhouse(spec, DEFAULT_CACHE, progress), stock_context / "wheels"
        )
        stock_base = ensure_base(
            engine.client, spec.debian_packages(), "mmdebstrap", DEFAULT_CACHE, "", progress
        )
        stock_image = "statbox-bench/stock-singleuser:latest"
        _docker_build(
            engine.client, stock_context, stock_image, {"BASE_IMAGE": stock_base}, progress
        )
        sizes = {
            "statbox": built.sizes["singleuser"],
            "stock": int(engine.client.images.get(stock_image).attrs["Size"]),
        }
        names = DockerNames("sbxbench")
        labels = {PROJECT_LABEL: names.project}
        private = free_subnet()
        db = free_subnet(exclude=(private,))
        users = free_subnet(exclude=(private, db))  # 16 users' networks of a /28 each
        with (
            isolated_network(engine.client, names.network, labels, private) as net,
            isolated_network(engine.client, names.db_network, labels, db),
            forwarding_dropped(users),
        ):
            # Statbox: statbox up --mode docker.
            workdir = base / "statbox"
            workdir.mkdir()
            workdir.chmod(0o755)
            make_test_data(workdir / "site")
            config = workdir / "statbox.yaml"
            config.write_text(
                textwrap.dedent(
                    f"""\
                    mode: docker
                    docker: {{project: {names.project}, publish: false, user_subnets: {users}}}
                    paths:
                      catalog: {REPO}/catalogs/statbox.yaml
                      curriculum: {REPO}/curriculum
                      data_root: {workdir}/site/data
                      state_dir: {workdir}/state
                    """
                )
            )
            env = dict(
                os.environ,
                DOCKER_HOST=engine.host,
                STATBOX_USER_PASSWORD=USER_PASSWORD,
                STATBOX_ADMIN_PASSWORD=ADMIN_PASSWORD,
            )
            log = open(workdir / "statbox-up.log", "wb")  # noqa: SIM115 (held by the child)
            proc = subprocess.Popen(
                [sys.executable, "-m", "statbox.cli", "up", "--config", str(config)],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
            hubs.append(Hub("statbox", "", proc, workdir))
            deadline = time.monotonic() + 300
            while b"Statbox is running at" not in (workdir / "statbox-up.log").read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((workdir / "statbox-up.log").read_text()[-2000:])
                time.sleep(0.5)
            hub_ip = engine.client.containers.get(names.hub).attrs["NetworkSettings"]["Networks"][
                names.network
            ]["IPAddress"]
            hubs[0].url = f"http://{hub_ip}:8000"
            hubs[0].admin_token = make_token(
                login(hubs[0].url, "admin", ADMIN_PASSWORD), hubs[0].url, "admin"
            )

            # Stock: jupyterhub with DockerSpawner on this host, on the same network.
            stock_dir = base / "stock"
            stock_dir.mkdir()
            # The engine gives the bridge (this host's side) the subnet's first address.
            gateway_ip = str(next(ipaddress.ip_network(net.subnet).hosts()))
            rest = STOCK_DOCKER_CONFIG.format(
                gateway_ip=gateway_ip, user_password=USER_PASSWORD, admin_password=ADMIN_PASSWORD,
                image=stock_image, network=names.network,
            )  # fmt: skip
            stock_hub = StockHub.prepare(stock_dir, rest)
            stock_proc = stock_hub.start(env={"DOCKER_HOST": engine.host})
            stock = Hub("stock", stock_hub.url, stock_proc, stock_dir)
            hubs.append(stock)  # stopped even if it never answers
            wait_http(f"{stock.url}/hub/health", stock_proc)
            stock.admin_token = make_token(
                login(stock.url, "admin", ADMIN_PASSWORD), stock.url, "admin"
            )
            try:
                yield hubs, sizes
            finally:
                for hub in hubs:
                    hub.stop()
                engine.remove_everything_but_images()
    finally:
        engine.remove_everything_but_images()
        engine.stop()


def login(url: str, user: str, password: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{url}/hub/login", timeout=60)
    response = session.post(
        f"{url}/hub/login",
        data={"username": user, "password": password, "_xsrf": session.cookies.get("_xsrf")},
        allow_redirects=False,
        timeout=120,
    )
    if response.status_code != 302:
        raise RuntimeError(f"login of {user} refused: {response.status_code}")
    return session


def make_token(session: requests.Session, url: str, user: str) -> str:
    response = session.post(
        f"{url}/hub/api/users/{user}/tokens",
        json={"note": "bench"},
        headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/") or ""},
        timeout=60,
    )
    response.raise_for_status()
    return str(response.json()["token"])


def one_user(hub: Hub, user: str, timeout: float = 300) -> float:
    """Seconds from posting the login form until the hub reports the server ready."""
    started = time.monotonic()
    session = login(hub.url, user, USER_PASSWORD)
    # What the browser does next: the login redirect to /hub/spawn starts the server.
    session.get(f"{hub.url}/hub/spawn", allow_redirects=False, timeout=timeout)
    progress = session.get(
        f"{hub.url}/hub/api/users/{user}/server/progress",
        headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/") or ""},
        stream=True,
        timeout=timeout,
    )
    for line in progress.iter_lines():
        if line.startswith(b"data:"):
            event = json.loads(line[5:])
            if event.get("ready"):
                return time.monotonic() - started
            if event.get("failed"):
                raise RuntimeError(f"{user}: {event.get('message')}")
    raise RuntimeError(f"{user}: progress ended without ready")


@dataclass
class Outcome:
    times: list[float] = field(default_factory=list)
    all_ready: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def burst(hub: Hub, users: list[str], outcome: Outcome) -> None:
    hub.spawned.extend(users)
    started = time.monotonic()
    with ThreadPoolExecutor(len(users)) as pool:
        futures = {pool.submit(one_user, hub, u): u for u in users}
        for future, user in futures.items():
            try:
                outcome.times.append(future.result())
            except Exception as exc:  # a failed spawn is a result, not a crash
                outcome.failures.append(f"{user}: {exc}")
    outcome.all_ready.append(time.monotonic() - started)
    hub.stop_servers()


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered), "p95": p95, "max": ordered[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=8, help="concurrent users per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each scenario")
    parser.add_argument("--burst", type=int, default=16, help="users in the final burst (0: skip)")
    parser.add_argument(
        "--mode", choices=["local", "docker"], default="local", help="which stacks to compare"
    )
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="statbox-bench-"))
    base.chmod(0o755)  # as root, Statbox's servers run unprivileged and must reach it
    if args.mode == "docker":
        try:
            with docker_hubs(base) as (hubs, sizes):
                status = run_scenarios(hubs, args)
            print("\nsingle-user image size (GB, as the engine reports it)")
            print(f"  statbox {sizes['statbox'] / 1e9:.2f}  stock {sizes['stock'] / 1e9:.2f}")
            print(f"  statbox / stock: {sizes['statbox'] / sizes['stock']:.2f}x (goal: <= 1.5 GB)")
            return status
        finally:
            shutil.rmtree(base, ignore_errors=True)
    hubs: list[Hub] = []
    try:
        for name, start in (("statbox", start_statbox), ("stock", start_stock)):
            workdir = base / name
            workdir.mkdir()
            workdir.chmod(0o755)
            hubs.append(start(workdir))
        return run_scenarios(hubs, args)
    finally:
        for hub in hubs:
            hub.stop()
        shutil.rmtree(base, ignore_errors=True)


def run_scenarios(hubs: list[Hub], args: argparse.Namespace) -> int:
    """Run every scenario, interleaving the hubs; print the table; 1 if Statbox failed any."""
    scenarios = [("single", 1, args.rounds), (f"{args.users} at once", args.users, args.rounds)]
    if args.burst:
        scenarios.append((f"{args.burst} at once", args.burst, 1))
    results: dict[tuple[str, str], Outcome] = {}
    counter = 0
    for scenario, size, rounds in scenarios:
        for round_ in range(rounds):
            for hub in hubs:
                counter += 1
                users = [f"u{counter}x{i}" for i in range(size)]
                outcome = results.setdefault((scenario, hub.name), Outcome())
                burst(hub, users, outcome)
                print(
                    f"  {scenario:>12} round {round_ + 1} {hub.name:>7}: "
                    f"all ready in {outcome.all_ready[-1]:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )
    print(f"\nlogin -> server ready, seconds (machine: {os.cpu_count()} cores)")
    print(f"{'scenario':>14} {'stack':>8} {'p50':>7} {'p95':>7} {'max':>7} {'all ready':>10} fails")
    for (scenario, stack), outcome in results.items():
        s = summary(outcome.times) if outcome.times else {"p50": 0, "p95": 0, "max": 0}
        print(
            f"{scenario:>14} {stack:>8} {s['p50']:7.2f} {s['p95']:7.2f} {s['max']:7.2f} "
            f"{statistics.median(outcome.all_ready):10.2f} {len(outcome.failures)}"
        )
        for failure in outcome.failures:
            print(f"{'':>24}failed: {failure}")
    print("\nStatbox as a ratio of stock (lower is better)")
    for scenario, _, _ in scenarios:
        ours, stock = results[(scenario, "statbox")], results[(scenario, "stock")]
        if not (ours.times and stock.times):
            continue
        a, b = summary(ours.times), summary(stock.times)
        ready = statistics.median(ours.all_ready) / statistics.median(stock.all_ready)
        print(
            f"{scenario:>14}: p50 {a['p50'] / b['p50']:.2f}x  p95 {a['p95'] / b['p95']:.2f}x  "
            f"all ready {ready:.2f}x"
        )
    return 1 if any(results[(s, "statbox")].failures for s, _, _ in scenarios) else 0


if __name__ == "__main__":
    sys.exit(main())
