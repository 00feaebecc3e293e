"""A backup of a running hub restores users and their files after the state is destroyed."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys

import pytest

from tests.integration.conftest import assert_all_gone, make_stack
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
