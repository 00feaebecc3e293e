"""A backup of a running hub restores users and their files, and the certification results
and signing key, after the state (and the results store beside it) is destroyed."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from statbox.certify.isolation import SandboxIsolation
from statbox.modes.local.stack import find_proxy
from tests.certify.conftest import COURSES, SAMPLE, SUBMISSIONS
from tests.certify.sampledata import CATALOG, write_sample_data
from tests.conftest import REPO, require_tool
from tests.integration.conftest import SETTINGS, assert_all_gone, make_stack
from tests.integration.hubclient import HubUser

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def statbox(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "statbox.cli", *args], capture_output=True, text=True, timeout=300
    )


def save(user: HubUser, name: str, text: str) -> None:
    response = user.api(
        "PUT",
        f"/user/{user.name}/api/contents/{name}",
        json={"type": "file", "format": "text", "content": text},
    )
    assert response.status_code in (200, 201), response.text


def test_backup_of_a_running_hub_restores_users_and_files(local_stack, passwords, tmp_path):
    alice = HubUser(local_stack.base_url, "alice")
    alice.login(passwords["user"])
    alice.create_token()
    alice.start_server()
    save(alice, "notes.txt", "port calls, week 12")
    created = alice.api("GET", "/hub/api/users/alice").json()["created"]
    state = local_stack.state_dir
    home = state / "homes" / "alice"

    made = statbox(
        "backup",
        "create",
        "--config",
        str(local_stack.config),
        "--state-dir",
        str(state),
        "--out",
        str(tmp_path / "backup"),
    )
    assert made.returncode == 0, made.stderr
    saved_home = {p.relative_to(home): p.read_bytes() for p in home.rglob("*") if p.is_file()}
    save(alice, "notes.txt", "written after the backup")

    tree = local_stack.process_tree()
    assert local_stack.stop(signal.SIGTERM) == 0
    assert_all_gone(tree)
    shutil.rmtree(state)

    restored = statbox(
        "backup",
        "restore",
        str(tmp_path / "backup"),
        "--config",
        str(local_stack.config),
        "--state-dir",
        str(state),
    )
    assert restored.returncode == 0, restored.stderr
    assert {p.relative_to(home): p.read_bytes() for p in home.rglob("*") if p.is_file()} == (
        saved_home
    )

    again = make_stack(local_stack.config, state)
    again.start()
    try:
        back = HubUser(again.base_url, "alice")
        back.login(passwords["user"])
        back.create_token()
        assert back.api("GET", "/hub/api/users/alice").json()["created"] == created
        back.start_server()
        note = back.api("GET", "/user/alice/api/contents/notes.txt").json()
        assert note["content"] == "port calls, week 12"
        tree = again.process_tree()
    finally:
        assert again.stop(signal.SIGTERM) == 0
    assert_all_gone(tree)


def attempt_rows(store: Path) -> list[tuple]:
    """Every row of the results store, every column, as SQLite holds them."""
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return conn.execute("SELECT * FROM certify_attempts ORDER BY id").fetchall()


def test_backup_of_a_running_hub_keeps_graded_results_and_certificates():
    require_tool("configurable-http-proxy", find_proxy() is not None)
    problem = SandboxIsolation.unavailable()
    require_tool(f"the grading sandbox ({problem})", problem is None)
    directory = Path(tempfile.mkdtemp(prefix="statbox-test-"))
    directory.chmod(0o755)  # as root, the hub's servers and the graded kernels run as others
    try:
        run_through_backup_and_restore(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_through_backup_and_restore(directory: Path) -> None:
    data = directory / "data"
    write_sample_data(data)
    for path in [data, *data.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    # The results store lives outside the state directory, where the settings put it.
    settings = SETTINGS.format(repo=REPO)
    settings = settings.replace(f"curriculum: {REPO}/curriculum", f"curriculum: {COURSES}")
    # graded kernels see only the datasets the exercise declares, found in this catalog
    settings = settings.replace(f"catalog: {REPO}/catalogs/statbox.yaml", f"catalog: {CATALOG}")
    state = directory / "state"
    settings = settings.replace(
        f"data_root: {REPO}/data", f"data_root: {data}\n  state_dir: {state}"
    )
    config = directory / "statbox.yaml"
    config.write_text(settings + "certify:\n  database: sqlite:///results/attempts.sqlite\n")
    store = directory / "results" / "attempts.sqlite"
    submissions, out = directory / "submissions", directory / "out"
    submissions.mkdir()
    shutil.copy(SAMPLE / "grader" / "solution.ipynb", submissions / "alice.ipynb")
    shutil.copy(SAMPLE / "exercise" / "exercise.ipynb", submissions / "bob.ipynb")
    shutil.copy(SUBMISSIONS / "edit-protected.ipynb", submissions / "carol.ipynb")

    hub = make_stack(config, state)
    hub.start()
    try:
        graded = statbox(
            "certify", "run", "--config", str(config), "--course", "shop-prices",
            "--exercise", "exercise", "--submissions", str(submissions), "--out", str(out),
            "--cohort", "cohort-test", "--workers", "2", "--quiet",
        )  # fmt: skip
        assert graded.returncode == 0, graded.stdout + graded.stderr
        assert "Graded 3 submissions" in graded.stdout and "isolation: sandbox" in graded.stdout
        reported = statbox("certify", "report", "--config", str(config), "--out", str(out))
        assert reported.returncode == 0, reported.stderr
        issued = directory / "alice-certificate.json"
        shutil.copy(out / "certificates" / "alice.json", issued)
        before = attempt_rows(store)
        with sqlite3.connect(store) as conn:
            passed = dict(conn.execute("SELECT trainee, passed FROM certify_attempts"))
        assert len(before) == 3 and (passed["alice"], passed["bob"]) == (1, 0)
        assert statbox("certify", "verify", "--config", str(config), str(issued)).returncode == 0

        made = statbox("backup", "create", "--config", str(config), "--out", str(directory / "b"))
        assert made.returncode == 0, made.stderr
        assert hub.proc is not None and hub.proc.poll() is None  # backed up while it ran
        tree = hub.process_tree()
    finally:
        assert hub.stop(signal.SIGTERM) == 0
    assert_all_gone(tree)

    shutil.rmtree(state)
    shutil.rmtree(store.parent)
    lost = statbox("certify", "verify", "--config", str(config), str(issued))
    assert lost.returncode == 1 and "unknown key" in lost.stdout  # the key was really gone

    whole = statbox("backup", "verify", str(directory / "b"))
    assert whole.returncode == 0 and f"and of the results store {store}" in whole.stdout
    restored = statbox("backup", "restore", "--config", str(config), str(directory / "b"))
    assert restored.returncode == 0, restored.stderr
    assert f"results store into {store}" in restored.stdout
    assert attempt_rows(store) == before

    verified = statbox("certify", "verify", "--config", str(config), str(issued))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "valid: alice passed Shop prices" in verified.stdout
    tampered = directory / "tampered.json"
    record = json.loads(issued.read_bytes())["record"]
    tampered.write_bytes(
        issued.read_bytes().replace(
            f'"trainee":"{record["trainee"]}"'.encode(), b'"trainee":"mallory"'
        )
    )
    refused = statbox("certify", "verify", "--config", str(config), str(tampered))
    assert refused.returncode == 1 and "tampered" in refused.stdout
    # The same results and key issue the same certificate, byte for byte.
    again = statbox("certify", "report", "--config", str(config), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert (out / "certificates" / "alice.json").read_bytes() == issued.read_bytes()
