"""Benchmark: how long a class waits after a part of the stack dies, Statbox against stock.

For each fault (``kill -9`` of the hub, of the proxy, of Dask Gateway), ``--rounds`` times
on one running Statbox local stack with a user's server and a kernel started before the
fault: seconds from the kill to the first successful request through the public port
(the hub's login page; for the gateway, its health through the hub's proxy) and to the
kernel started before the fault answering again (over the proxy, a fresh request each
time). Printed as p50 and max.

Beside it, stock JupyterHub, started by hand with its own proxy (``should_start``, the
default), a DummyAuthenticator and the SimpleLocalProcessSpawner, faced with the same
faults: nothing restarts a killed hub (its proxy is left running, orphaned, and the login
page gives 503 until someone restarts it); a killed proxy is restarted by the hub itself
(it checks every ``check_running_interval``, 5 s). Stock has no gateway.

``--mode docker``: the same on a docker-mode stack (a private Docker engine and Statbox's
images, as the docker tests use them; as root), with alice's server and a kernel started
before each fault: the hub's, the proxy's and the gateway's containers killed (``docker
kill``), and ``statbox up`` itself killed (``kill -9``) then started again at once (for that
fault the time is until the new one has taken the running stack back; the stack serves
meanwhile). Beside it, stock: JupyterHub's docker deployments (jupyterhub-deploy-docker,
DockerSpawner) leave a dead hub to Docker's restart policy, which restarts a container whose
process crashed but not one stopped by ``docker kill`` (a manual stop to Docker); both are
measured on a container with ``restart: always`` in the same engine. Stock's proxy runs in
the hub's container, so it dies with the hub and takes every open notebook's connection along.

Usage: ``python bench/faults.py [--mode local|docker|all] [--rounds N] [--give-up SECONDS]``
(local: as root or not, needs configurable-http-proxy as ``make install`` installs it; docker:
as root, with dockerd and mmdebstrap).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
# bench/dask.py would shadow the dask package (the docker part imports it, via xarray).
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]

from bench.stockhub import StockHub  # noqa: E402
from statbox.modes.local.stack import kill_recorded_run  # noqa: E402
from statbox.modes.local.supervisor import RECORD_FILE, RecordBook  # noqa: E402
from tests.integration.conftest import PASSWORDS, SETTINGS, make_stack  # noqa: E402
from tests.integration.hubclient import HubUser  # noqa: E402


def wait_until(check, give_up: float, since: float) -> float | None:
    """Seconds from ``since`` until ``check()`` is true; None after ``give_up`` seconds."""
    return wait_for_each([check], give_up, since)[0]


def wait_for_each(checks: list, give_up: float, since: float) -> list[float | None]:
    """For each check, seconds from ``since`` until it first held (tried in turn, so that
    one that waits for the hub never delays one that does not); None: not within
    ``give_up`` seconds."""
    found: list[float | None] = [None] * len(checks)
    while time.monotonic() - since < give_up and None in found:
        for index, check in enumerate(checks):
            if found[index] is None:
                with contextlib.suppress(Exception):
                    if check():
                        found[index] = time.monotonic() - since
        time.sleep(0.05)
    return found


def page_answers(url: str) -> bool:
    return requests.get(url, timeout=2).status_code == 200


def kernel_answers(user: HubUser, kernel: str) -> bool:
    return user._execute(kernel, "print(6 * 7)", 2).stdout.strip() == "42"


def start_kernel(user: HubUser) -> str:
    response = user.api("POST", f"/user/{user.name}/api/kernels", json={"name": "python3"})
    response.raise_for_status()
    return str(response.json()["id"])


def summary(times: list[float | None], give_up: float) -> str:
    done = [t for t in times if t is not None]
    if not done:
        return f"never (> {give_up:.0f} s, {len(times)} of {len(times)})"
    text = f"p50 {statistics.median(done):5.2f} s  max {max(done):5.2f} s"
    if len(done) < len(times):
        text += f"  ({len(times) - len(done)} never within {give_up:.0f} s)"
    return text


def statbox_rounds(rounds: int, give_up: float) -> dict[str, tuple[list, list]]:
    folder = Path(tempfile.mkdtemp(prefix="statbox-bench-faults-"))
    folder.chmod(0o755)
    config = folder / "statbox.yaml"
    config.write_text(SETTINGS.format(repo=REPO))
    stack = make_stack(config)  # the tests' own start-up: its state in folder/state
    results: dict[str, tuple[list, list]] = {}
    try:
        stack.start()
        user = HubUser(stack.base_url, "alice")
        user.login(PASSWORDS["user"])
        user.create_token()
        user.start_server()
        kernel = start_kernel(user)
        records = stack.state_dir / "run" / RECORD_FILE
        pages = {
            "hub": f"{stack.base_url}/hub/login",
            "proxy": f"{stack.base_url}/hub/login",
            "gateway": f"{stack.base_url}/services/dask-gateway/api/health",
        }
        for part, page in pages.items():
            to_page: list[float | None] = []
            to_kernel: list[float | None] = []
            for _ in range(rounds):
                victim = RecordBook.load(records).living()[part]
                killed = time.monotonic()
                victim.kill()
                page_time, kernel_time = wait_for_each(
                    [lambda p=page: page_answers(p), lambda: kernel_answers(user, kernel)],
                    give_up,
                    killed,
                )
                to_page.append(page_time)
                to_kernel.append(kernel_time)
                # the part back and recorded before the next round
                wait_until(
                    lambda v=victim, p=part: RecordBook.load(records).living()[p].pid != v.pid,
                    give_up,
                    killed,
                )
            results[part] = (to_page, to_kernel)
    finally:
        if stack.proc is not None:
            stack.stop(signal.SIGTERM)
        kill_recorded_run(stack.state_dir)
        shutil.rmtree(folder, ignore_errors=True)
    return results


STOCK_CONFIG = """
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = ["{bin}/jupyterhub-singleuser"]
c.Spawner.args = ["--allow-root"] if {root} else []
c.Spawner.notebook_dir = "{folder}/home"
"""


def stock_rounds(rounds: int, give_up: float) -> dict[str, tuple[list, list]]:
    folder = Path(tempfile.mkdtemp(prefix="stock-hub-faults-"))
    (folder / "home").mkdir()
    rest = STOCK_CONFIG.format(
        bin=Path(sys.executable).parent, root=os.geteuid() == 0, folder=folder
    )
    stock = StockHub.prepare(folder, rest)
    base, proxy_port = stock.url, stock.proxy_port

    def start_hub() -> subprocess.Popen[bytes]:
        return stock.start("hub.log")

    hub = start_hub()
    results: dict[str, tuple[list, list]] = {}
    seen: list[psutil.Process] = []
    try:
        assert wait_until(lambda: page_answers(f"{base}/hub/login"), 60, time.monotonic())
        user = HubUser(base, "alice")
        user.login("anything")
        user.create_token()
        user.start_server()
        kernel = start_kernel(user)
        for part in ("hub", "proxy"):
            to_page: list[float | None] = []
            to_kernel: list[float | None] = []
            for _ in range(rounds):
                tree = psutil.Process(hub.pid)
                seen.extend([tree, *tree.children(recursive=True)])
                proxy = next(
                    p for p in tree.children() if "configurable-http-proxy" in " ".join(p.cmdline())
                )
                victim = tree if part == "hub" else proxy
                killed = time.monotonic()
                victim.kill()
                page_time, kernel_time = wait_for_each(
                    [
                        lambda: page_answers(f"{base}/hub/login"),
                        lambda: kernel_answers(user, kernel),
                    ],
                    give_up,
                    killed,
                )
                to_page.append(page_time)
                to_kernel.append(kernel_time)
                if part == "hub":
                    # What an operator does by hand: stop the orphaned proxy, start the hub.
                    proxy.kill()
                    psutil.wait_procs([proxy], timeout=5)
                    hub = start_hub()
                    wait_until(lambda: page_answers(f"{base}/hub/login"), 60, time.monotonic())
            results[part] = (to_page, to_kernel)
    finally:
        with contextlib.suppress(psutil.Error):
            tree = psutil.Process(hub.pid)
            seen.extend([tree, *tree.children(recursive=True)])
        hub.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            hub.wait(20)
        # and any proxy of this hub's left orphaned (the one a killed hub leaves, or one a
        # hub restarted after the last look): its API port is this run's own.
        for proc in psutil.process_iter(["cmdline"]):
            if f"--api-port {proxy_port}" in " ".join(proc.info["cmdline"] or []):
                seen.append(proc)
        for proc in seen:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        shutil.rmtree(folder, ignore_errors=True)
    return results


DOCKER_FAULTS = ("hub", "proxy", "gateway", "supervisor")


def docker_rounds(rounds: int, give_up: float) -> tuple[dict[str, tuple[list, list]], dict]:
    """Statbox's docker stack and stock's restart policy, in one private engine."""
    from statbox.configure.hub import GATEWAY_PREFIX
    from statbox.modes.docker.images import DEFAULT_CACHE, BuildOptions, build_images
    from tests.docker.conftest import PASSWORDS as DOCKER_PASSWORDS
    from tests.docker.conftest import project_stack
    from tests.docker.engine import PrivateEngine

    engine = PrivateEngine(DEFAULT_CACHE / "docker-data")
    engine.start()
    results: dict[str, tuple[list, list]] = {}
    took_back: list[float | None] = []
    try:
        engine.remove_everything_but_images()
        print("building (or finding) the images ...", flush=True)
        build_images(BuildOptions(base_source="mmdebstrap"), progress=lambda _: None,
                     client=engine.client)  # fmt: skip
        with contextlib.contextmanager(project_stack)(engine) as stack:
            user = HubUser(stack.url, "alice")
            user.login(DOCKER_PASSWORDS["user"])
            user.create_token()
            user.start_server(timeout=180)
            kernel = start_kernel(user)

            def page(path: str) -> bool:
                return page_answers(f"{stack.url}{path}")

            def kernel_back() -> bool:
                user.base_url = stack.url  # a proxy created anew may have another address
                return kernel_answers(user, kernel)

            paths = {"hub": "/hub/login", "proxy": "/hub/login", "supervisor": "/hub/login",
                     "gateway": f"{GATEWAY_PREFIX}/api/health"}  # fmt: skip
            for part in DOCKER_FAULTS:
                to_page: list[float | None] = []
                to_kernel: list[float | None] = []
                for _ in range(rounds):
                    if part == "supervisor":
                        stack.proc.kill()
                        stack.proc.wait()
                        killed = time.monotonic()
                        # No supervisor: the stack serves on, the kernel answers.
                        page_time, kernel_time = wait_for_each(
                            [lambda p=paths[part]: page(p), kernel_back], give_up, killed
                        )
                        to_page.append(page_time)
                        to_kernel.append(kernel_time)
                        took_back.append(stack.supervise(timeout=give_up))
                        continue
                    name = getattr(stack.names, part)
                    stack.client.containers.get(name).kill()
                    killed = time.monotonic()
                    page_time, kernel_time = wait_for_each(
                        [lambda p=paths[part]: page(p), kernel_back], give_up, killed
                    )
                    to_page.append(page_time)
                    to_kernel.append(kernel_time)
                    wait_until(lambda n=name: page("/hub/health") and _running(stack, n),
                               give_up, time.monotonic())  # fmt: skip
                results[part] = (to_page, to_kernel)
            results["taken back"] = (took_back, [])
            stock = stock_restart_policy(engine, stack.client.containers.get(stack.names.hub)
                                         .image.id, give_up)  # fmt: skip
    finally:
        engine.remove_everything_but_images()
        engine.stop()
    return results, stock


def _running(stack: Any, name: str) -> bool:
    return str(stack.client.containers.get(name).status) == "running"


def stock_restart_policy(engine: Any, image: str, give_up: float) -> dict[str, float | None]:
    """Docker's restart policy (``always``), as stock deployments of JupyterHub rely on it:
    seconds until a container runs again after ``docker kill``, and after its process is
    killed from the host (a crash, to Docker); None: not within ``give_up``."""
    found: dict[str, float | None] = {}
    for fault in ("docker kill", "process killed"):
        container = engine.client.containers.run(
            image, ["python3", "-c", "import time; time.sleep(3600)"], network_mode="none",
            detach=True, restart_policy={"Name": "always"},
        )  # fmt: skip
        try:
            container.reload()
            started = container.attrs["State"]["StartedAt"]
            if fault == "docker kill":
                container.kill()
            else:
                os.kill(container.attrs["State"]["Pid"], signal.SIGKILL)
            killed = time.monotonic()

            def again(c: Any = container, s: str = started) -> bool:
                c.reload()
                return bool(c.status == "running" and c.attrs["State"]["StartedAt"] != s)

            found[fault] = wait_until(again, give_up, killed)
        finally:
            container.remove(force=True)
    return found


def print_docker(results: dict, stock: dict, rounds: int, give_up: float) -> None:
    print(f"\nDocker mode: recovery per fault, {rounds} rounds each (p50, max)")
    for part in DOCKER_FAULTS:
        fault = "kill -9 of statbox up, then statbox up" if part == "supervisor" else (
            f"docker kill of the {part} container")  # fmt: skip
        print(f"{part:10} {fault}")
        for index, what in enumerate(("request through the proxy", "kernel started before")):
            print(f"{'':10} {what:26} Statbox: {summary(results[part][index], give_up)}")
    taken = summary(results["taken back"][0], give_up)
    print(f"{'':10} {'new statbox up took it back':26} Statbox: {taken}")

    def shown(value: float | None) -> str:
        return f"{value:.2f} s" if value is not None else f"never (> {give_up:.0f} s)"

    print(
        f"stock (restart: always): after docker kill, the container runs again: "
        f"{shown(stock['docker kill'])}; after its process is killed: "
        f"{shown(stock['process killed'])}.\n"
        "stock, hub container killed: stays down, and its proxy (a process in the hub's "
        "container) with it: every open notebook's connection is lost."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("local", "docker", "all"), default="local")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--give-up", type=float, default=30.0, help="seconds per round")
    args = parser.parse_args()
    # A stopped benchmark still stops its stacks (the finally clauses run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.mode in ("docker", "all"):
        print_docker(*docker_rounds(args.rounds, args.give_up), args.rounds, args.give_up)
        if args.mode == "docker":
            return 0
    statbox = statbox_rounds(args.rounds, args.give_up)
    stock = stock_rounds(args.rounds, args.give_up)
    print(f"\nRecovery after kill -9, {args.rounds} rounds each (p50, max)")
    for part in ("hub", "proxy", "gateway"):
        for index, what in enumerate(("request through the proxy", "kernel started before")):
            print(f"{part:8} {what:26} Statbox: {summary(statbox[part][index], args.give_up)}")
            if part in stock:
                print(f"{'':8} {'':26} stock:   {summary(stock[part][index], args.give_up)}")
            else:
                print(f"{'':8} {'':26} stock:   no gateway in stock JupyterHub")
    print(
        "stock, hub killed: nothing restarts it; its proxy runs on, orphaned, holding the port "
        "(the bench stops that proxy and starts the hub by hand between rounds)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
