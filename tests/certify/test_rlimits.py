"""The non-root fallback (``rlimits``): memory capped so that pandas and pyarrow kernels run
(``RLIMIT_AS`` at 2 GiB killed them: they reserve address space they never use) while a
kernel that really uses too much is stopped; and it says plainly what it does not isolate."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from statbox.certify.isolation import RlimitsIsolation
from tests.certify.conftest import SAMPLE, with_cell

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
