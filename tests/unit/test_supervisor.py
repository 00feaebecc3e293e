"""Local mode's supervisor without a stack: process records, restart policy, leftovers.

The attacks: a record of a crashed run whose pid the system has since given to another
process (a power loss, a reboot) must never make ``statbox up`` signal it; a port held by
something else is named in the message.
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from statbox.errors import EnvironmentProblem
from statbox.modes.local.stack import (
    PARTS,
    LocalStack,
    free_port,
    kill_recorded_run,
    port_is_free,
)
from statbox.modes.local.supervisor import RECORD_FILE, RecordBook
from statbox.sandbox.records import ProcessRecord
from statbox.sandbox.restarts import RestartPolicy
from statbox.settings.model import SettingsError, load_settings


@pytest.fixture
def decoy() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def stack(tmp_path, monkeypatch) -> LocalStack:
    (tmp_path / "catalogs").mkdir()
    (tmp_path / "catalogs" / "statbox.yaml").write_text("version: 2\n")
    (tmp_path / "curriculum").mkdir()
    settings = tmp_path / "statbox.yaml"
    settings.write_text("paths:\n  state_dir: state\n")
    monkeypatch.setenv("STATBOX_PROXY", sys.executable)  # any executable: found
    return LocalStack(load_settings(settings))


def test_a_record_names_a_process_only_while_it_is_the_same_one(decoy):
    record = ProcessRecord.of(decoy.pid, command=True)
    assert record.find() is not None
    assert record.cmdline == ("sleep", "600") and record.proc_cgroup
    for changed in (
        {"started": record.started + 2},  # the pid reused by a later process
        {"cmdline": ("sleep", "601")},
        {"proc_cgroup": record.proc_cgroup + "x"},
    ):
        assert dataclasses.replace(record, **changed).find() is None
    decoy.kill()
    decoy.wait()
    assert record.find() is None


def test_a_reused_pid_in_a_crashed_runs_record_is_never_signalled(stack, decoy):
    """A power loss: the record says the hub had a pid that another process has now."""
    run = stack.state_dir / "run"
    run.mkdir(parents=True)
    book = RecordBook(run / RECORD_FILE)
    record = ProcessRecord.of(decoy.pid, command=True)
    book.records["hub"] = dataclasses.replace(record, started=record.started - 60)
    book.save()
    stack.prepare()
    assert decoy.poll() is None
    assert stack.leftovers == []
    assert not (run / RECORD_FILE).exists()  # read once, and done with


def test_a_crashed_runs_own_process_is_stopped_and_named(stack, decoy):
    run = stack.state_dir / "run"
    run.mkdir(parents=True)
    book = RecordBook(run / RECORD_FILE)
    book.add("proxy", decoy.pid)
    stack.prepare()
    assert decoy.poll() is not None  # killed (and reaped by the stack)
    assert stack.leftovers == [
        f"The previous run ended without stopping its proxy (pid {decoy.pid}, `sleep 600`): "
        "stopped it; a new one takes its place."
    ]


def test_a_running_statbox_up_of_the_same_state_is_not_touched(stack, decoy):
    run = stack.state_dir / "run"
    run.mkdir(parents=True)
    RecordBook(run / RECORD_FILE).add("supervisor", decoy.pid)
    with pytest.raises(EnvironmentProblem, match=f"already running .* pid {decoy.pid}"):
        stack.prepare()
    assert decoy.poll() is None


def test_internal_ports_are_kept_from_run_to_run(stack):
    first = stack.prepare()
    again = LocalStack(stack.loaded).prepare()
    assert again.ports == first.ports


def test_a_kept_port_taken_by_another_program_is_named(stack):
    first = stack.prepare()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", first.ports.hub_api))
        busy.listen()
        with pytest.raises(EnvironmentProblem) as raised:
            LocalStack(stack.loaded).prepare()
    message = str(raised.value)
    assert f"port {first.ports.hub_api} on 127.0.0.1 (hub_api, kept in" in message
    assert "python" in message  # who holds it: this test's interpreter
    assert "ports.json" in message


def test_restarts_back_off_then_give_up():
    policy = RestartPolicy(limit=3, window=60, first_delay=0.5, max_delay=1.5)
    assert [policy.death(now=t) for t in (0, 1, 2, 3)] == [0.5, 1.0, 1.5, None]
    # Deaths far apart are each a first one.
    spaced = RestartPolicy(limit=3, window=60, first_delay=0.5)
    assert [spaced.death(now=t) for t in (0, 100, 200, 300, 400)] == [0.5] * 5


def test_the_restart_limit_comes_from_the_settings(stack, tmp_path):
    # the default: 5 deaths in 300 s
    assert {(p.limit, p.window) for p in stack.policies.values()} == {(5, 300)}
    settings = tmp_path / "statbox.yaml"
    settings.write_text(
        "paths:\n  state_dir: state\nlocal:\n  restarts: {limit: 2, window_seconds: 60}\n"
    )
    policies = LocalStack(load_settings(settings)).policies
    assert set(policies) == set(PARTS)
    assert {(p.limit, p.window) for p in policies.values()} == {(2, 60)}


@pytest.mark.parametrize(
    ("restarts", "key"),
    [
        ("{limit: -1}", "local.restarts.limit"),
        ("{limit: many}", "local.restarts.limit"),
        ("{window_seconds: 0}", "local.restarts.window_seconds"),
        ("{limit: 2, windows: 60}", "local.restarts.windows"),
    ],
)
def test_a_bad_restart_limit_is_refused_naming_its_key(tmp_path, restarts, key):
    settings = tmp_path / "statbox.yaml"
    settings.write_text(f"local:\n  restarts: {restarts}\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(settings)
    assert key in str(raised.value) and str(settings) in str(raised.value)


def test_a_fixture_kills_what_its_run_recorded_and_nothing_else(tmp_path, decoy):
    """What a test fixture calls when a test failed or timed out: the recorded process and
    everything it started go; a recorded pid that is now another process stays."""
    parent = subprocess.Popen(
        ["sh", "-c", "sleep 601 & wait"], start_new_session=True, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 5
        while not psutil.Process(parent.pid).children() and time.monotonic() < deadline:
            time.sleep(0.02)
        child = psutil.Process(parent.pid).children()[0]
        run = tmp_path / "run"
        run.mkdir()
        book = RecordBook(run / RECORD_FILE)
        book.add("hub", parent.pid)
        book.records["gateway"] = dataclasses.replace(
            ProcessRecord.of(decoy.pid, command=True), started=0.0
        )
        book.save()
        killed = kill_recorded_run(tmp_path)
        assert killed == [f"hub: pid {parent.pid}, `sh -c sleep 601 & wait`"]
        assert parent.wait(5) is not None
        assert not child.is_running()
        assert decoy.poll() is None
    finally:
        parent.kill()
        parent.wait()


def test_a_proxy_of_this_state_without_a_record_is_named_and_left_alone(stack, tmp_path):
    """The record is lost (run/processes.json deleted) while a proxy of this state still
    holds the port: the message says whose it is; nothing is signalled without a record."""
    kept = stack.prepare().ports
    public = free_port()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys, time\n"
            "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
            "time.sleep(60)",
            str(public),
            "configurable-http-proxy",
            "--api-port",
            str(kept.proxy_api),
        ],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while port_is_free("127.0.0.1", public) and time.monotonic() < deadline:
            time.sleep(0.05)
        settings = tmp_path / "statbox.yaml"
        settings.write_text(f"hub:\n  port: {public}\npaths:\n  state_dir: state\n")
        with pytest.raises(EnvironmentProblem) as raised:
            LocalStack(load_settings(settings)).prepare()
        message = str(raised.value)
        assert f"port {public} on 127.0.0.1 is in use by" in message
        assert f"pid {holder.pid}" in message
        assert "the proxy of an earlier run of this state whose record" in message
        assert holder.poll() is None
    finally:
        holder.kill()
        holder.wait()
