"""Backups: a live state directory backed up and restored exactly; damaged backups refused
with nothing changed; a running hub protected from a restore under it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from statbox.errors import BadInput, EnvironmentProblem
from statbox.ops.backup import (
    MANIFEST,
    RESULTS_COPY,
    STATE_ARCHIVE,
    create_backup,
    restore_backup,
    verify_backup,
)


def tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``root`` with its mode and (for files) its bytes; databases are
    compared by rows instead (a snapshot's header counters differ from the live file's)."""
    found = {}
    for path in sorted(root.rglob("*")):
        data = path.read_bytes() if path.is_file() and path.suffix != ".sqlite" else None
        found[str(path.relative_to(root))] = (path.stat().st_mode & 0o7777, data)
    return found


def rows(db: Path, table: str = "results") -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


@pytest.fixture
def state(tmp_path) -> Path:
    """A state directory shaped like a hub's: databases, secrets, homes, and scratch."""
    state = tmp_path / "state"
    (state / "secrets").mkdir(parents=True, mode=0o700)
    (state / "secrets" / "admin_password").write_text("s" * 40 + "\n")
    (state / "secrets" / "admin_password").chmod(0o600)
    (state / "secrets" / "signing_key").write_bytes(os.urandom(32))
    (state / "homes" / "alice" / "courses").mkdir(parents=True)
    (state / "homes" / "alice" / "courses" / "work.ipynb").write_text('{"cells": []}')
    (state / "homes" / "alice" / "data.bin").write_bytes(os.urandom(200_000))
    (state / "homes" / "alice").chmod(0o750)
    with sqlite3.connect(state / "results.sqlite") as conn:
        conn.execute("CREATE TABLE results (id INTEGER PRIMARY KEY, trainee TEXT, score REAL)")
        conn.executemany(
            "INSERT INTO results (trainee, score) VALUES (?, ?)", [("alice", 9.5), ("bob", 4)]
        )
    (state / "run").mkdir()
    (state / "run" / "jupyterhub.pid").write_text("999999999")
    (state / "logs").mkdir()
    (state / "logs" / "hub.log").write_text("scratch")
    return state


def test_backup_then_restore_gives_back_exactly_what_was_saved(state, tmp_path):
    before = tree(state)
    saved_rows = rows(state / "results.sqlite")
    settings = tmp_path / "statbox.yaml"
    settings.write_text("hub: {name: Backed up}\n")
    summary = create_backup(state, tmp_path / "backup", settings)
    assert summary.files == 5
    assert sorted(p.name for p in summary.directory.iterdir()) == [
        MANIFEST,
        "settings.yaml",
        STATE_ARCHIVE,
    ]

    # Destroy the state and the settings, then restore.
    (state / "homes" / "alice" / "courses" / "work.ipynb").write_text("ruined")
    (state / "secrets" / "signing_key").unlink()
    settings.write_text("changed since\n")
    result = restore_backup(summary.directory, state, None)

    expected = {k: v for k, v in before.items() if not k.startswith(("run", "logs"))}
    assert tree(state) == expected
    assert rows(state / "results.sqlite") == saved_rows
    assert settings.read_text() == "hub: {name: Backed up}\n"
    # Nothing is lost: what was there before the restore is kept aside.
    aside = [p for p in result.moved_aside if p.name.startswith("state.before-restore-")]
    assert len(aside) == 1
    assert (aside[0] / "homes" / "alice" / "courses" / "work.ipynb").read_text() == "ruined"
    assert any(p.name.startswith("statbox.yaml.before-restore-") for p in result.moved_aside)


def test_database_backed_up_while_written_is_a_consistent_snapshot(state, tmp_path):
    db = state / "results.sqlite"
    stop = threading.Event()

    def writer() -> None:
        conn = sqlite3.connect(db, timeout=30)
        n = 0
        while not stop.is_set():
            with conn:  # one transaction: two rows that must travel together
                conn.execute("INSERT INTO results (trainee, score) VALUES (?, ?)", (f"t{n}", 1))
                conn.execute("INSERT INTO results (trainee, score) VALUES (?, ?)", (f"t{n}", 2))
            n += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        backup = create_backup(state, tmp_path / "backup").directory
    finally:
        stop.set()
        thread.join()
    restored = tmp_path / "restored"
    restore_backup(backup, restored)
    got = rows(restored / "results.sqlite")
    with sqlite3.connect(restored / "results.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    written = [r for r in got if r[1].startswith("t")]
    assert len(written) % 2 == 0  # never half a transaction


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGE = {
    "archive byte flipped": lambda b: flip_byte(b / STATE_ARCHIVE, 4000),
    "archive truncated": lambda b: (b / STATE_ARCHIVE).write_bytes(
        (b / STATE_ARCHIVE).read_bytes()[:-700]
    ),
    "manifest missing": lambda b: (b / MANIFEST).unlink(),
    "manifest not JSON": lambda b: (b / MANIFEST).write_text("{"),
    "settings copy removed": lambda b: (b / "settings.yaml").unlink(),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_damaged_backup_is_refused_and_nothing_changes(damage, state, tmp_path):
    settings = tmp_path / "statbox.yaml"
    settings.write_text("hub: {name: X}\n")
    backup = create_backup(state, tmp_path / "backup", settings).directory
    DAMAGE[damage](backup)
    (state / "homes" / "alice" / "new.txt").write_text("made after the backup")
    before = tree(tmp_path)
    with pytest.raises(BadInput) as refused:
        restore_backup(backup, state)
    assert refused.value.messages[-1] == "nothing was restored"
    assert tree(tmp_path) == before


def test_archive_escaping_the_state_directory_is_refused(state, tmp_path):
    import hashlib
    import io
    import tarfile

    backup = create_backup(state, tmp_path / "backup").directory
    with tarfile.open(backup / STATE_ARCHIVE, "a") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    manifest = json.loads((backup / MANIFEST).read_text())
    data = (backup / STATE_ARCHIVE).read_bytes()
    manifest["files"][STATE_ARCHIVE] = {
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
    }
    (backup / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BadInput, match="would not stay inside the state"):
        verify_backup(backup)
    assert not (tmp_path / "escaped.txt").exists()


def test_restore_refuses_while_a_hub_uses_the_state(state, tmp_path):
    backup = create_backup(state, tmp_path / "backup").directory
    # a process that is a hub by its command line, started before its pid file was written
    hub = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "jupyterhub"])
    try:
        (state / "run" / "jupyterhub.pid").write_text(str(hub.pid))
        with pytest.raises(EnvironmentProblem, match="stop it"):
            restore_backup(backup, state)
    finally:
        hub.kill()
        hub.wait()


def test_restore_goes_on_when_the_pid_file_names_another_process(state, tmp_path):
    """A stale pid file whose pid now belongs to something else (here: this test) is no hub."""
    backup = create_backup(state, tmp_path / "backup").directory
    (state / "run" / "jupyterhub.pid").write_text(str(os.getpid()))
    restore_backup(backup, state)


def test_cli_reports_damage_with_exit_code_2_and_no_traceback(state, tmp_path):
    backup = create_backup(state, tmp_path / "backup").directory
    flip_byte(backup / STATE_ARCHIVE, 2000)
    for command in (["verify", str(backup)], ["restore", str(backup), "--state-dir", str(state)]):
        run = subprocess.run(
            [sys.executable, "-m", "statbox.cli", "backup", *command],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 2, run.stderr
        assert "checksum differs from the manifest" in run.stderr
        assert "Traceback" not in run.stderr
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "statbox.cli",
            "backup",
            "create",
            "--state-dir",
            str(state),
            "--out",
            str(tmp_path / "second"),
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    verified = subprocess.run(
        [sys.executable, "-m", "statbox.cli", "backup", "verify", str(tmp_path / "second")],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0 and "a whole backup of" in verified.stdout


def write_while(db: Path, stop: threading.Event, started: threading.Event | None = None) -> None:
    """Pairs of rows, each pair in one transaction, until ``stop``; ``started`` is set once
    the first pair is in."""
    conn = sqlite3.connect(db, timeout=30)
    n = 0
    while not stop.is_set():
        with conn:
            conn.execute("INSERT INTO results (trainee, score) VALUES (?, ?)", (f"t{n}", 1))
            conn.execute("INSERT INTO results (trainee, score) VALUES (?, ?)", (f"t{n}", 2))
        n += 1
        if started is not None:
            started.set()
    conn.close()


@pytest.fixture
def outside_store(tmp_path) -> Path:
    """A results store the settings put outside the state directory."""
    db = tmp_path / "elsewhere" / "results.db"
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE results (id INTEGER PRIMARY KEY, trainee TEXT, score REAL)")
        conn.execute("INSERT INTO results (trainee, score) VALUES ('alice', 9.5)")
    db.chmod(0o640)
    return db


def test_results_store_outside_the_state_is_saved_while_written_and_put_back(
    state, outside_store, tmp_path
):
    stop, started = threading.Event(), threading.Event()
    thread = threading.Thread(target=write_while, args=(outside_store, stop, started))
    thread.start()
    try:
        assert started.wait(30), "the writer never wrote"
        summary = create_backup(
            state, tmp_path / "backup", results_store=f"sqlite:///{outside_store}"
        )
    finally:
        stop.set()
        thread.join()
    manifest = json.loads((summary.directory / MANIFEST).read_text())
    assert manifest["results_store"]["path"] == str(outside_store)
    assert manifest["results_store"]["file"] == RESULTS_COPY
    assert summary.warnings == []

    outside_store.write_bytes(b"ruined")
    stale = outside_store.with_name("results.db-journal")  # would be replayed into the copy
    stale.write_bytes(b"stale journal")
    result = restore_backup(summary.directory, state)
    assert result.results_store == outside_store
    assert outside_store.stat().st_mode & 0o777 == 0o640
    with sqlite3.connect(outside_store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    got = rows(outside_store)
    assert got[0] == (1, "alice", 9.5)
    assert len(got) > 1 and len(got) % 2 == 1  # alice, then whole pairs: never half a one
    assert not stale.exists()
    kept = {p.name for p in result.moved_aside if p.parent == outside_store.parent}
    assert any(n.startswith("results.db.before-restore-") for n in kept)
    assert any(n.endswith("-journal") for n in kept)
    aside = [p for p in result.moved_aside if p.name.startswith("results.db.before-restore-")]
    assert [p.read_bytes() for p in aside if not p.name.endswith("-journal")] == [b"ruined"]


def test_damaged_results_store_copy_is_refused_and_nothing_changes(state, outside_store, tmp_path):
    backup = create_backup(
        state, tmp_path / "backup", results_store=f"sqlite:///{outside_store}"
    ).directory
    flip_byte(backup / RESULTS_COPY, 200)
    with sqlite3.connect(outside_store) as conn:
        conn.execute("INSERT INTO results (trainee, score) VALUES ('bob', 1)")
    before = tree(tmp_path)
    saved_rows = rows(outside_store)
    with pytest.raises(BadInput, match=r"results-store\.sqlite: checksum differs"):
        restore_backup(backup, state)
    assert tree(tmp_path) == before and rows(outside_store) == saved_rows


def backup_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "statbox.cli", "backup", *args], capture_output=True, text=True
    )


def test_cli_finds_the_results_store_the_settings_name(state, outside_store, tmp_path):
    settings = tmp_path / "statbox.yaml"
    relative = os.path.relpath(outside_store, tmp_path)  # resolved against the settings' folder
    settings.write_text(f"certify: {{database: 'sqlite:///{relative}'}}\n")
    made = backup_cli(
        "create", "--config", str(settings), "--state-dir", str(state), "--out", str(tmp_path / "b")
    )
    assert made.returncode == 0, made.stderr
    manifest = json.loads((tmp_path / "b" / MANIFEST).read_text())
    assert manifest["results_store"]["path"] == str(outside_store)
    assert manifest["files"][RESULTS_COPY]["size"] > 0

    settings.write_text("certify: {database: 'postgresql+psycopg://grader:s3cret@db/statbox'}\n")
    made = backup_cli(
        "create", "--config", str(settings), "--state-dir", str(state), "--out", str(tmp_path / "c")
    )
    assert made.returncode == 0, made.stderr
    assert "does not hold it; back it up with the database's own tools" in made.stderr
    assert "s3cret" not in made.stderr and "s3cret" not in (tmp_path / "c" / MANIFEST).read_text()
    assert json.loads((tmp_path / "c" / MANIFEST).read_text())["results_store"]["file"] is None
    verified = backup_cli("verify", str(tmp_path / "c"))
    assert verified.returncode == 0, verified.stderr
    assert "without the results store postgresql+psycopg://grader:***@db" in verified.stdout


def test_results_store_in_the_state_is_snapshotted_whatever_its_name(state, tmp_path):
    db = state / "certify" / "attempts.data"  # not a name the backup would guess
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE results (id INTEGER PRIMARY KEY, trainee TEXT, score REAL)")
    stop = threading.Event()
    thread = threading.Thread(target=write_while, args=(db, stop))
    thread.start()
    try:
        backup = create_backup(state, tmp_path / "backup", results_store=f"sqlite:///{db}")
    finally:
        stop.set()
        thread.join()
    assert not (backup.directory / RESULTS_COPY).exists()  # it travels in the state archive
    restored = tmp_path / "restored"
    restore_backup(backup.directory, restored)
    with sqlite3.connect(restored / "certify" / "attempts.data") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert len(rows(restored / "certify" / "attempts.data")) % 2 == 0


def test_results_store_in_the_state_scratch_is_refused(state, tmp_path):
    with pytest.raises(BadInput, match="scratch that a backup leaves out"):
        create_backup(state, tmp_path / "b", results_store=f"sqlite:///{state}/run/r.sqlite")
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.partial").exists()
