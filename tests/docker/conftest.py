"""Docker tier: a real Docker engine of our own, Statbox's images, and the docker-mode stack.

Fixtures (all session-scoped, all cleaning up after themselves):

- ``engine``: Debian's dockerd with its own data root, exec root, socket and pid file,
  ``--iptables=false --ip6tables=false --bridge=none`` (tests/docker/engine.py). The data
  root is kept in ``.statbox/build-cache/docker-data`` (git-ignored) so built images survive
  between runs; a fresh clone starts empty and builds everything. At the end every
  container, network and volume in it is removed by id and the daemon is stopped by pid.
- ``images``: ``statbox images build`` into that engine (mmdebstrap base, wheelhouse; cached
  in ``.statbox/build-cache``), returning the result with each image's size.
- ``stack``: ``statbox up --mode docker`` as a child process, with settings for the tests
  (alice and bob are trainees of cohort-test, which ines teaches, olga of cohort-other; ana
  an analyst: the repository's catalog entitles analysts,
  and not trainees, to the restricted mobile_phone.events; its small samples are generated
  into the stack's data root),
  on a private network created first with ``--internal`` and host forwarding dropped. It
  is stopped with SIGTERM at the end, and its containers are checked gone.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from statbox.catalog.samples import generate
from statbox.contract import PROJECT_LABEL, DockerNames
from statbox.modes.docker.images import DEFAULT_CACHE, BuildOptions, build_images
from tests.conftest import REPO, require_tool
from tests.docker.engine import (
    IsolatedNetwork,
    PrivateEngine,
    forwarding_dropped,
    free_subnet,
    isolated_network,
)
from tests.integration.test_indicators_service import write_indicator

PASSWORDS = {"user": "class-password-for-docker", "admin": "admin-password-for-docker-" + "y" * 16}

RESTRICTED = "mobile_phone/events"
"""The repository catalog's restricted dataset (access.roles: [analyst])."""

SETTINGS = """\
mode: docker
hub:
  name: Statbox docker test hub
groups:
  analysts: [ana]
  cohort-test: [alice, bob, ines]
  cohort-other: [olga]
cohorts: [cohort-test, cohort-other]
roles:
  instructor:
    users: [ines]
  trainee:
    server: {{cpu: 0.5, memory: 768M}}
  analyst:
    server: {{cpu: 1.5, memory: 1536M}}
    dask: {{max_workers: 2, max_worker_cores: 1, max_worker_memory: 1G}}
docker:
  project: {project}
  publish: false
  pids_limit: 300
  user_subnets: {user_subnets}
paths:
  catalog: {repo}/catalogs/statbox.yaml
  curriculum: {repo}/curriculum
  indicators: {root}/indicators
  data_root: {root}/data
  state_dir: {root}/state
"""


@pytest.fixture(scope="session")
def engine() -> Iterator[PrivateEngine]:
    require_tool("dockerd (apt-get install docker.io)", shutil.which("dockerd") is not None)
    require_tool("iptables", shutil.which("iptables") is not None)
    if os.geteuid() != 0:
        require_tool("root (to run dockerd)", False)
    engine = PrivateEngine(DEFAULT_CACHE / "docker-data")
    engine.start()
    try:
        engine.remove_everything_but_images()  # leftovers of a run that was killed
        yield engine
    finally:
        engine.remove_everything_but_images()
        engine.stop()
        assert not engine.is_running()


@pytest.fixture(scope="session")
def images(engine: PrivateEngine) -> Any:
    require_tool("mmdebstrap", shutil.which("mmdebstrap") is not None)
    lines: list[str] = []
    result = build_images(
        BuildOptions(base_source="mmdebstrap"), progress=lines.append, client=engine.client
    )
    print("\n".join(lines))
    return result


@dataclass
class RunningStack:
    """A running ``statbox up --mode docker`` and what the tests need to reach it."""

    proc: subprocess.Popen[bytes]
    root: Path
    names: DockerNames
    client: Any
    network: IsolatedNetwork
    env: dict[str, str]
    config: Path
    log: Path
    """The output of the ``statbox up`` that runs now."""
    runs: int = 1
    """How many ``statbox up`` have supervised it (one more after each :meth:`supervise`)."""

    def supervise(self, timeout: float = 120) -> float:
        """Start a new ``statbox up`` (the last one is dead) and wait until it says the stack
        runs; returns the seconds that took. The fixture stops this one at the end."""
        assert self.proc.poll() is not None, "the last statbox up still runs"
        self.runs += 1
        self.log = self.log.with_name(f"{self.log.stem}-{self.runs}.log")
        started = time.monotonic()
        self.proc = _start_supervisor(self.config, self.env, self.log)
        _wait_for_line(self.proc, self.log, "Statbox is running at", timeout=timeout)
        return time.monotonic() - started

    @property
    def proxy_ip(self) -> str:
        """The proxy's private address: users' browsers' way in (docker.publish is false)."""
        proxy = self.client.containers.get(self.names.proxy)
        return str(proxy.attrs["NetworkSettings"]["Networks"][self.names.network]["IPAddress"])

    @property
    def url(self) -> str:
        return f"http://{self.proxy_ip}:8000"

    def user_container(self, username: str) -> Any:
        return self.client.containers.get(self.names.user_container(username))

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/hub/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError("the hub did not answer its health check")


def _wait_for_line(proc: subprocess.Popen[bytes], log: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"statbox up exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    raise TimeoutError(f"statbox up printed no {text!r}:\n{log.read_text()[-3000:]}")


def _start_supervisor(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "statbox.cli", "up", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


def make_test_data(root: Path) -> None:
    """The catalog's small samples under ``root/data``, readable by the containers' users."""
    generate(root / "data", "small", progress=False)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def stack_env(engine: PrivateEngine) -> dict[str, str]:
    """The environment `statbox` commands run with against the tests' engine."""
    return {
        **os.environ,
        "DOCKER_HOST": engine.host,
        "STATBOX_USER_PASSWORD": PASSWORDS["user"],
        "STATBOX_ADMIN_PASSWORD": PASSWORDS["admin"],
    }


def remove_project(engine: PrivateEngine, project: str) -> None:
    """Remove every container and volume labelled with ``project``, each by its id."""
    label = {"label": f"{PROJECT_LABEL}={project}"}
    for container in engine.client.containers.list(all=True, filters=label):
        container.remove(force=True)
    for volume in engine.client.volumes.list(filters=label):
        volume.remove(force=True)


@pytest.fixture(scope="session")
def stack(engine: PrivateEngine, images: Any) -> Iterator[RunningStack]:
    yield from project_stack(engine)


def project_stack(engine: PrivateEngine) -> Iterator[RunningStack]:
    """A docker-mode stack of a project of its own (the body of a fixture: needs images)."""
    project = f"sbxt{secrets.token_hex(3)}"
    names = DockerNames(project)
    root = Path(tempfile.mkdtemp(prefix="statbox-docker-"))
    make_test_data(root)
    # one tiny indicator with a two-week sample period: the service backfills it at first
    # start, in grading containers (test_docker_indicators)
    write_indicator(root / "indicators", "ticks", "production", None, backfill=True)
    (root / "indicators").chmod(0o755)
    private = free_subnet()
    db = free_subnet(exclude=(private,))
    users = free_subnet(exclude=(private, db))
    config = root / "statbox.yaml"
    config.write_text(SETTINGS.format(project=project, root=root, repo=REPO, user_subnets=users))
    env = stack_env(engine)
    log = root / "statbox-up.log"
    try:
        with forwarding_dropped(users):
            yield from _run_stack(engine, project, names, root, config, env, log, (private, db))
    finally:
        for volume in engine.client.volumes.list(filters={"label": f"{PROJECT_LABEL}={project}"}):
            volume.remove(force=True)
        shutil.rmtree(root, ignore_errors=True)


def _run_stack(engine, project, names, root, config, env, log, subnets) -> Iterator[RunningStack]:
    labels = {PROJECT_LABEL: project}
    with (
        isolated_network(engine.client, names.network, labels, subnets[0]) as network,
        isolated_network(engine.client, names.db_network, labels, subnets[1]),
    ):
        proc = _start_supervisor(config, env, log)
        running = RunningStack(proc, root, names, engine.client, network, env, config, log)
        try:
            _wait_for_line(proc, log, "Statbox is running at", timeout=300)
            yield running
        finally:
            proc = running.proc  # the last one started
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            leftover = engine.client.containers.list(
                all=True, filters={"label": f"{PROJECT_LABEL}={project}"}
            )
            for container in leftover:
                container.remove(force=True)
            networks = [
                n
                for n in engine.client.networks.list(
                    filters={"label": f"{PROJECT_LABEL}={project}"}
                )
                if n.name not in (names.network, names.db_network)
            ]
            for net in networks:
                net.remove()
            print(running.log.read_text(errors="replace")[-4000:])
            assert [c.name for c in leftover] == [], "statbox up left containers behind"
            assert [n.name for n in networks] == [], "statbox up left networks behind"
