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


LSP_PROBE = """
import json, sys
from pathlib import Path
from traitlets.config import Application
from jupyter_lsp.manager import LanguageServerManager
from statbox.spawners.singleuser import LSP_NODE_ROOTS, language_server_node_roots

app = Application()
if sys.argv[1] == "statbox":
    roots = language_server_node_roots(Path.cwd())
    app.parse_command_line([f"{LSP_NODE_ROOTS}={r}" for r in roots])
print(json.dumps([str(r) for r in LanguageServerManager(parent=app).node_roots]))
"""


def test_language_servers_are_looked_for_where_jupyter_lsp_looks_without_running_npm(tmp_path):
    """jupyter_lsp ran ``npm prefix -g`` (a Node.js process) in every server start."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    ran = tmp_path / "npm-ran"
    (fake_bin / "npm").write_text(f"#!/bin/sh\ntouch {ran}\necho {tmp_path}\n")
    (fake_bin / "node").write_text("#!/bin/sh\nexit 0\n")
    for program in ("npm", "node"):
        (fake_bin / program).chmod(0o755)
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "HOME": str(tmp_path)}

    def roots(which: str) -> list[str]:
        result = subprocess.run(
            [sys.executable, "-c", LSP_PROBE, which],
            capture_output=True, text=True, env=env, cwd=tmp_path, check=True,
        )  # fmt: skip
        return list(json.loads(result.stdout.strip().splitlines()[-1]))

    upstream = roots("upstream")
    assert ran.exists()  # the probe sees what jupyter_lsp does unconfigured
    ran.unlink()
    assert roots("statbox") == upstream  # npm's prefix here: where node is (fake_bin/..)
    assert not ran.exists()
