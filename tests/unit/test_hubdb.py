"""The hub's database before the hub starts: a damaged or emptied one is refused, with the way
out, and nothing is changed; a first start is told apart by the marker (issue 14: a database
truncated to 0 bytes started silently empty, 16 users gone).

Real SQLite files made by JupyterHub's own schema (jupyterhub.orm); PostgreSQL through the
same query function docker mode runs in its db container, given the rows psql would print.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from jupyterhub import orm

from statbox.configure.hubdb import (
    MARKER,
    _psql,
    check_docker,
    check_local,
    check_postgres,
    check_sqlite,
    sqlite_database,
)
from statbox.errors import DamagedState, ExitCode, StatboxError
from tests.conftest import require_tool


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


# Docker mode's own query, run by a real psql against a real PostgreSQL (this machine's,
# on a Unix socket in a temporary folder, under the postgres account); the Docker API's
# exec_run is what is stood in for, by running the same command here.
POSTGRES_BIN = Path("/usr/lib/postgresql")


class LocalExec:
    """A container's ``exec_run`` (command and user as docker mode passes them), run here."""

    name = "statbox-db"

    def __init__(self, socket_dir: Path):
        self.socket_dir = socket_dir

    def exec_run(self, command: list[str], user: str) -> SimpleNamespace:
        done = subprocess.run(
            ["runuser", "-u", user, "--", *command],
            capture_output=True,
            env={**os.environ, "PGHOST": str(self.socket_dir)},
            timeout=30,
        )
        return SimpleNamespace(exit_code=done.returncode, output=done.stdout + done.stderr)


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalExec]:
    if os.geteuid() != 0:
        pytest.skip("starting PostgreSQL under its own account needs root")
    versions = sorted(POSTGRES_BIN.glob("*/bin/initdb"))
    require_tool("a PostgreSQL server (make install: postgresql)", bool(versions))
    require_tool("runuser", shutil.which("runuser") is not None)
    bin_dir = versions[-1].parent
    # Not under pytest's folder: root's alone, the postgres account could not enter it.
    folder = Path(tempfile.mkdtemp(prefix="statbox-test-pg-"))
    folder.chmod(0o755)
    data = folder / "data"
    shutil.chown(folder, "postgres")

    def as_postgres(*command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, timeout=60,
                       capture_output=True)  # fmt: skip

    options = f"-c listen_addresses='' -c unix_socket_directories={folder}"
    try:
        as_postgres(str(bin_dir / "initdb"), f"--pgdata={data}", "--username=postgres",
                    "--auth-local=peer")  # fmt: skip
        # --log: the server must not hold this test's pipes (run() would wait for it).
        as_postgres(str(bin_dir / "pg_ctl"), f"--pgdata={data}", f"--options={options}",
                    f"--log={folder / 'server.log'}", "--wait", "start")  # fmt: skip
        as_postgres("psql", f"--host={folder}", "--username=postgres",
                    "--command=CREATE DATABASE jupyterhub")  # fmt: skip
        yield LocalExec(folder)
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", str(bin_dir / "pg_ctl"),
                        f"--pgdata={data}", "--mode=immediate", "stop"],
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(folder)


def test_docker_mode_reads_the_hubs_tables_with_psql(postgres, tmp_path: Path) -> None:
    check_docker("db", tmp_path, lambda: postgres)  # a first start: nothing yet
    assert not (tmp_path / MARKER).exists()
    create = "CREATE TABLE users (id int); CREATE TABLE spawners (id int); " + (
        "CREATE TABLE api_tokens (id int)"
    )
    _psql(postgres, create)  # what the hub does at its first start
    check_docker("hub", tmp_path, lambda: postgres)  # the hub answers: marked
    assert (tmp_path / MARKER).exists()
    check_docker("db", tmp_path, lambda: postgres)
    _psql(postgres, "DROP TABLE users, spawners, api_tokens")  # the volume emptied
    with pytest.raises(DamagedState) as caught:
        check_docker("db", tmp_path, lambda: postgres)
    assert "jupyterhub in the container statbox-db" in str(caught.value)
    assert "statbox backup restore" in str(caught.value)


def test_docker_mode_says_when_psql_fails(postgres) -> None:
    with pytest.raises(StatboxError) as caught:
        _psql(postgres, "SELECT nonsense FROM nowhere")
    assert "could not be read (psql exited 1)" in str(caught.value)
    assert "nowhere" in str(caught.value)
