"""Graded kernels attacked from inside, in the real sandbox: what a cheating trainee tried.

One cohort of probe submissions is graded once (module fixture), after an earlier round,
beside a copy of the curriculum elsewhere on disk, a Unix socket under ``/run`` and a TCP
listener on loopback. Each probe is the exercise's template plus one trainee cell that
tries an attack and stores what it found, as JSON text, in the answer ``total``: the test
reads it from the attempt. Beyond single attacks, two probes enumerate: every file the
kernel can read (each must be in the allow-list) and every folder it can write (each must
be a memory file system inside the disk cap).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from statbox.certify.isolation import (
    GRADER_CGROUPS,
    Job,
    Limits,
    grader_memory_cap,
    remove_tree,
    stray_processes,
)
from statbox.sandbox import MERGED_USR_LINKS, SYSTEM_READ_ONLY, interpreter_paths
from tests.certify.conftest import SAMPLE, Grading, with_cell, write_secret
from tests.certify.sampledata import SECRET_MARKER
from tests.conftest import REPO

pytestmark = [pytest.mark.certify, pytest.mark.usefixtures("sandbox")]

SOLUTION = SAMPLE / "grader" / "solution.ipynb"
TEMPLATE = SAMPLE / "exercise" / "exercise.ipynb"
MiB = 1024**2
WORKDIR_CAP = 32 * MiB
SHM_KEY = 0x5B0C7
FLOOD = 2 * MiB
"""Bytes per flood message; 20 of them per flood."""

REPORT = "total = __import__('json').dumps(found)"

PROBES: dict[str, str] = {
    # the checkout, its .git, the grader's files in it
    "read-checkout": """
import os
found = []
for path in {checkout!r}:
    try:
        with open(path, 'rb') as handle:
            handle.read(1)
        found.append(path)
    except OSError:
        pass
    if os.path.isdir(path):
        found.append(path + '/')
""",
    # another copy of the curriculum, world-readable, elsewhere on disk
    "read-copy": """
import os
found = [p for p in {copies!r} if os.path.exists(p)]
""",
    # an earlier round's graded notebooks and results
    "read-earlier-round": """
import glob, os
# (glob gives 'X/' for a missing X: only what exists counts)
found = [p for p in glob.glob({earlier!r} + '/**', recursive=True) if os.path.exists(p)] + [
    p for p in {earlier_files!r} if os.path.exists(p)]
""",
    # System V shared memory: one kernel writes, the other looks for it at the same time
    "shm-a-writer": """
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
ident = libc.shmget({shm_key}, 4096, 0o1666)
found = {{'id': ident}}
if ident >= 0:
    address = libc.shmat(ident, None, 0)
    ctypes.memmove(address, b'answers: 42', 11)
    time.sleep(8)
""",
    "shm-b-reader": """
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
found = []
for _ in range(40):
    ident = libc.shmget({shm_key}, 0, 0)
    if ident >= 0:
        found.append(ident)
        break
    time.sleep(0.25)
""",
    # a host Unix socket under /run, and what /run holds
    "unix-socket": """
import os, socket
found = []
try:
    found.append(sorted(os.listdir('/run')))
except OSError:
    pass
client = socket.socket(socket.AF_UNIX)
client.settimeout(2)
try:
    client.connect({socket_path!r})
    found.append(client.recv(64).decode())
except OSError:
    pass
""",
    # the network: the host's loopback listener, and the interfaces there are
    "network": """
import socket
found = []
for host, port in [('127.0.0.1', {tcp_port}), ('10.255.255.1', 80)]:
    try:
        socket.create_connection((host, port), timeout=2).close()
        found.append(f'{{host}}:{{port}}')
    except OSError:
        pass
found += [line.split(':')[0].strip() for line in open('/proc/net/dev').read().splitlines()[2:]
          if line.split(':')[0].strip() != 'lo']
""",
    # every readable file outside the allow-list
    "enumerate-readable": """
import glob, os
job = os.path.dirname(os.path.dirname(glob.glob({scratch!r} + '/sbx-*/conn/kernel.json')[0]))
allowed = tuple({allowed!r}) + (job, '/tmp')
found = []
for top, folders, files in os.walk('/', followlinks=False):
    if top in ('/proc', '/sys', '/dev') or top.startswith(('/proc/', '/sys/', '/dev/')):
        folders[:] = []
        continue
    for name in files:
        path = os.path.join(top, name)
        if any(path == a or path.startswith(a + '/') for a in allowed):
            continue
        if not os.access(path, os.R_OK):
            continue
        found.append(path)
        if len(found) > 50:
            break
""",
    # every writable folder, with the size of its file system; then fill each one
    "enumerate-writable": """
import os, errno
found = {{}}
for top, folders, files in os.walk('/', followlinks=False):
    if top.startswith(('/proc', '/sys')):
        folders[:] = []
        continue
    probe = os.path.join(top, '.statbox-probe')
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        continue
    os.close(fd)
    os.unlink(probe)
    stat = os.statvfs(top)
    written = 0
    try:
        with open(probe, 'wb') as handle:
            chunk = b'x' * (1024 * 1024)
            while written < 3 * {workdir_cap}:
                handle.write(chunk)
                handle.flush()
                written += len(chunk)
    except OSError:
        pass
    os.unlink(probe)
    found[top] = [stat.f_blocks * stat.f_frsize, written]
""",
    # 1,500 nested folders in every writable place, left for the clean-up
    "deep-tree": """
import glob, json, os
connection = glob.glob({scratch!r} + '/sbx-*/conn/kernel.json')[0]
ipc = os.path.dirname(json.load(open(connection))['ip'])
found = {{}}
for base in ('.', '/tmp', ipc):
    path, depth = base, 0
    try:
        for depth in range(1500):
            path = os.path.join(path, 'd')
            os.mkdir(path)
    except OSError:
        pass
    found[base] = depth
""",
    # answers the grader cannot parse: a 5,000-digit number, and nesting 100,000 deep
    "huge-answer": """
import IPython.display
def display(*args, **kwargs):
    IPython.display.publish_display_data(
        {{'application/vnd.statbox.answers+json': '{{"total": ' + '7' * 5000 + '}}'}})
IPython.display.display = display
found = 'replaced'
""",
    "deep-answer": """
import IPython.display
deep = '[' * 100000 + ']' * 100000
def display(*args, **kwargs):
    IPython.display.publish_display_data(
        {{'application/vnd.statbox.answers+json': '{{"total": ' + deep + '}}'}})
IPython.display.display = display
found = 'replaced'
""",
    # floods the old cap did not count: display metadata, and widget (comm) messages
    "metadata-flood": """
import IPython.display
for index in range(20):
    IPython.display.publish_display_data({{'text/plain': '.'}},
                                         metadata={{'blob': 'm' * {flood}}})
found = 'flooded'
""",
    "widget-flood": """
import comm
for index in range(20):
    comm.create_comm(target_name='jupyter.widget',
                     data={{'state': {{'blob': 'w' * {flood}}}, 'buffer_paths': []}})
found = 'flooded'
""",
}


@pytest.fixture(scope="module")
def unix_socket() -> Iterator[str]:
    path = f"/run/statbox-test-{os.getpid()}.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    os.chmod(path, 0o777)
    server.listen(4)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            connection.sendall(b"host secret")
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join()
    server.close()
    os.unlink(path)


@pytest.fixture(scope="module")
def tcp_port() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture(scope="module")
def curriculum_copies() -> Iterator[list[Path]]:
    """World-readable copies of the exercise, as a careless operator leaves them."""
    folders = [Path(tempfile.mkdtemp(prefix="statbox-copy-", dir=d)) for d in (None, "/var/tmp")]
    for folder in folders:
        folder.chmod(0o755)
        shutil.copytree(SAMPLE, folder / "shop-prices")
    yield [f / "shop-prices" / "grader" / "checks.py" for f in folders]
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def allowed_paths(data_root: Path) -> list[str]:
    """What a graded kernel may read besides its own job folder and ``/tmp``: the system,
    the interpreter and the one declared, entitled dataset."""
    paths = [*SYSTEM_READ_ONLY, *(f"/{name}" for name in MERGED_USR_LINKS)]
    paths += [str(p) for p in interpreter_paths()]
    paths.append(str(data_root / "scanner" / "shop_prices"))
    return paths


@pytest.fixture(scope="module")
def probed(data_root, unix_socket, tcp_port, curriculum_copies) -> Iterator[dict]:
    # Outside /tmp: an instructor's folders are anywhere on disk (a sandbox that only
    # covered /tmp would hide them by chance).
    root = Path(tempfile.mkdtemp(prefix="statbox-probed-", dir="/var/tmp"))
    try:
        yield probe_all(root, data_root, unix_socket, tcp_port, curriculum_copies)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def probe_all(root: Path, data_root: Path, unix_socket: str, tcp_port: int, copies: list) -> dict:
    write_secret(root / "state")
    grading = Grading(root, data_root, time_limit=90, cell_time_limit=40)
    grading.limits = replace(grading.limits, workdir=WORKDIR_CAP)
    earlier = grading.run({"honest": SOLUTION.read_bytes()}, out="round1", workers=1)
    scratch = tempfile.gettempdir()
    values: dict[str, Any] = {
        "checkout": [
            str(REPO / ".git" / "HEAD"),
            str(REPO / "pyproject.toml"),
            str(SAMPLE / "grader" / "checks.py"),
            str(SAMPLE / "grader" / "solution.ipynb"),
            str(REPO / "curriculum"),
            str(REPO / "tests"),
        ],
        "copies": [str(p) for p in copies],
        "earlier": str(root / "round1"),
        "earlier_files": [str(earlier.out / "graded" / "honest.ipynb")],
        "shm_key": SHM_KEY,
        "socket_path": unix_socket,
        "tcp_port": tcp_port,
        "allowed": allowed_paths(data_root),
        "workdir_cap": WORKDIR_CAP,
        "scratch": scratch,
        "flood": FLOOD,
    }
    notebooks = {}
    for name, code in PROBES.items():
        source = code.format(**values)
        notebooks[name] = with_cell(TEMPLATE, source + "\n" + REPORT)
    notebooks["honest"] = SOLUTION.read_bytes()
    summary = grading.run(notebooks, workers=4, out="round2")
    with open("/proc/sysvipc/shm") as handle:
        segments = [line.split()[0] for line in handle.read().splitlines()[1:]]
    return {
        "attempts": {a.trainee: a for a in summary.attempts},
        "summary": summary,
        "earlier": earlier,
        "segments": segments,
        "grading": grading,
    }


def found(probed: dict, name: str) -> Any:
    attempt = probed["attempts"][name]
    assert not attempt.grader_error, attempt.reason
    return json.loads(attempt.answers["total"])


def test_the_honest_submission_still_scores_full_marks(probed):
    honest = probed["attempts"]["honest"]
    assert (honest.total, honest.passed) == (10, True), honest.reason


def test_the_checkout_its_git_and_the_grader_files_are_not_there(probed):
    assert found(probed, "read-checkout") == []


def test_another_copy_of_the_curriculum_is_not_there(probed):
    assert found(probed, "read-copy") == []


def test_an_earlier_rounds_graded_notebooks_are_unreachable_and_private(probed):
    assert found(probed, "read-earlier-round") == []
    graded = probed["earlier"].out / "graded" / "honest.ipynb"
    assert graded.stat().st_mode & 0o777 == 0o600


def test_system_v_shared_memory_is_private_and_dies_with_the_kernel(probed):
    assert found(probed, "shm-a-writer")["id"] >= 0  # it could make one, in its own namespace
    assert found(probed, "shm-b-reader") == []
    assert str(SHM_KEY) not in probed["segments"]


def test_a_unix_socket_under_run_is_not_reachable(probed, unix_socket):
    assert found(probed, "unix-socket") == []


def test_there_is_no_network(probed):
    assert found(probed, "network") == []


def test_every_readable_file_is_in_the_allow_list(probed, data_root):
    assert found(probed, "enumerate-readable") == []
    # and the data: only the declared, entitled dataset (not the data root) is bound
    allowed = [p for p in data_root.rglob("*") if p.is_file()]
    assert any(SECRET_MARKER in p.read_text() for p in allowed)  # the test has something to hide


def test_every_writable_folder_is_a_capped_memory_file_system(probed):
    writable = found(probed, "enumerate-writable")
    assert writable, "the kernel could write nowhere (not even its working directory)"
    for folder, (size, written) in writable.items():
        assert size <= WORKDIR_CAP, (folder, size)
        assert written <= WORKDIR_CAP, (folder, written)


def test_deep_trees_are_cleaned_up_without_hanging(probed):
    depths = found(probed, "deep-tree")
    assert depths["."] >= 1000  # it did make its tree
    assert probed["summary"].out.exists()
    jobs = Path(tempfile.gettempdir()).glob("sbx-*/conn")  # (others' sbx-engine-* are not)
    leftovers = list(jobs)
    assert leftovers == [], leftovers


@pytest.mark.parametrize("name", ["huge-answer", "deep-answer"])
def test_an_answer_too_big_or_too_deep_scores_zero_with_a_reason(probed, name):
    attempt = probed["attempts"][name]
    assert not attempt.grader_error, attempt.reason
    assert attempt.total == 0
    assert "the answers were not graded" in attempt.reason, attempt.reason


@pytest.mark.parametrize("name", ["metadata-flood", "widget-flood"])
def test_floods_of_metadata_and_widget_messages_count_against_the_output_cap(probed, name):
    attempt = probed["attempts"][name]
    assert not attempt.grader_error, attempt.reason
    graded = probed["summary"].out / "graded" / f"{name}.ipynb"
    assert graded.stat().st_size < 2 * MiB, graded.stat().st_size
    assert "beyond the cap was dropped" in attempt.reason, attempt.reason


def test_nothing_is_left_running(probed):
    uid_base = probed["grading"].setup().uid_base
    for index in range(8):
        assert stray_processes(None, uid_base + index) == []


def test_a_deep_tree_is_removed_without_recursing(tmp_path):
    job = Job.create(0, Limits(), scratch=tmp_path)
    path = job.workdir
    for _ in range(1500):
        path = path / "d"
        path.mkdir()
    job.remove()
    assert not job.root.exists()
    remove_tree(job.root)  # gone already: nothing to do, no error
    assert sys.getrecursionlimit() < 1500  # the depth would have broken a recursive removal


def test_the_grader_runs_memory_capped_and_leaves_no_group_behind():
    with grader_memory_cap(512 * MiB) as capped:
        inside = Path("/proc/self/cgroup").read_text()
        mine = [line.split(":", 2) for line in inside.splitlines() if GRADER_CGROUPS in line]
        assert capped and mine, inside
        _, controllers, path = mine[0]
        folder = Path("/sys/fs/cgroup", *(["memory"] if controllers else []), path.lstrip("/"))
        cap = folder / ("memory.limit_in_bytes" if controllers else "memory.max")
        assert int(cap.read_text()) == 512 * MiB
    assert not folder.exists()  # removed, and we are back where we were
    assert GRADER_CGROUPS not in Path("/proc/self/cgroup").read_text()


def test_the_instructor_is_told_which_declared_dataset_kernels_did_not_get(probed):
    assert probed["summary"].notes == [
        "graded kernels did not get the dataset scanner.shop_margins: the trainee role may "
        "not read it (course.yaml datasets:)"
    ]
