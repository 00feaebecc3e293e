"""``statbox backup create|restore|verify``.

The library is imported when a command runs, never to build the parser.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from statbox.cli.common import load, settings_file
from statbox.errors import ExitCode


def _state_and_settings(args: argparse.Namespace) -> tuple[Path, Path | None]:

    if args.state_dir:
        return Path(args.state_dir).resolve(), settings_file(args.config)
    loaded = load(args)
    return loaded.paths.state_dir, loaded.source


def cmd_create(args: argparse.Namespace) -> int:
    from statbox.cli.certify import results_store
    from statbox.modes.base import deployment
    from statbox.ops.backup import create_backup

    # The settings say where the results store is, even when --state-dir says where the state is.
    overrides = (
        {"paths": {"state_dir": str(Path(args.state_dir).resolve())}} if args.state_dir else {}
    )
    loaded = load(args, overrides)
    state_dir = loaded.paths.state_dir
    out = Path(args.out).resolve()
    store = results_store(loaded)
    warnings: list[str] = []
    mode = deployment(loaded.settings.mode)
    extra = mode.backup_parts(loaded, warnings)
    summary = create_backup(state_dir, out, loaded.source, store, extra=extra)
    what = mode.describe_backup(state_dir, summary.volumes, summary.files)
    print(f"Backed up {what} into {summary.directory}: {summary.bytes / 1024**2:.1f} MiB")
    for warning in [*summary.warnings, *warnings]:
        print(f"statbox: warning: {warning}", file=sys.stderr)
    return ExitCode.OK


def cmd_restore(args: argparse.Namespace) -> int:
    from statbox.ops.backup import restore_backup

    state_dir, settings_file = _state_and_settings(args)
    summary = restore_backup(
        Path(args.backup).resolve(), state_dir, settings_file, replace=args.replace
    )
    print(f"Restored {args.backup} into {summary.state_dir}.")
    if summary.results_store is not None:
        print(f"  and the results store into {summary.results_store}")
    if summary.volumes:
        print(f"  made the volumes {', '.join(summary.volumes)} anew (database loaded)")
    for path in summary.moved_aside:
        print(f"  kept what was there before as {path}")
    return ExitCode.OK


def cmd_verify(args: argparse.Namespace) -> int:
    from statbox.ops.backup import verify_backup

    manifest = verify_backup(Path(args.backup))
    docker_part = manifest.get("docker") or {}
    extra = (
        f", project {docker_part['project']!r}: database and "
        f"{len(docker_part['volumes'])} home volumes"
        if manifest.get("mode") == "docker"
        else ""
    )
    print(
        f"{args.backup}: a whole backup of {manifest['state_dir']} made {manifest['created']} "
        f"by Statbox {manifest['statbox_version']} ({manifest['state_files']} files{extra})"
    )
    results = manifest.get("results_store") or {}
    if results.get("file"):
        print(f"  and of the results store {results['path']}")
    elif results.get("url") and not results.get("path"):
        print(f"  without the results store {results['url']} (not a SQLite file)")
    return ExitCode.OK


def register(commands: Any) -> None:
    from statbox.cli.common import CommandGroup

    group = CommandGroup(
        commands, "backup", "Back up and restore a hub: database, results, secrets, homes."
    )

    def add(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        parser = group.add(name, func, help)
        parser.add_argument("--state-dir", metavar="DIR", help="default: paths.state_dir")
        return parser

    add(
        "create",
        cmd_create,
        "Back up the hub, consistent while it runs (docker mode: database and home volumes too).",
    ).add_argument("--out", required=True, metavar="DIR", help="a new folder for the backup")
    restore = add(
        "restore", cmd_restore, "Restore a backup (the hub must be stopped); checks it first."
    )
    restore.add_argument("backup", metavar="DIR")
    restore.add_argument(
        "--replace",
        action="store_true",
        help="docker mode: remove the project's existing volumes first (their data is lost)",
    )
    add("verify", cmd_verify, "Check a backup is whole, changing nothing.").add_argument(
        "backup", metavar="DIR"
    )
