"""Local mode attacked from a trainee's kernel, on a real stack (issue 13, "User servers").

Each test is something a trainee must not manage, tried for real: read the hub's and the
gateway's secrets, another user's token, home or Dask key, restricted data (three ways),
more memory or processes than the role gives, a process that outlives its server. A final
sweep lists every file the kernel can read and checks it against the allow-list.

Tests run in file order and share one stack (with the role limits of conftest.SETTINGS).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from statbox.catalog.samples import generate, is_current
from tests.conftest import REPO
from tests.integration.conftest import assert_all_gone
from tests.integration.hubclient import HubUser

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not ROOT and os.environ.get("CI") != "true", reason="a uid per user needs root"
)
SAMPLES = REPO / "data"
RESTRICTED = "mobile_phone.events"
MARKER = "31337.25"
"""An argument no other process has: finds a trainee's detached ``sleep`` from the host."""


@pytest.fixture(scope="module", autouse=True)
def samples() -> None:
    if not is_current(SAMPLES, "small"):
        generate(SAMPLES, "small", progress=False)


def _user(stack, name: str, password: str) -> HubUser:
    user = HubUser(stack.base_url, name)
    user.login(password)
    user.create_token()
    user.start_server()
    return user


@pytest.fixture(scope="module")
def alice(local_stack, passwords) -> HubUser:
    return _user(local_stack, "alice", passwords["user"])


@pytest.fixture(scope="module")
def ana(local_stack, passwords) -> HubUser:
    return _user(local_stack, "ana", passwords["user"])


def kernel_json(user: HubUser, code: str) -> dict:
    result = user.run(textwrap.dedent(code))
    assert result.error is None, (result.error, result.stderr[-2000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


SECRETS_PROBE = """
import json, os
found, pids = {}, []
for pid in filter(str.isdigit, os.listdir("/proc")):
    pids.append(int(pid))
    for name in ("environ", "cmdline"):
        try:
            text = open(f"/proc/{pid}/{name}", "rb").read()
            found[f"{pid}/{name}"] = text.decode(errors="replace")
        except OSError:
            pass
uids = sorted({os.stat(f"/proc/{p}").st_uid for p in pids if os.path.exists(f"/proc/{p}")})
print(json.dumps({"texts": found, "pids": len(pids), "uids": uids, "me": os.getuid()}))
"""


@needs_root
def test_no_secret_of_the_hub_gateway_or_another_user_is_readable(
    local_stack, alice, ana, passwords
):
    """On 4efd1c5 every server and the gateway ran as ``nobody``: /proc/<gateway>/environ
    gave the admin password, another server's environ its API token."""
    secrets = [passwords["admin"], passwords["user"], ana.token]
    secret_dir = local_stack.state_dir / "secrets"
    secrets += [p.read_text().strip() for p in secret_dir.iterdir() if p.is_file()]
    out = kernel_json(alice, SECRETS_PROBE)
    leaked = [where for where, text in out["texts"].items() for secret in secrets if secret in text]
    assert leaked == []
    # her own processes only (pid namespace), all under her uid (not root, not another's)
    assert out["me"] >= 300_000
    assert out["uids"] in ([out["me"]], [0, out["me"]]), out["uids"]
    # and the uid is hers alone: ana's server runs under another
    assert kernel_json(ana, "import os, json; print(json.dumps({'me': os.getuid()}))")[
        "me"
    ] not in (
        out["me"],
        0,
    )


def test_the_hub_gateway_and_proxy_hold_no_secret_in_their_environment(local_stack, alice):
    """On 4efd1c5 the hub and the gateway had every secret in their environment, and the
    proxy and services inherited them. Now they are files only root reads."""
    secret_dir = local_stack.state_dir / "secrets"
    secrets = [p.read_text().strip() for p in secret_dir.iterdir() if p.is_file()]
    secrets += [local_stack.env["STATBOX_ADMIN_PASSWORD"], local_stack.env["STATBOX_USER_PASSWORD"]]
    _supervisor, *started = local_stack.process_tree()  # it holds what the operator gave it
    holding = []
    for proc in started:
        with contextlib.suppress(psutil.NoSuchProcess):
            environ = proc.environ()
            if environ.get("JUPYTERHUB_SERVICE_NAME"):
                # A service the hub starts gets its own API token this way (JupyterHub's
                # contract); it is that service's, in a root process no user's pid
                # namespace shows, and it spawns nothing that would inherit it.
                assert proc.uids().real == 0 and not proc.children()
                for name in ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"):  # JPY_: its old name
                    environ.pop(name, None)
            if "configurable-http-proxy" in " ".join(proc.cmdline()):
                # The proxy's own API token, the one way it takes it (as JupyterHub gives it
                # too), in a process of the service account, which no user's code runs as.
                assert not ROOT or proc.uids().real != 0
                environ.pop("CONFIGPROXY_AUTH_TOKEN", None)
            if any(secret in value for secret in secrets for value in environ.values()):
                holding.append(" ".join(proc.cmdline())[:100])
    assert holding == []
    assert len(started) >= 3  # the hub, the gateway, the proxy at least
    if ROOT:  # the proxy faces the network and needs no privilege: a service account's
        proxy = next(p for p in started if "configurable-http-proxy" in " ".join(p.cmdline()))
        assert proxy.uids().real == proxy.uids().effective == pwd.getpwnam("nobody").pw_uid


@needs_root
def test_another_users_home_and_dask_key_are_out_of_reach(local_stack, alice, ana, request):
    """On 4efd1c5 ana's home was readable and writable by alice, and her cluster's TLS key
    was readable under the gateway's folder."""
    cluster = kernel_json(
        ana,
        """
        import json
        from dask_gateway import Gateway
        cluster = Gateway().new_cluster(shutdown_on_close=False)
        open("mine.txt", "w").write("ana's notes")
        print(json.dumps({"name": cluster.name}))
        """,
    )["name"]
    state = local_stack.state_dir
    key = state / "gateway" / "clusters" / cluster / ".certs" / "dask.pem"
    assert key.is_file()  # seen from the host: the cluster and its key exist
    targets = [
        state / "homes" / "ana" / "mine.txt",
        key,
        state / "homes" / "ana",
        state / "gateway",
        state / "secrets",
        state / "accounts.json",
        state / "jupyterhub.sqlite",
        state / "catalogs" / "ana.yaml",
    ]
    planted, homes = str(state / "homes" / "ana" / "planted.txt"), str(state / "homes")
    out = kernel_json(
        alice,
        f"""
        import json, os
        tries = {{}}
        for path in {[str(t) for t in targets]!r}:
            try:
                tries[path] = open(path).read()[:20] if os.path.isfile(path) else os.listdir(path)
            except OSError as exc:
                tries[path] = type(exc).__name__
        try:
            open({planted!r}, "w").write("x")
            tries["write"] = "written"
        except OSError as exc:
            tries["write"] = type(exc).__name__
        tries["homes"] = sorted(os.listdir({homes!r}))
        print(json.dumps(tries))
        """,
    )
    assert out.pop("homes") == ["alice"]
    assert set(out.values()) <= {"FileNotFoundError", "PermissionError"}, out
    assert not (state / "homes" / "ana" / "planted.txt").exists()
    # the key is hers alone: her uid's, 0600
    assert key.stat().st_uid >= 300_000 and key.stat().st_mode & 0o077 == 0
    # ana's scheduler, through the gateway with alice's credentials: refused
    stolen = alice.run(f"from dask_gateway import Gateway\nGateway().connect({cluster!r})")
    assert stolen.error is not None and "403" in stolen.error, stolen.error
    assert (
        ana.run(f"from dask_gateway import Gateway\nGateway().stop_cluster({cluster!r})").error
        is None
    )


RESTRICTED_PROBE = f"""
import json, os
import intake
out = {{}}
catalog = intake.from_yaml_file(os.environ["STATBOX_CATALOG"])
out["intake"] = {RESTRICTED!r} in catalog.entries
try:
    out["intake_rows"] = len(catalog[{RESTRICTED!r}].read())
except Exception as exc:
    out["intake_rows"] = type(exc).__name__
os.environ["STATBOX_GROUPS"] = "mobile-data-analysts,analysts"
os.environ["STATBOX_ROLE"] = "analyst"
os.environ["STATBOX_DATA_RESTRICTED"] = "*"
from statbox.catalog import open_catalog
try:
    out["edited_rows"] = len(open_catalog()[{RESTRICTED!r}].read())
except Exception as exc:
    out["edited_rows"] = type(exc).__name__
root = os.environ["STATBOX_DATA_ROOT"]
events = os.path.join(root, "mobile_phone", "events")
out["files"] = [os.path.join(top, f) for top, _, files in os.walk(events) for f in files]
print(json.dumps(out))
"""


def test_restricted_data_is_unreadable_three_ways_but_read_by_the_entitled(alice, ana):
    """On 4efd1c5 alice read mobile_phone.events through Intake, by editing STATBOX_GROUPS,
    and straight from its files."""
    out = kernel_json(alice, RESTRICTED_PROBE)
    assert out["intake"] is False
    assert isinstance(out["intake_rows"], str)
    assert isinstance(out["edited_rows"], str)
    assert out["files"] == []
    entitled = kernel_json(ana, RESTRICTED_PROBE)
    assert entitled["intake"] is True
    assert isinstance(entitled["intake_rows"], int) and entitled["intake_rows"] > 0
    assert entitled["files"]


TOUCH_2_GIB = """
b = bytearray(2 * 1024**3)
for i in range(0, len(b), 4096):
    b[i] = 1
print("held")
"""
FORK_2000 = """
import os, time
started = 0
try:
    for _ in range(2000):
        if os.fork() == 0:
            time.sleep(5)
            os._exit(0)
        started += 1
except OSError:
    pass
print(started)
"""


@needs_root
def test_the_roles_memory_and_process_caps_hold(alice):
    """A 1 GiB trainee reached 2,048 MiB and started 2,000 processes on 4efd1c5."""
    out = kernel_json(
        alice,
        f"""
        import json, subprocess, sys
        memory = subprocess.run([sys.executable, "-c", {TOUCH_2_GIB!r}],
            capture_output=True, text=True)
        forks = subprocess.run([sys.executable, "-c", {FORK_2000!r}],
            capture_output=True, text=True, start_new_session=True)
        print(json.dumps({{"memory": [memory.returncode, memory.stdout],
                          "forks": int(forks.stdout.strip() or 0)}}))
        """,
    )
    assert out["memory"][0] == -9 and "held" not in out["memory"][1], out
    assert 0 < out["forks"] < 2000, out


DASK_PROBE = f"""
import json, os
from dask_gateway import Gateway
cluster = Gateway().new_cluster()
cluster.scale(1)
client = cluster.get_client()
client.wait_for_workers(1, timeout=120)

def inside(fork_program, touch_program):
    import os, subprocess, sys
    forks = subprocess.run([sys.executable, "-c", fork_program], capture_output=True, text=True)
    memory = subprocess.run([sys.executable, "-c", touch_program], capture_output=True, text=True)
    return {{
        "uid": os.getuid(),
        "forks": int(forks.stdout.strip() or 0),
        "memory": [memory.returncode, memory.stdout],
        "top": sorted(os.listdir("/")),
    }}

out = client.submit(inside, {FORK_2000!r}, {TOUCH_2_GIB!r}).result()
out["me"] = os.getuid()
client.close()
cluster.shutdown()
print(json.dumps(out))
"""


@needs_root
def test_a_trainees_dask_worker_is_hers_and_capped(local_stack, alice):
    """On 4efd1c5 every cluster ran as the gateway's own account, uncapped: a worker started
    as many processes as it liked. Now a cluster is its user's (same uid as her server),
    in its own sandbox, with her role's memory (1 GiB a worker) and a process cap."""
    out = kernel_json(alice, DASK_PROBE)
    assert out["uid"] == out["me"] >= 300_000
    assert 0 < out["forks"] < 2000, out
    assert out["memory"][0] == -9 and "held" not in out["memory"][1], out
    assert "root" not in out["top"] and "home" not in out["top"], out["top"]
    gateway = next(p for p in local_stack.process_tree() if "dask_gateway_server" in p.cmdline())
    cgroups = Path(f"/proc/{gateway.pid}/cgroup").read_text()
    assert f"statbox-dask-{local_stack.port}/gateway" in cgroups  # the gateway itself capped


def _marked() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if MARKER in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def _detach(user: HubUser) -> None:
    code = f"import subprocess\nsubprocess.Popen(['setsid', 'sleep', '{MARKER}'])"
    assert user.run(code).error is None
    deadline = time.monotonic() + 10
    while not _marked() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _marked(), "the detached process did not start"


@needs_root
def test_a_detached_process_dies_with_its_server(alice):
    """On 4efd1c5 a ``setsid`` process outlived server stop, culling and the stack's stop."""
    _detach(alice)
    assert alice.api("DELETE", f"/hub/api/users/{alice.name}/server").status_code in (202, 204)
    deadline = time.monotonic() + 30
    while _marked() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _marked() == []
    alice.start_server()


def _readable_files_probe(allowed: list[str]) -> str:
    return f"""
import json, os
allowed = {allowed!r}
def covered(path):
    return any(path == a or path.startswith(a.rstrip("/") + "/") for a in allowed)
outside = []
for top, dirs, files in os.walk("/"):
    if top == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
    elif covered(top):
        dirs[:] = []
        continue
    for name in files:
        path = os.path.join(top, name)
        if os.access(path, os.R_OK) and not covered(path):
            outside.append(path)
print(json.dumps({{"outside": outside[:50]}}))
"""


def test_every_readable_file_is_on_the_allow_list(local_stack, alice):
    """Not a list of answers: whatever exists, a trainee reads only system files, the
    interpreter, her home, her catalog, course material (no grader) and her datasets."""
    import sys

    from statbox.catalog.access import entitled_data_paths  # noqa: F401 (the rule itself)
    from statbox.sandbox import SYSTEM_READ_ONLY, interpreter_paths

    state = local_stack.state_dir
    allowed = [
        *SYSTEM_READ_ONLY,
        *(str(p) for p in interpreter_paths()),
        sys.prefix,
        str(state / "homes" / "alice"),
        str(state / "catalogs" / "alice.yaml"),
        "/tmp",
        "/bin",
        "/lib",
        "/lib64",
        "/sbin",
    ]
    curriculum = REPO / "curriculum"
    allowed += [
        str(p)
        for course in curriculum.iterdir()
        for p in ([course] if course.is_file() else course.iterdir())
        if p.name != "grader" and not p.name.startswith(".")
    ]
    data = kernel_json(
        alice,
        "import os, json; r = os.environ['STATBOX_DATA_ROOT']; "
        "print(json.dumps([os.path.join(r, d, s) for d in os.listdir(r) "
        "for s in os.listdir(os.path.join(r, d))]))",
    )
    assert not any(RESTRICTED.replace(".", "/") in p for p in data)
    allowed += data
    out = kernel_json(alice, _readable_files_probe(allowed))
    assert out["outside"] == []
    course = str(curriculum / "rural-access-index")
    listing = kernel_json(alice, f"import os, json; print(json.dumps(os.listdir({course!r})))")
    assert "grader" not in listing and "course.yaml" in listing


RESTART_PROBE = """
import json
from dask_gateway import Gateway
cluster = Gateway().new_cluster()
cluster.scale(1)
client = cluster.get_client()
client.wait_for_workers(1, timeout=120)

def me():
    import os
    return [os.getpid(), hash("statbox")]

def hog():
    block = b"x" * (3 * 2**30 // 2)  # written, so resident: beyond the 1 GiB worker's cap
    return len(block)

out = {"first": list(client.run(me).values())}
client.restart()
client.wait_for_workers(1, timeout=120)
out["restarted"] = list(client.run(me).values())
try:
    client.submit(hog, pure=False).result(timeout=300)
    out["hog"] = "survived"
except Exception as exc:
    out["hog"] = type(exc).__name__
client.wait_for_workers(1, timeout=120)
out["after_hog"] = list(client.run(me).values())
out["sum"] = client.submit(sum, range(10)).result()
client.close()
cluster.shutdown()
print(json.dumps(out))
"""


@needs_root
def test_a_worker_is_restarted_by_its_nanny_and_hashes_alike(local_stack, alice):
    """Workers start faster as their nanny forks them (statbox.spawners.local_dask); the
    nanny must still restart a worker on ``client.restart()`` and when one is killed at its
    memory cap (the nanny-less variant broke both), and every worker must hash strings
    with the seed distributed gives spawned workers (else shuffles go wrong)."""
    out = kernel_json(alice, RESTART_PROBE)
    pids = [out[k][0][0] for k in ("first", "restarted", "after_hog")]
    assert len(set(pids)) == 3, out
    assert out["hog"] == "KilledWorker", out
    assert out["sum"] == 45
    seeded = subprocess.run(
        [sys.executable, "-c", "print(hash('statbox'))"],
        env={**os.environ, "PYTHONHASHSEED": "6640"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert {out[k][0][1] for k in ("first", "restarted", "after_hog")} == {int(seeded.stdout)}, out


@needs_root
def test_stack_stop_leaves_no_process_and_no_control_group(local_stack, alice):
    _detach(alice)
    tree = local_stack.process_tree()
    assert local_stack.stop(signal.SIGTERM) == 0
    assert_all_gone(tree)
    assert _marked() == []
    port = local_stack.port
    leftovers = [
        str(p)
        for depth in range(4)
        for p in Path("/sys/fs/cgroup").glob("*/" * (depth + 1) + f"statbox-*-{port}")
    ]
    assert leftovers == []
