"""A cheating trainee's submissions, graded for real in the sandbox: each must score nothing
it did not earn, and none may make the grader fail (a grader error makes
``statbox certify run`` exit 1 for the whole cohort) or hold what the kernel sent.

One cohort is graded once (module fixture), beside an honest trainee whose full marks must
survive every cheat in the same run. Attacks from inside the kernel are the template plus
one trainee cell; attacks on the grader's reading of the file are crafted notebook bytes.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.certify.conftest import SAMPLE, Grading, with_cell, write_secret

pytestmark = [pytest.mark.certify, pytest.mark.usefixtures("sandbox")]

SOLUTION = SAMPLE / "grader" / "solution.ipynb"
TEMPLATE = SAMPLE / "exercise" / "exercise.ipynb"
MiB = 1024**2
WIDGET_BYTES = 48 * MiB
"""Binary widget buffers a kernel sends (12 of 4 MiB), far over the tests' 256 KiB cap."""


def _with_metadata(notebook: Path, raw: bytes) -> bytes:
    """The notebook with ``"x": <raw JSON text>`` in its metadata (text json.dumps cannot
    make: that is the point)."""
    text = notebook.read_bytes().rstrip()
    nb = json.loads(text)
    nb["metadata"]["x"] = "@@X@@"
    return json.dumps(nb).encode().replace(b'"@@X@@"', raw)


CELLS = {
    # comm messages whose binary buffers the output cap did not count: nbclient kept them
    # (base64) in the grader's memory and wrote them into the graded notebook
    "widget-buffers": f"""
import comm
for index in range({WIDGET_BYTES // (4 * MiB)}):
    channel = comm.create_comm(target_name='statbox-cheat', data={{'state': {{}}}})
    channel.send(data={{'state': {{'x': index}}, 'buffer_paths': [['x']]}},
                 buffers=[b'b' * {4 * MiB}])
total = sum(values)
""",
    # text no UTF-8 file can hold (a lone surrogate): writing the graded notebook raised
    # UnicodeEncodeError in the runner and ended the whole cohort's run with a traceback
    "surrogate-answer": "total = 'x\\ud800y'\nmean_price = {'\\udfff': 1}",
}

LIES = {
    # answers that claim to equal anything: the grader only ever sees their JSON
    "equal-to-everything": """
class Anything(float):
    def __eq__(self, other):
        return True
    __hash__ = float.__hash__
    def __repr__(self):
        return 'the right answer'
total, mean_price, peak_week = Anything(0), Anything(0), Anything(0)
""",
    "nan-and-infinity": "total, mean_price, peak_week = float('nan'), float('inf'), float('-inf')",
    # what the checks call, patched in the kernel: the checks run in the grader
    "patched-helpers": """
import builtins, math, numpy, pandas
# (not isinstance: the kernel itself stops working)
math.isfinite = lambda value: True
builtins.abs = lambda value: 0
numpy.isclose = numpy.allclose = lambda *args, **kwargs: True
pandas.Series.__eq__ = lambda self, other: True
total, mean_price, peak_week = 'right', [], {}
""",
    # the answers' JSON forged: a json module of its own, then a clean exit
    "fake-json-module": """
import sys, types
fake = types.ModuleType('json')
fake.dumps = lambda *args, **kwargs: '{"total": 1e999, "mean_price": NaN, "peak_week": true}'
fake.loads = lambda text, **kwargs: {'total': 1e999, 'mean_price': float('nan'), 'peak_week': True}
sys.modules['json'] = fake
""",
    # the snapshot (JSON text) replaced by an object: reading it ended the run
    "snapshot-not-text": """
def forge(lines):
    if any('__statbox_snapshot__' in line for line in lines):
        return ['__statbox_snapshot__ = {"total": 1}\\n']
    return lines
get_ipython().input_transformers_post.append(forge)
""",
}
CELLS.update(LIES)


def _solution_with(metadata: dict, cell_metadata: dict) -> bytes:
    """The reference solution with notebook and trainee-cell metadata of the trainee's
    shaping (keys the grader and papermill write themselves)."""
    nb = json.loads(SOLUTION.read_bytes())
    nb["metadata"].update(metadata)
    for cell in nb["cells"]:
        if not {"protected", "parameters"} & set(cell["metadata"].get("tags", [])):
            cell["metadata"].update(cell_metadata)
    return json.dumps(nb).encode()


FILES = {
    # valid JSON that Python's json module will not read: the grader failed on these
    "deep-json": lambda: _with_metadata(TEMPLATE, b"[" * 100_000 + b"]" * 100_000),
    "long-integer": lambda: _with_metadata(TEMPLATE, b"9" * 5000),
    # readable, but deep enough that grading's deep copies would exhaust the stack
    "deep-metadata": lambda: _with_metadata(TEMPLATE, b"[" * 900 + b"]" * 900),
    # papermill's own keys as text: its injection and its cell records failed on them
    "papermill-metadata": lambda: _solution_with({"papermill": "x"}, {"papermill": 5}),
    "surrogate-source": lambda: with_cell(TEMPLATE, "# \ufffd").replace(b"\\ufffd", b"\\ud800"),
}


@pytest.fixture(scope="module")
def cheated(data_root) -> Iterator[dict]:
    root = Path(tempfile.mkdtemp(prefix="statbox-cheats-", dir="/var/tmp"))
    try:
        write_secret(root / "state")
        grading = Grading(root, data_root, time_limit=90, cell_time_limit=40)
        notebooks = {name: with_cell(TEMPLATE, code) for name, code in CELLS.items()}
        notebooks.update({name: make() for name, make in FILES.items()})
        notebooks["honest"] = SOLUTION.read_bytes()
        summary = grading.run(notebooks, workers=4)
        yield {"attempts": {a.trainee: a for a in summary.attempts}, "summary": summary}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_honest_trainee_keeps_full_marks_beside_the_cheats(cheated):
    honest = cheated["attempts"]["honest"]
    assert honest.total == honest.max_score, honest.reason
    assert not cheated["summary"].grader_errors, [a.reason for a in cheated["summary"].attempts]


def test_widget_buffers_count_against_the_output_cap_and_are_not_kept(cheated):
    attempt = cheated["attempts"]["widget-buffers"]
    assert attempt.total == 4, attempt.reason  # the one task it did answer
    assert "beyond the cap was dropped" in attempt.reason
    graded = cheated["summary"].out / "graded" / "widget-buffers.ipynb"
    assert graded.stat().st_size < 2 * MiB
    assert "widgets" not in json.loads(graded.read_text())["metadata"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("deep-json", "nested too deep to read"),
        ("long-integer", "a number too long to read"),
        ("deep-metadata", "nested deeper than 100 levels"),
    ],
)
def test_a_notebook_python_cannot_read_is_the_trainees_reason_not_a_grader_error(
    cheated, name, reason
):
    attempt = cheated["attempts"][name]
    assert not attempt.grader_error, attempt.reason
    assert attempt.total == 0
    assert reason in attempt.reason


def test_metadata_the_grader_writes_is_never_taken_from_the_submission(cheated):
    attempt = cheated["attempts"]["papermill-metadata"]
    assert not attempt.grader_error, attempt.reason
    assert attempt.total == attempt.max_score, attempt.reason  # the code is right


@pytest.mark.parametrize("name", ["surrogate-answer", "surrogate-source"])
def test_text_utf8_cannot_hold_is_replaced_and_the_run_completes(cheated, name):
    attempt = cheated["attempts"][name]
    assert not attempt.grader_error, attempt.reason
    assert attempt.total == 0
    graded = cheated["summary"].out / "graded" / f"{name}.ipynb"
    assert "\ufffd" in graded.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(LIES))
def test_answers_that_lie_score_nothing(cheated, name):
    attempt = cheated["attempts"][name]
    assert not attempt.grader_error, attempt.reason
    assert attempt.total == 0, (attempt.answers, attempt.reason)
    assert "the kernel failed" not in attempt.reason
