"""The non-root fallback (``rlimits``): memory capped so that pandas and pyarrow kernels run
(``RLIMIT_AS`` at 2 GiB killed them: they reserve address space they never use) while a
kernel that really uses too much is stopped; and it says plainly what it does not isolate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from statbox.certify.isolation import RlimitsIsolation
from tests.certify.conftest import SAMPLE, with_cell
from tests.conftest import REPO

pytestmark = pytest.mark.certify

TEMPLATE = SAMPLE / "exercise" / "exercise.ipynb"
SOLUTION = SAMPLE / "grader" / "solution.ipynb"

ARROW = """
import io, json
import pyarrow as pa, pyarrow.parquet as pq
import pandas as pd
frame = pd.DataFrame({'a': range(100_000), 'b': ['x'] * 100_000})
buffer = io.BytesIO()
frame.to_parquet(buffer)
table = pq.read_table(io.BytesIO(buffer.getvalue()))
total = json.dumps(table.num_rows)
"""

HOG = """
hoard = []
while True:
    hoard.append(bytearray(64 * 1024**2))
"""


def test_pyarrow_runs_and_a_memory_hog_is_stopped_under_rlimits(grading):
    grading.limits = replace(grading.limits, memory=2048 * 1024**2)
    setup = grading.setup
    grading.setup = lambda: replace(setup(), isolation="rlimits")  # type: ignore[method-assign]
    summary = grading.run(
        {
            "arrow": with_cell(TEMPLATE, ARROW),
            "hog": with_cell(SOLUTION, HOG),
        },
        workers=2,
    )
    by = {a.trainee: a for a in summary.attempts}
    assert json.loads(by["arrow"].answers["total"]) == 100_000, by["arrow"].reason
    assert "MemoryError" in by["hog"].reason or "out of memory" in by["hog"].reason, by[
        "hog"
    ].reason
    assert by["hog"].scores["total"] == 4  # what it answered before the hog still counts


def test_the_fallback_says_what_it_does_not_isolate():
    text = RlimitsIsolation().describe()
    for gap in ("NOT isolated", "network", "every file this user can read", "data root"):
        assert gap in text


NOT_ROOT = """
import json, subprocess, sys
from pathlib import Path
from statbox.certify.isolation import Job, Limits, SandboxIsolation, backend_class
assert SandboxIsolation.unavailable() is None, SandboxIsolation.unavailable()
assert backend_class("auto") is SandboxIsolation
backend = SandboxIsolation()
job = Job.create(0, Limits(), scratch=Path(sys.argv[1]))
backend.prepare(job)
probe = (
    "import os, json; print(json.dumps({'uid': os.getuid(), 'seen': [p for p in %r "
    "if os.path.exists(p)], 'interfaces': open('/proc/net/dev').read().count(':')}))"
) % (sys.argv[2:],)
done = subprocess.run(backend.sandbox(job, [sys.executable, "-c", probe]).command(),
                      capture_output=True, text=True)
backend.release(job)
job.remove()
backend.close()
print(json.dumps({"probe": done.stdout, "error": done.stderr, "describe": backend.describe()}))
"""


def test_without_root_the_sandbox_still_isolates_files_and_network(sandbox):
    """Not root: unprivileged bubblewrap (a user namespace), the grader's own uid."""
    scratch = Path(tempfile.mkdtemp(prefix="statbox-not-root-"))
    try:
        os.chown(scratch, 65534, 65534)
        run_as_nobody(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_as_nobody(scratch: Path) -> None:
    hidden = [REPO / "pyproject.toml", REPO / ".git", SAMPLE / "grader" / "checks.py"]
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
         sys.executable, "-c", NOT_ROOT, str(scratch), *map(str, hidden)],
        capture_output=True, text=True, cwd="/", env={"PATH": os.environ["PATH"], "HOME": "/"},
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    probe = json.loads(result["probe"])
    assert probe == {"uid": 65534, "seen": [], "interfaces": 1}, result["error"]
    assert "not root" in result["describe"] and "without a size cap" in result["describe"]
