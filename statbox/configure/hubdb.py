"""The hub's database, checked before the hub starts: never an empty one over a lost one.

JupyterHub creates its tables in whatever database it is given: a database file truncated to
0 bytes, deleted, or a PostgreSQL volume recreated empty, and the hub starts as if new, every
user, token and server record silently gone (measured: 16 users). So Statbox tells a first
start from an emptied database by a marker, :data:`MARKER`, in the state directory (root's
alone, kept by ``statbox backup``), written at the first start that finds the hub's tables.

Rules, checked before the hub starts (:func:`check_sqlite`, :func:`check_postgres`):

* the hub's tables are there (and, for SQLite, the file passes ``PRAGMA quick_check``): go on,
  writing the marker if it is not there yet;
* a SQLite file of 0 bytes: refused, marker or not (JupyterHub writes its tables the moment it
  creates the file, so only damage leaves it empty);
* no database, or one without the hub's tables, while the marker says the hub had them:
  refused;
* anything else (no marker, no database or an empty one): a first start.

Refused means :class:`DamagedState` with the way out (``statbox backup restore``); nothing is
written, moved or deleted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from statbox.errors import DamagedState, StatboxError

MARKER = "hub-database-initialised"
"""A file in the state directory: the hub has had its tables in its database."""

HUB_TABLES = frozenset({"users", "spawners", "api_tokens"})
"""Tables every JupyterHub database has (the users, their servers, their tokens)."""

WAY_OUT = (
    "Restore the latest backup with the hub stopped: `statbox backup restore DIR` "
    "(docs/operations.md, Backups). Only if you mean to start an empty hub, every user, token "
    "and server record gone: {fresh}. Nothing was changed."
)


def sqlite_database(state_dir: Path) -> Path:
    """Local mode's hub database."""
    return state_dir / "jupyterhub.sqlite"


def check_local(state_dir: Path) -> None:
    """Local mode, before the hub starts: :func:`check_sqlite` on its database; at a first
    start, the marker is then written as soon as the hub has made its tables (by a thread of
    this process, ``statbox up``, which outlives the hub's start), so that a database lost
    before the second start is refused too."""
    database = sqlite_database(state_dir)
    check_sqlite(database, state_dir)
    if not (state_dir / MARKER).exists():
        threading.Thread(
            target=_mark_when_made, args=(database, state_dir), name="hub-db-marker", daemon=True
        ).start()


def _mark_when_made(database: Path, state_dir: Path, interval: float = 2.0) -> None:
    while not (state_dir / MARKER).exists():
        time.sleep(interval)
        with contextlib.suppress(sqlite3.Error, OSError):
            if database.exists() and _sqlite_tables(database) >= HUB_TABLES:
                _mark(state_dir / MARKER, str(database))


def _sqlite_tables(database: Path) -> set[str]:
    # Read-only, so that looking changes nothing (not even a hot journal rolled back).
    with contextlib.closing(
        sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    ) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master")}


def _refuse(problem: str, fresh: str) -> DamagedState:
    return DamagedState(problem, WAY_OUT.format(fresh=fresh))


def _fresh_sqlite(database: Path, marker: Path) -> str:
    if not marker.exists():
        return f"move {database} aside"
    return f"move {database} aside and remove {marker}"


def _mark(marker: Path, database: str) -> None:
    if marker.exists():
        return
    partial = marker.with_name(marker.name + ".partial")
    partial.write_text(
        json.dumps({"database": database, "first_seen": dt.datetime.now(dt.UTC).isoformat()}) + "\n"
    )
    partial.chmod(0o600)
    partial.replace(marker)


def check_sqlite(database: Path, state_dir: Path) -> None:
    """Local mode: refuse a damaged, emptied or lost SQLite hub database (see the module)."""
    marker = state_dir / MARKER
    was_initialised = marker.exists()
    if not database.exists():
        if was_initialised:
            raise _refuse(
                f"the hub database {database} is missing, but this hub has run with its "
                f"users before ({marker}).",
                _fresh_sqlite(database, marker),
            )
        return  # a first start
    size = database.stat().st_size
    if size == 0:
        raise _refuse(
            f"the hub database {database} is empty (0 bytes): it was truncated or replaced, "
            "and starting the hub on it would lose every user.",
            _fresh_sqlite(database, marker),
        )
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
        ) as db:
            verdict = db.execute("PRAGMA quick_check").fetchone()
        tables = _sqlite_tables(database)
    except sqlite3.DatabaseError as error:
        raise _refuse(
            f"the hub database {database} cannot be read ({error}): it is damaged.",
            _fresh_sqlite(database, marker),
        ) from None
    if verdict is None or verdict[0] != "ok":
        raise _refuse(
            f"the hub database {database} is damaged (SQLite's check: "
            f"{verdict[0] if verdict else 'no answer'}).",
            _fresh_sqlite(database, marker),
        )
    if tables >= HUB_TABLES:
        _mark(marker, str(database))
    elif was_initialised:
        raise _refuse(
            f"the hub database {database} has lost the hub's tables "
            f"({', '.join(sorted(HUB_TABLES - tables))}), but this hub has run with its "
            f"users before ({marker}).",
            _fresh_sqlite(database, marker),
        )


TABLES_SQL = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"


def check_postgres(state_dir: Path, query: Callable[[str], str], where: str) -> None:
    """Docker mode: refuse a hub PostgreSQL database without the hub's tables when the
    marker says it had them. ``query`` runs one SQL statement in the database and returns
    its output as text (a failing query raises); ``where`` names the database in messages."""
    marker = state_dir / MARKER
    tables = set(query(TABLES_SQL).split())
    if tables >= HUB_TABLES:
        _mark(marker, where)
    elif marker.exists():
        raise _refuse(
            f"the hub database {where} has no hub tables (missing: "
            f"{', '.join(sorted(HUB_TABLES - tables))}): it was emptied or its volume "
            f"recreated, but this hub has run with its users before ({marker}).",
            f"remove {marker}",
        )


DOCKER_DATABASE = "jupyterhub"
"""The hub's database in the db container (images/postgres/entrypoint.sh)."""


def check_docker(service: str, state_dir: Path, db_container: Callable[[], Any]) -> None:
    """Docker mode, as each service becomes ready: once the database answers (before the
    hub starts), :func:`check_postgres`; once the hub answers (its tables made), the marker.
    ``db_container``: the db container (a Docker SDK container)."""
    if service not in ("db", "hub"):
        return
    container = db_container()
    where = f"{DOCKER_DATABASE} in the container {container.name}"
    query = partial(_psql, container)
    if service == "db":
        check_postgres(state_dir, query, where)
    elif set(query(TABLES_SQL).split()) >= HUB_TABLES:
        _mark(state_dir / MARKER, where)


def _psql(container: Any, sql: str) -> str:
    """``sql``'s rows, unaligned, run by ``psql`` in the db container (peer authentication
    of its postgres account over the local socket: no password)."""
    result = container.exec_run(
        ["psql", "--username=postgres", f"--dbname={DOCKER_DATABASE}", "--no-align",
         "--tuples-only", "--no-psqlrc", f"--command={sql}"],
        user="postgres",
    )  # fmt: skip
    output = result.output.decode(errors="replace")
    if result.exit_code != 0:
        raise StatboxError(
            f"the hub database {DOCKER_DATABASE} in {container.name} could not be read "
            f"(psql exited {result.exit_code}):",
            *output.splitlines()[-5:],
        )
    return output
