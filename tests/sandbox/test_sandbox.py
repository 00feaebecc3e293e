"""The sandbox core, attacked from inside: what a process started by
:class:`statbox.sandbox.Sandbox` can see, become, use and leave behind.

Real bubblewrap, real cgroups, real processes. As root (CI) every test runs; a plain user
runs the unprivileged ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from statbox.errors import EnvironmentProblem
from statbox.sandbox import CgroupTree, ResourceCaps, Sandbox, interpreter_paths
from statbox.sandbox.accounts import UidRegistry
from tests.conftest import REPO, require_tool

ROOT = os.geteuid() == 0
UID = 300_999
"""A uid no account has: the sandbox needs none."""
MiB = 1024**2


@pytest.fixture(autouse=True)
def _bwrap() -> None:
    require_tool("bwrap (apt-get install bubblewrap)", shutil.which("bwrap") is not None)


needs_root = pytest.mark.skipif(not ROOT, reason="switching uid and cgroups need root")


@pytest.fixture
def tree() -> Iterator[CgroupTree]:
    found = CgroupTree.detect(f"statbox-test-{uuid.uuid4().hex[:8]}")
    require_tool("writable cgroups (memory and pids)", found is not None)
    assert found is not None
    yield found
    for base in set(found.bases.values()):
        for group in [p for p in base.iterdir() if p.is_dir()] if base.exists() else []:
            found.existing(group.name) and found.existing(group.name).remove()  # type: ignore[union-attr]
    found.remove()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    if ROOT:
        os.chown(folder, UID, UID)
    return folder


def python(code: str, **kw: object) -> Sandbox:
    """A sandboxed Python running ``code`` (unbuffered), given the interpreter paths."""
    box = Sandbox(argv=[sys.executable, "-u", "-c", textwrap.dedent(code)], **kw)  # type: ignore[arg-type]
    box.bind_read_only(*interpreter_paths())
    if box.cwd != Path("/"):
        box.bind_read_write(box.cwd)
    return box


def run(box: Sandbox, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(box.command(), capture_output=True, text=True, timeout=timeout)


PROBE = """
    import json, os
    paths = {p: os.path.exists(p) for p in %r}
    status = dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines())
    print(json.dumps({"root": sorted(os.listdir("/")), "uid": os.getuid(), "paths": paths,
                      "cap_eff": status["CapEff"].strip(),
                      "procs": [p for p in os.listdir("/proc") if p.isdigit()]}))
"""


def test_only_what_was_given_is_there(home: Path) -> None:
    secrets_ = [
        str(REPO / ".git"),
        str(REPO / "curriculum"),
        str(REPO / "pyproject.toml"),
        "/run",
        "/root",
        "/home",
        "/var",
        "/etc/shadow",
        "/etc/ssh",
        "/srv",
    ]
    box = python(PROBE % [*secrets_, str(home)], uid=UID if ROOT else None, cwd=home)
    result = run(box)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert {p for p, there in seen["paths"].items() if there} == {str(home)}
    assert set(seen["root"]) <= {
        "bin",
        "dev",
        "etc",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "proc",
        "sbin",
        "usr",
        "tmp",
        *Path(home).parts[1:2],
        *Path(sys.prefix).parts[1:2],
        *REPO.parts[1:2],
    }
    # A PID namespace of its own: the hub, the gateway and other users are not there to read.
    assert len(seen["procs"]) <= 3
    assert seen["cap_eff"] == "0000000000000000"


@needs_root
def test_the_uid_seen_from_outside_is_the_users_not_root(home: Path) -> None:
    """bubblewrap's trap: as root, ``--uid N`` maps N onto root outside. Ours must not."""
    box = python(
        "import time; print(open('/proc/self/uid_map').read().strip(), flush=True); time.sleep(30)",
        uid=UID,
    )
    process = subprocess.Popen(box.command(), stdout=subprocess.PIPE, text=True)
    try:
        uid_map = process.stdout.readline().split()  # type: ignore[union-attr]
        assert uid_map == ["0", "0", "4294967295"]  # no user namespace
        outside = [
            p
            for p in psutil.Process(process.pid).children(recursive=True)
            if p.name() != "bwrap" and "time.sleep" in " ".join(p.cmdline())
        ]
        assert outside and {p.uids().real for p in outside} == {UID}
        assert {p.uids().effective for p in outside} == {UID}
    finally:
        family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(True)]
        for member in family:
            with contextlib.suppress(psutil.Error):
                member.kill()
        psutil.wait_procs(family, timeout=10)
        process.wait()
        process.stdout.close()  # type: ignore[union-attr]


def test_private_memory_file_systems_are_capped(home: Path) -> None:
    box = python(
        """
        import errno
        try:
            with open("/tmp/fill", "wb") as f:
                for _ in range(8):
                    f.write(b"x" * (1 << 20))
            print("wrote")
        except OSError as e:
            print(errno.errorcode[e.errno])
        """,
        uid=UID if ROOT else None,
        tmpfs={Path("/tmp"): 2 * MiB},
        cwd=home,
    )
    result = run(box)
    assert result.stdout.strip() == "ENOSPC", result.stderr


def test_no_network_unless_given(home: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code = f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=3); print("connected")
            except OSError as e:
                print("refused")
        """
        closed = run(python(code, uid=UID if ROOT else None, cwd=home))
        shared = run(python(code, uid=UID if ROOT else None, cwd=home, network=True))
    assert closed.stdout.strip() == "refused", closed.stderr
    assert shared.stdout.strip() == "connected", shared.stderr


def test_system_v_shared_memory_is_private(home: Path) -> None:
    """A segment made in one sandbox is invisible to the next (and gone with its namespace)."""
    make = python(
        """
        import ctypes
        libc = ctypes.CDLL(None)
        shmid = libc.shmget(0x5747, 4096, 0o1666)  # IPC_CREAT | 0666
        print(shmid)
        """,
        uid=UID if ROOT else None,
        cwd=home,
    )
    look = python(
        "import ctypes; print(ctypes.CDLL(None).shmget(0x5747, 0, 0))",
        uid=UID if ROOT else None,
        cwd=home,
    )
    assert int(run(make).stdout) >= 0
    assert int(run(look).stdout) == -1
    host = subprocess.run(["ipcs", "-m", "-k"], capture_output=True, text=True).stdout
    assert "0x00005747" not in host


@needs_root
def test_memory_and_process_caps_hold_and_nothing_detached_survives(
    home: Path, tree: CgroupTree
) -> None:
    group = tree.group("server-1", ResourceCaps(memory=200 * MiB, cpu=0.5, processes=40))
    box = python(
        """
        import os, subprocess
        subprocess.Popen(["setsid", "sleep", "600"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
        children = 0
        try:
            for _ in range(200):
                subprocess.Popen(["sleep", "600"])
                children += 1
        except OSError:
            pass
        print(children, flush=True)
        hog = bytearray(400 * 1024 * 1024)
        print("allocated", flush=True)
        """,
        uid=UID,
        cwd=home,
        cgroup=group,
    )
    log = home / "out.txt"
    with open(log, "w") as out:
        process = subprocess.Popen(box.command(), stdout=out, stderr=subprocess.STDOUT)
        try:
            process.wait(60)
            lines = log.read_text().split()
            assert int(lines[0]) < 40  # the pids cap stopped the fork loop
            assert "allocated" not in lines  # the memory cap killed the hog
            assert group.oom_kills() >= 1
            # The detached sleeper (and the rest) are still there, in the group...
            survivors = [psutil.Process(p) for p in group.pids()]
            assert any("600" in p.cmdline() for p in survivors)
        finally:
            # ...until the group is killed: then nothing is left, setsid or not.
            assert group.kill()
    assert group.pids() == []
    assert not [p for p in psutil.process_iter(["uids"]) if p.info["uids"].real == UID]
    assert group.remove()


@needs_root
def test_another_uid_needs_root_and_says_so(home: Path) -> None:
    """Run as a plain user, a sandbox for another uid is refused with a clear message."""
    code = (
        "from statbox.sandbox import Sandbox\n"
        "from statbox.errors import EnvironmentProblem\n"
        "try:\n"
        f"    Sandbox(argv=['true'], uid={UID}).command()\n"
        "except EnvironmentProblem as e:\n"
        "    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        user=UID + 1,
        group=UID + 1,
        extra_groups=[],
        cwd="/",
        env={"PATH": os.environ["PATH"]},
    )
    assert "needs root" in result.stdout, result.stderr


def test_missing_bubblewrap_is_a_clear_environment_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EnvironmentProblem, match="apt-get install bubblewrap"):
        Sandbox(argv=["true"]).command()


def test_uids_are_stable_distinct_and_private(tmp_path: Path) -> None:
    registry = UidRegistry(tmp_path / "state" / "uids.json")
    alice, bob = registry.uid("alice"), registry.uid("bob")
    assert alice != bob and alice >= 300_000
    again = UidRegistry(tmp_path / "state" / "uids.json")  # as after a restart
    assert (again.uid("bob"), again.uid("alice")) == (bob, alice)
    assert (tmp_path / "state" / "uids.json").stat().st_mode & 0o077 == 0


def test_an_inherited_environment_is_not_on_the_command_line(home: Path) -> None:
    """Arguments are readable by every account (/proc/<pid>/cmdline); an API token handed
    over by inheritance is readable only by its own uid and root."""
    token = uuid.uuid4().hex
    box = python(
        "import os; print(os.environ.get('JUPYTERHUB_API_TOKEN'), os.environ.get('OTHER'))",
        uid=UID if ROOT else None,
        cwd=home,
        inherit_env=True,
    )
    box.env = {"JUPYTERHUB_API_TOKEN": token, "PATH": "/usr/bin:/bin"}
    command = box.command()
    assert not any(token in argument for argument in command)
    result = subprocess.run(command, env=box.env, capture_output=True, text=True, timeout=60)
    # given: seen; not given (the caller's own environment): absent
    assert result.stdout.split() == [token, "None"], result.stderr


@needs_root
def test_a_group_inside_a_group_is_capped_by_both_and_cleared_with_the_tree(
    tree: CgroupTree,
) -> None:
    cluster = tree.group("cluster-1", ResourceCaps(memory=300 * MiB, processes=64))
    worker = tree.within(cluster).group("worker-1", ResourceCaps(processes=32))
    process = subprocess.Popen(worker.entering(["sleep", "600"]))
    try:
        deadline = time.monotonic() + 10
        while process.pid not in worker.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.pid in worker.pids()
        tree.clear()
        assert process.wait(10) == -9
        assert not any(d.exists() for d in cluster.directories.values())
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@needs_root
def test_a_tree_weighs_as_many_processes_as_it_holds_groups(tree: CgroupTree) -> None:
    """Not one process's CPU share for a whole class of servers on a busy machine."""
    if "cpu" not in tree.bases:
        pytest.skip("no cpu controller here")
    for name in ("a", "b", "c"):
        tree.group(name, ResourceCaps(cpu=1))
    weight = "cpu.weight" if tree.version == 2 else "cpu.shares"
    per_group = 100 if tree.version == 2 else 1024
    assert int((tree.bases["cpu"] / weight).read_text()) == 3 * per_group


@needs_root
def test_a_tree_root_made_is_none_for_an_unprivileged_account() -> None:
    """A grader running unprivileged found root's tree (left by an earlier run) and failed
    making its group in it; the tree is not its own: it gets none and runs without one."""
    name = f"statbox-test-{uuid.uuid4().hex[:8]}"
    tree = CgroupTree.detect(name, ("memory", "pids"))
    assert tree is not None
    try:
        probe = f"from statbox.sandbox import CgroupTree; print(CgroupTree.detect({name!r}))"
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
             sys.executable, "-c", probe],
            capture_output=True, text=True, cwd="/", timeout=60,
        )  # fmt: skip
        assert (done.returncode, done.stdout.strip()) == (0, "None"), done.stderr
    finally:
        tree.remove()
    assert not any(base.exists() for base in tree.bases.values())
