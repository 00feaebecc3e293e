"""Backups that restore: ``statbox backup create --out DIR`` and ``statbox backup restore DIR``.

A backup is a folder::

    DIR/manifest.json   what is inside, with the SHA-256 and size of every other file
    DIR/state.tar       the state directory: hub database, results store, secrets (signing
                        key, passwords, cookie secret), users' homes; owners and modes kept
    DIR/settings.yaml   the settings file the hub ran with, when it had one
    DIR/results-store.sqlite
                        the certification results store, when the settings put its SQLite
                        file outside the state directory (``certify.database``); the
                        manifest says where it goes back

Invariants:

* Consistent while the hub runs: SQLite databases are copied with SQLite's online backup API
  (a snapshot of one moment, never a half-written page), the results store too wherever
  the settings put it; processes' scratch (``run/``, ``logs/``, the gateway's cluster
  state, pid files) is left out, as a restart recreates it. A file deleted while the backup runs is
  left out, not an error. A results store in PostgreSQL is not in the backup (the command
  says so): back it up with the database's own tools.
* A backup is written to ``DIR.partial`` and renamed when complete: a folder named DIR is
  always a whole backup.
* Restore checks everything first (manifest, checksums, sizes, archive members that would
  land outside the state directory) and changes nothing when any check fails. It refuses to
  run while a hub uses the state directory. What it replaces is moved aside, not deleted.

In docker mode (the settings' ``mode: docker``) a backup also holds the hub's PostgreSQL
database and every home volume: see :mod:`statbox.modes.docker.backup`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from statbox.certify.store import shown_url, sqlite_file
from statbox.errors import BadInput, EnvironmentProblem
from statbox.modes.base import Deployment, deployment

FORMAT = 1
MANIFEST = "manifest.json"
STATE_ARCHIVE = "state.tar"
SETTINGS_COPY = "settings.yaml"
RESULTS_COPY = "results-store.sqlite"

EPHEMERAL = ("run", "logs", "gateway")
"""Top-level parts of the state directory that a restart recreates: not backed up."""

PID_SUFFIX = ".pid"
"""Pid files (docker mode keeps the hub's and the proxy's in ``hub/``): left out, as a pid
means nothing after a restore, and a restored one made the new hub signal whatever process
had that number in its container (seen: the hub itself)."""

SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")
"""SQLite's own side files: the online backup folds them into the copy."""


@dataclass(frozen=True)
class BackupSummary:
    directory: Path
    files: int
    bytes: int
    warnings: list[str] = field(default_factory=list)
    """What the backup does not hold that the operator must save otherwise."""
    volumes: int = 0
    """Docker volumes saved (docker mode)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_sqlite(path: Path) -> bool:
    if path.suffix not in SQLITE_SUFFIXES or not path.is_file():
        return False
    with path.open("rb") as stream:
        return stream.read(16) == b"SQLite format 3\x00"


def _snapshot_sqlite(path: Path, out: Path) -> None:
    """A consistent copy of a live SQLite database (readers and writers may be busy)."""
    if not path.is_file():  # gone since it was listed, or never there
        raise FileNotFoundError(path)
    # A URI, so that the database is opened read-only; as_uri escapes '?' and '#' in names.
    source = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(out)
    try:
        with target:
            source.backup(target)
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"{path}: cannot be backed up as a SQLite database ({exc})") from None
    finally:
        source.close()
        target.close()


def _state_members(state_dir: Path) -> Iterator[Path]:
    """Every path of the state directory a backup holds, parents before children."""
    for directory, dirnames, filenames in os.walk(state_dir):
        here = Path(directory)
        if here == state_dir:
            dirnames[:] = [d for d in dirnames if d not in EPHEMERAL]
        dirnames.sort()
        for name in sorted(dirnames):
            yield here / name
        for name in sorted(filenames):
            if not name.endswith((*SQLITE_SIDE_FILES, PID_SUFFIX)):
                yield here / name


def _write_state_archive(
    state_dir: Path, archive: Path, scratch: Path, databases: frozenset[Path] = frozenset()
) -> int:
    """Archive the state directory; returns how many files it holds. ``databases`` are
    SQLite files to snapshot whatever their name (the results store the settings name)."""
    count = 0
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(state_dir, arcname=".", recursive=False)
        for path in _state_members(state_dir):
            name = str(path.relative_to(state_dir))
            try:
                is_file = path.is_file() and not path.is_symlink()
                if path in databases or _is_sqlite(path):
                    copy = scratch / f"snapshot-{count}"
                    _snapshot_sqlite(path, copy)
                    info = tar.gettarinfo(path, arcname=name)
                    info.size = copy.stat().st_size
                    with copy.open("rb") as stream:
                        tar.addfile(info, stream)
                    copy.unlink()
                else:
                    tar.add(path, arcname=name, recursive=False)
            except FileNotFoundError:
                continue  # deleted while the backup ran (a checkpoint, a temporary file)
            count += is_file
    return count


def _results_store(
    url: str | None, state_dir: Path, partial: Path
) -> tuple[dict[str, Any] | None, frozenset[Path], list[str]]:
    """Save the results store at ``url``: (its manifest entry, SQLite files of the state
    directory to snapshot, warnings). A SQLite file outside the state directory is
    snapshotted into the backup as RESULTS_COPY."""
    if not url:
        return None, frozenset(), []

    file = sqlite_file(url)
    entry: dict[str, Any] = {"url": shown_url(url), "path": None, "file": None}
    if file is None:
        return (
            entry,
            frozenset(),
            [
                f"the results store {entry['url']} (certify.database) is not a SQLite file: "
                "this backup does not hold it; back it up with the database's own tools "
                "(pg_dump for PostgreSQL)"
            ],
        )
    file = file.absolute()
    entry["path"] = str(file)
    if file.resolve().is_relative_to(state_dir.resolve()):  # however it is spelt (links)
        inside = file.resolve().relative_to(state_dir.resolve())
        if inside.parts[0] in EPHEMERAL:
            raise BadInput(
                f"certify.database: {file} is under {state_dir / inside.parts[0]}, scratch "
                "that a backup leaves out: move the results store (default: "
                "<state_dir>/certify/results.sqlite)"
            )
        return entry, frozenset([state_dir / inside]), []
    if file.is_file():
        _snapshot_sqlite(file, partial / RESULTS_COPY)
        status = file.stat()
        entry.update(
            file=RESULTS_COPY, mode=status.st_mode & 0o7777, uid=status.st_uid, gid=status.st_gid
        )
    return entry, frozenset(), []


def create_backup(
    state_dir: Path,
    out: Path,
    settings_file: Path | None = None,
    results_store: str | None = None,
    extra: Callable[[Path], dict[str, Any]] | None = None,
) -> BackupSummary:
    """Back up ``state_dir`` (and the settings file) into the new folder ``out``.

    ``results_store`` is the certification results store's URL, as the settings give it:
    a SQLite file outside ``state_dir`` is saved too, consistent while it is written.
    ``extra``, when given, writes more files into the (partial) backup folder and returns
    keys to add to the manifest; every file it writes is checksummed like the others.
    """
    state_dir = state_dir.absolute()
    if not state_dir.is_dir():
        raise BadInput(f"{state_dir}: no state directory to back up (is paths.state_dir right?)")
    if out.exists():
        raise BadInput(f"{out} exists: choose a new folder for the backup")
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True, mode=0o700)
    try:
        results, databases, warnings = _results_store(results_store, state_dir, partial)
        with tempfile.TemporaryDirectory(dir=partial) as scratch:
            files = _write_state_archive(
                state_dir, partial / STATE_ARCHIVE, Path(scratch), databases
            )
        if settings_file is not None:
            shutil.copy2(settings_file, partial / SETTINGS_COPY)
        more = extra(partial) if extra is not None else {}
        contents = sorted(p.name for p in partial.iterdir())
        manifest = {
            "format": FORMAT,
            "mode": "local",
            "statbox_version": version("statbox"),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "state_dir": str(state_dir),
            "settings_file": str(settings_file) if settings_file else None,
            "state_files": files,
            "results_store": results,
            "files": {
                name: {"sha256": _sha256(partial / name), "size": (partial / name).stat().st_size}
                for name in contents
            },
            **more,
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in out.iterdir())
    volumes = len(more.get("docker", {}).get("volumes", []))
    return BackupSummary(out, files, size, warnings, volumes)


# --------------------------------------------------------------------------- restore


def verify_backup(backup: Path) -> dict[str, Any]:
    """The manifest of ``backup`` once every check passes; else BadInput with every problem."""
    manifest_path = backup / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise BadInput(f"{backup}: not a Statbox backup ({MANIFEST} is missing)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"{manifest_path}: damaged ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BadInput(f"{manifest_path}: not a backup of format {FORMAT} (made by another tool?)")
    problems = []
    files = manifest.get("files")
    if not isinstance(files, dict) or STATE_ARCHIVE not in files:
        raise BadInput(f"{manifest_path}: damaged (it lists no {STATE_ARCHIVE})")
    for name, expected in sorted(files.items()):
        path = backup / name
        if Path(name).name != name or not isinstance(expected, dict):
            problems.append(f"{manifest_path}: damaged (entry {name!r})")
        elif not path.is_file():
            problems.append(f"{path}: missing")
        elif path.stat().st_size != expected.get("size"):
            problems.append(
                f"{path}: {path.stat().st_size} bytes, the manifest says {expected.get('size')}"
                " (truncated or damaged)"
            )
        elif _sha256(path) != expected.get("sha256"):
            problems.append(f"{path}: checksum differs from the manifest (damaged)")
    problems.extend(_results_entry_problems(manifest, manifest_path))
    if not problems:
        problems.extend(_unsafe_members(backup / STATE_ARCHIVE))
    if not problems:
        problems.extend(_deployment_of(manifest).backup_problems(backup, manifest))
    if problems:
        raise BadInput(*problems)
    return manifest


def _deployment_of(manifest: dict[str, Any]) -> Deployment:
    """The deployment mode a backup was made in (its manifest's ``mode``)."""
    return deployment(manifest.get("mode", "local"))


def _results_entry_problems(manifest: dict[str, Any], manifest_path: Path) -> list[str]:
    entry = manifest.get("results_store")
    if entry is None:
        return []
    if not isinstance(entry, dict):
        return [f"{manifest_path}: damaged (results_store)"]
    if entry.get("file") is None:
        return []
    path = entry.get("path")
    if (
        entry["file"] != RESULTS_COPY
        or RESULTS_COPY not in manifest["files"]
        or not isinstance(path, str)
        or not Path(path).is_absolute()
        or not all(isinstance(entry.get(k), int) for k in ("mode", "uid", "gid"))
    ):
        return [f"{manifest_path}: damaged (results_store)"]
    return []


def _escapes(name: str) -> bool:
    path = Path(os.path.normpath(name))
    return path.is_absolute() or path.parts[:1] == ("..",)


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why extracting ``member`` would reach outside the state directory, or None.

    Checked by hand rather than with tarfile's filters, which Python 3.11.2 (Debian 12's)
    lacks and which, where present, drop the owners and modes a restore must keep.
    """
    if _escapes(member.name):
        return "its path leads outside"
    if member.issym() and _escapes(os.path.join(os.path.dirname(member.name), member.linkname)):
        return "it links outside"
    if member.islnk() and _escapes(member.linkname):
        return "it links outside"
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        return "it is a device or pipe"
    return None


def _unsafe_members(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        found = ((m.name, member_problem(m)) for m in tar.getmembers())
        return [
            f"{archive}: {name!r} would not stay inside the state: {why}"
            for name, why in found
            if why
        ]


# Members are checked by member_problem before extraction; where tarfile has filters, say
# so, or Python 3.14's default ('data') would drop owners and modes.
_TRUSTED = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}


@dataclass(frozen=True)
class RestoreSummary:
    state_dir: Path
    moved_aside: list[Path]
    results_store: Path | None = None
    """Where the results store saved from outside the state directory went back."""
    volumes: list[str] = field(default_factory=list)
    """Docker volumes made anew (docker mode)."""


def _stage_results_store(backup: Path, entry: dict[str, Any]) -> Path:
    """The saved results store copied beside its place, owner and mode as saved."""
    target = Path(entry["path"])
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(prefix=f".{target.name}.restoring-", dir=target.parent)
    except OSError as exc:
        raise EnvironmentProblem(
            f"{target.parent}: cannot restore the results store there ({exc.strerror}); "
            "nothing was restored"
        ) from None
    staged = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as out, (backup / RESULTS_COPY).open("rb") as saved:
            shutil.copyfileobj(saved, out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(staged, entry["mode"] & 0o7777)
        with contextlib.suppress(PermissionError):
            os.chown(staged, entry["uid"], entry["gid"])
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return staged


def _place_results_store(staged: Path, target: Path, stamp: str) -> list[Path]:
    """Put the staged store at ``target``; what was there (and SQLite's side files, which
    would otherwise be replayed into the restored database) is moved aside."""
    moved = []
    for suffix in ("", *SQLITE_SIDE_FILES):
        current = target.with_name(target.name + suffix)
        if current.exists():
            aside = current.with_name(f"{target.name}.before-restore-{stamp}{suffix}")
            current.rename(aside)
            moved.append(aside)
    staged.rename(target)
    return moved


def restore_backup(
    backup: Path,
    state_dir: Path,
    settings_file: Path | None = None,
    replace: bool = False,
    client: Any = None,
) -> RestoreSummary:
    """Bring back exactly what ``backup`` saved into ``state_dir`` (and the settings file).

    Everything is checked before anything changes. An existing state directory or settings
    file is moved aside with a ``.before-restore-<time>`` suffix, never deleted. A docker-mode
    backup also recreates the project's volumes and database in the engine (``client``, else
    the one ``DOCKER_HOST`` names); existing volumes are removed only with ``replace``.
    """
    try:
        manifest = verify_backup(backup)
    except BadInput as refused:
        raise BadInput(*refused.messages, "nothing was restored") from None
    (moved, store), volumes = _deployment_of(manifest).restore(
        backup,
        manifest,
        state_dir,
        lambda: _restore_state(backup, manifest, state_dir, settings_file),
        replace,
        client,
    )
    return RestoreSummary(state_dir, moved, store, volumes)


def _restore_state(
    backup: Path, manifest: dict[str, Any], state_dir: Path, settings_file: Path | None
) -> tuple[list[Path], Path | None]:
    """Lay the saved state directory and settings file down: (what was moved aside, where
    a results store saved from outside the state directory went back)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    results = manifest.get("results_store") or {}
    results_staged = _stage_results_store(backup, results) if results.get("file") else None
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{state_dir.name}.restoring-", dir=state_dir.parent))
    moved: list[Path] = []
    try:
        with tarfile.open(backup / STATE_ARCHIVE) as tar:
            tar.extractall(staging, numeric_owner=True, **_TRUSTED)  # type: ignore[arg-type]
            root = tar.getmember(".")
        os.chmod(staging, root.mode & 0o777)
        with contextlib.suppress(PermissionError):
            os.chown(staging, root.uid, root.gid)
        if state_dir.exists():
            aside = state_dir.with_name(f"{state_dir.name}.before-restore-{stamp}")
            state_dir.rename(aside)
            moved.append(aside)
        staging.rename(state_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if results_staged is not None:
            results_staged.unlink(missing_ok=True)
        raise
    if results_staged is not None:
        moved.extend(_place_results_store(results_staged, Path(results["path"]), stamp))
    saved_settings = backup / SETTINGS_COPY
    target = settings_file or (
        Path(manifest["settings_file"]) if manifest.get("settings_file") else None
    )
    if saved_settings.exists() and target is not None:
        if target.exists() and target.read_bytes() != saved_settings.read_bytes():
            aside = target.with_name(f"{target.name}.before-restore-{stamp}")
            target.rename(aside)
            moved.append(aside)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(saved_settings, target)
    return moved, (Path(results["path"]) if results_staged else None)


# --------------------------------------------------------------------------- command line
