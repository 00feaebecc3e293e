"""A hub-managed service started by hand, without the hub's environment: one line, exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module", ["statbox.dashboards", "statbox.classroom.web", "statbox.indicators.web"]
)
def test_a_service_without_the_hubs_environment_says_what_is_missing(module):
    done = subprocess.run(
        [sys.executable, "-m", module], capture_output=True, text=True, env={}, timeout=60
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"{module}: JUPYTERHUB_SERVICE_PREFIX") and "not set" in line


def test_the_classroom_names_an_unreadable_runtime(tmp_path):
    env = {
        "JUPYTERHUB_SERVICE_PREFIX": "/services/classroom/",
        "STATBOX_CLASSROOM_LISTEN": "http://127.0.0.1:1",
        "STATBOX_RUNTIME": str(tmp_path / "missing.json"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "statbox.classroom.web"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("statbox.classroom.web: STATBOX_RUNTIME=")
    assert "not a runtime document" in done.stderr
