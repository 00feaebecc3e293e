"""The user server's entry point: deferred import, JupyterLab without node (no course is
copied at a start: statbox.classroom publishes them)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys, time
from statbox.spawners.singleuser import defer_slow_imports
defer_slow_imports()
import jupyter_server.serverapp  # what a user server imports at start
deferred = type(sys.modules["rfc3987_syntax"]).__name__ == "module" and getattr(
    sys.modules["rfc3987_syntax"], "__statbox_stand_in__", False)
import jsonschema
checker = jsonschema.FormatChecker()
print(json.dumps({
    "deferred_at_start": bool(deferred),
    "good": checker.conforms("https://example.org/r\\u00e9sum\\u00e9", "iri"),
    "bad": checker.conforms("http://exa mple.org/<>", "iri"),
    "loaded_after_use": not getattr(sys.modules["rfc3987_syntax"], "__statbox_stand_in__", False),
}))
"""


def test_rfc3987_is_deferred_but_still_validates():
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == {
        "deferred_at_start": True,
        "good": True,
        "bad": False,
        "loaded_after_use": True,
    }


JUPYTERLAB_PROBE = """
import json, os, subprocess
launched = []
original = subprocess.Popen.__init__
def recording(self, args, *a, **k):
    launched.append(" ".join(map(str, args)) if isinstance(args, (list, tuple)) else str(args))
    return original(self, args, *a, **k)
subprocess.Popen.__init__ = recording
before = os.environ["PATH"]
from statbox.spawners.singleuser import import_jupyterlab_without_asking_node
import_jupyterlab_without_asking_node()
import jupyterlab.labapp
print(json.dumps({"launched": launched, "path_restored": os.environ["PATH"] == before,
                  "version": jupyterlab.labapp.app_version}))
"""


def test_jupyterlab_import_starts_no_node_process(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    node = fake_bin / "node"
    node.write_text("#!/bin/sh\nexit 0\n")
    node.chmod(0o755)
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", JUPYTERLAB_PROBE],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["launched"] == []
    assert out["path_restored"] is True
    assert out["version"]
