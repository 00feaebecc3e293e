"""Integration fixtures: a real local stack (``statbox up``) on free loopback ports.

- ``stack_settings``: a statbox.yaml for the tests (ana is an analyst, ines an instructor;
  trainees capped at 2 workers of 1 core and 1 GiB).
- ``local_stack``: ``statbox up`` running with those settings, for a whole test module;
  stopped at the end by SIGTERM, and every process it started is checked gone; whatever
  happens (a failure, a timeout), what is left of its run is killed by its record
  (``stopped_whatever_happens``).
- ``passwords``: the class and admin passwords the stack was started with.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from statbox.modes.local.stack import find_proxy, free_port, kill_recorded_run
from tests.conftest import REPO, require_tool
from tests.integration.hubclient import StatboxProcess

PASSWORDS = {"user": "class-password-for-tests", "admin": "admin-password-for-tests-" + "x" * 16}

SETTINGS = """\
hub:
  name: Statbox test hub
  port: 0   # the tests pass --port; doctor then has no fixed port to find busy
groups:
  analysts: [ana]
  cohort-test: [alice, bob]
cohorts: [analysts]   # courses are published to cohorts (statbox course publish --cohort)
roles:
  instructor:
    users: [ines]
    idle_timeout: 30s   # short, so the tests see the culler stop an idle server
  trainee:
    server: {{cpu: 1, memory: 1G}}   # the memory attack tries for 2 GiB
    dask: {{max_workers: 2, max_worker_cores: 1, max_worker_memory: 1G}}
  analyst:
    dask: {{max_workers: 4, max_worker_cores: 2, max_worker_memory: 2G}}
paths:
  catalog: {repo}/catalogs/statbox.yaml
  curriculum: {repo}/curriculum
  indicators: {repo}/tests/fixtures/no-indicators   # none: a first start backfills what it finds
  data_root: {repo}/data
"""


@pytest.fixture(scope="session")
def passwords() -> dict[str, str]:
    return PASSWORDS


@pytest.fixture(scope="module")
def stack_settings() -> Iterator[Path]:
    """A settings file in a fresh directory every account can traverse: as root, the stack
    runs servers and the gateway as an unprivileged account, which must reach the state
    directory (pytest's own temporary directories are private to root)."""
    require_tool("configurable-http-proxy", find_proxy() is not None)
    directory = Path(tempfile.mkdtemp(prefix="statbox-test-"))
    directory.chmod(0o755)
    config = directory / "statbox.yaml"
    config.write_text(SETTINGS.format(repo=REPO))
    yield config
    shutil.rmtree(directory, ignore_errors=True)


def make_stack(config: Path, state_dir: Path | None = None) -> StatboxProcess:
    return StatboxProcess(
        config,
        free_port(),
        state_dir or config.parent / "state",
        env={
            "STATBOX_USER_PASSWORD": PASSWORDS["user"],
            "STATBOX_ADMIN_PASSWORD": PASSWORDS["admin"],
        },
    )


def assert_all_gone(processes: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(processes, timeout=10)
    assert [(p.pid, " ".join(p.cmdline())[:120]) for p in alive] == []


@contextlib.contextmanager
def stopped_whatever_happens(stack: StatboxProcess) -> Iterator[StatboxProcess]:
    """``stack``, and at the end, even when a test failed or timed out (pytest-timeout
    raises in the test) or the interpreter exits: whatever of its run still runs is
    killed by its record (pids with their start times, command lines and control groups)
    and its control groups, so that nothing outlives the test session."""
    stop = functools.partial(kill_recorded_run, stack.state_dir)
    atexit.register(stop)
    try:
        yield stack
    finally:
        try:
            if stack.proc is not None and stack.proc.poll() is None:
                stack.stop(signal.SIGTERM, timeout=20)
        finally:
            stop()
            atexit.unregister(stop)


@pytest.fixture(scope="module")
def local_stack(stack_settings):
    stack = make_stack(stack_settings)
    with stopped_whatever_happens(stack):
        stack.start()
        yield stack
        if stack.proc is not None and stack.proc.poll() is None:
            tree = stack.process_tree()
            stack.stop(signal.SIGTERM)
            assert_all_gone(tree)
