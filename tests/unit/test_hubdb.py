"""The hub's database before the hub starts: a damaged or emptied one is refused, with the way
out, and nothing is changed; a first start is told apart by the marker (issue 14: a database
truncated to 0 bytes started silently empty, 16 users gone).

Real SQLite files made by JupyterHub's own schema (jupyterhub.orm); PostgreSQL through the
same query function docker mode runs in its db container, given the rows psql would print.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

import pytest
from jupyterhub import orm

from statbox.configure.hubdb import (
    MARKER,
    check_local,
    check_postgres,
    check_sqlite,
    sqlite_database,
)
from statbox.errors import DamagedState, ExitCode


def hub_database(path: Path, users: int = 16) -> Path:
    """A JupyterHub database as the hub makes it, with ``users`` users."""
    session = orm.new_session_factory(f"sqlite:///{path}")()
    for n in range(users):
        session.add(orm.User(name=f"trainee{n:02d}"))
    session.commit()
    session.close()
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: size and modification time (nothing may change)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    }


def refused(state: Path, database: Path) -> DamagedState:
    before = snapshot(state)
    with pytest.raises(DamagedState) as caught:
        check_sqlite(database, state)
    assert snapshot(state) == before, "a refused check changed the state directory"
    error = caught.value
    assert error.exit_code == ExitCode.DAMAGED_STATE == 4
    text = str(error)
    assert str(database) in text
    assert "statbox backup restore" in text
    assert "Nothing was changed" in text
    return error


def test_a_first_start_goes_on_without_a_marker(tmp_path: Path) -> None:
    check_sqlite(tmp_path / "jupyterhub.sqlite", tmp_path)
    assert not (tmp_path / MARKER).exists()


def test_a_database_with_the_hubs_tables_is_marked(tmp_path: Path) -> None:
    database = hub_database(tmp_path / "jupyterhub.sqlite")
    check_sqlite(database, tmp_path)
    marker = tmp_path / MARKER
    assert marker.stat().st_mode & 0o777 == 0o600
    first = marker.read_text()
    check_sqlite(database, tmp_path)  # again: kept as it was
    assert marker.read_text() == first


@pytest.mark.parametrize("marked", [True, False])
def test_a_database_truncated_to_nothing_is_refused(tmp_path: Path, marked: bool) -> None:
    """The measured case; refused even without the marker (a hub writes its tables the
    moment it makes the file: only damage leaves it empty)."""
    database = hub_database(tmp_path / "jupyterhub.sqlite")
    if marked:
        check_sqlite(database, tmp_path)
    os.truncate(database, 0)
    assert "0 bytes" in str(refused(tmp_path, database))
    assert database.stat().st_size == 0


def test_a_partly_truncated_database_is_refused(tmp_path: Path) -> None:
    database = hub_database(tmp_path / "jupyterhub.sqlite", users=2000)
    os.truncate(database, database.stat().st_size // 2)
    assert "damaged" in str(refused(tmp_path, database))


def test_a_file_that_is_no_database_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "jupyterhub.sqlite"
    database.write_bytes(b"\0garbage" * 1000)
    assert "damaged" in str(refused(tmp_path, database))


def test_a_lost_database_is_refused_once_the_hub_has_run(tmp_path: Path) -> None:
    database = hub_database(tmp_path / "jupyterhub.sqlite")
    check_sqlite(database, tmp_path)
    database.unlink()
    assert "missing" in str(refused(tmp_path, database))


def test_a_database_emptied_of_the_hubs_tables_is_refused_once_the_hub_has_run(
    tmp_path: Path,
) -> None:
    database = hub_database(tmp_path / "jupyterhub.sqlite")
    check_sqlite(database, tmp_path)
    database.unlink()
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute("CREATE TABLE unrelated (x)")
    assert "lost the hub's tables" in str(refused(tmp_path, database))


def test_the_marker_is_written_once_the_first_hub_has_made_its_tables(tmp_path: Path) -> None:
    """Between the first start and the second, a lost database is refused too: the check
    at the first start watches for the hub's tables and marks them."""
    check_local(tmp_path)  # a first start: nothing there yet
    assert not (tmp_path / MARKER).exists()
    hub_database(sqlite_database(tmp_path))  # the hub makes its tables
    deadline = time.monotonic() + 10
    while not (tmp_path / MARKER).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (tmp_path / MARKER).exists()
    sqlite_database(tmp_path).unlink()
    with pytest.raises(DamagedState):
        check_local(tmp_path)


HUB_TABLES_ROWS = "alembic_version\nusers\nspawners\napi_tokens\ngroups\n"


def test_postgres_with_the_hubs_tables_is_marked(tmp_path: Path) -> None:
    check_postgres(tmp_path, lambda sql: HUB_TABLES_ROWS, "jupyterhub in statbox-db")
    assert (tmp_path / MARKER).exists()


def test_postgres_emptied_after_the_hub_has_run_is_refused(tmp_path: Path) -> None:
    check_postgres(tmp_path, lambda sql: HUB_TABLES_ROWS, "jupyterhub in statbox-db")
    before = snapshot(tmp_path)
    with pytest.raises(DamagedState) as caught:
        check_postgres(tmp_path, lambda sql: "", "jupyterhub in statbox-db")
    assert "statbox backup restore" in str(caught.value)
    assert "jupyterhub in statbox-db" in str(caught.value)
    assert snapshot(tmp_path) == before


def test_postgres_at_a_first_start_goes_on(tmp_path: Path) -> None:
    check_postgres(tmp_path, lambda sql: "", "jupyterhub in statbox-db")
    assert not (tmp_path / MARKER).exists()
