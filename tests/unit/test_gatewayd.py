"""The gateway container's loop (statbox.modes.docker.gatewayd) on real processes: a server
that dies is started again with back-off until the policy gives up; a stop signal is passed
on and ends the loop. The loop in the real container: tests/docker/test_docker_faults.py."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from statbox.modes.docker.gatewayd import exit_status, supervise
from statbox.sandbox.restarts import RestartPolicy


def test_a_dying_server_is_started_again_until_the_policy_gives_up(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    dies = f"open({str(runs)!r}, 'a').write('run\\n'); raise SystemExit(3)"
    policy = RestartPolicy(limit=2, window=60, first_delay=0.01, max_delay=0.02)
    assert supervise([sys.executable, "-c", dies], policy) == 3
    assert runs.read_text().count("run") == 3  # the first start and two restarts
    err = capsys.readouterr().err
    assert err.count("starting it again") == 2
    assert "died 3 times within 60 s" in err


LOOP = """
import sys
from statbox.modes.docker.gatewayd import exit_status, supervise
from statbox.sandbox.restarts import RestartPolicy
print("ready", flush=True)
code = supervise([sys.executable, "-c", "import time; time.sleep(60)"], RestartPolicy())
sys.exit(exit_status(code))
"""


def test_a_stop_signal_is_passed_on_and_ends_the_loop():
    loop = subprocess.Popen([sys.executable, "-c", LOOP], stdout=subprocess.PIPE, text=True)
    try:
        assert loop.stdout is not None and loop.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # the server started
        started = time.monotonic()
        loop.send_signal(signal.SIGTERM)
        # the server's own end (SIGTERM), passed on: 128 + 15
        assert loop.wait(timeout=30) == 128 + signal.SIGTERM
        assert time.monotonic() - started < 10
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()
        if loop.stdout is not None:
            loop.stdout.close()


def test_exit_status_of_a_killed_server_is_128_plus_the_signal():
    assert exit_status(-9) == 137 and exit_status(0) == 0 and exit_status(3) == 3
