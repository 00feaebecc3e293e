"""``statbox catalog list | show | validate | samples | build``: a thin layer over the library.

Each command loads the settings (``--config``, else $STATBOX_CONFIG, ./statbox.yaml, the
defaults), calls one library function and prints a table. Errors are
:class:`~statbox.catalog.errors.CatalogError` / :class:`~statbox.errors.BadInput` (exit 2).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from statbox.cli.common import settings_file
from statbox.contract import ROLE_ENV
from statbox.errors import BadInput, ExitCode

if TYPE_CHECKING:
    from statbox.settings.model import LoadedSettings


def _settings(args: argparse.Namespace) -> LoadedSettings:
    from statbox.settings.model import load_settings

    return load_settings(settings_file(args.config))


def _catalog_path(args: argparse.Namespace, loaded: LoadedSettings) -> Path:
    chosen = getattr(args, "catalog", None) or getattr(args, "path", None)
    return Path(chosen) if chosen else loaded.paths.catalog


def _data_root(args: argparse.Namespace, loaded: LoadedSettings) -> str:
    return str(getattr(args, "data_root", None) or loaded.paths.data_root)


def _who(args: argparse.Namespace, loaded: LoadedSettings) -> tuple[str, list[str]]:
    """The role and groups to filter for: --as-role/--groups, else the user server's."""
    from statbox.catalog.access import RoleAccess, groups_from_environment

    role = args.as_role or os.environ.get(ROLE_ENV) or loaded.settings.default_role
    RoleAccess.of(loaded.settings, role)  # a role the settings know, or BadInput
    groups = args.groups if args.groups is not None else groups_from_environment()
    return role, groups


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """Plain aligned columns (the last one is not padded)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=False)] + [str(row[-1])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> int:
    from statbox.catalog.access import entitled_entries

    loaded = _settings(args)
    role, groups = _who(args, loaded)
    entries = entitled_entries(loaded.settings, role, groups, _catalog_path(args, loaded))
    rows = [(e.name, e.level, e.data_path, e.title) for e in entries]
    print(table(rows, ("NAME", "ACCESS", "DATA PATH", "TITLE")))
    print(
        f"\n{len(entries)} entries for role {role}"
        + (f", groups {', '.join(groups)}" if groups else "")
    )
    return ExitCode.OK


def cmd_show(args: argparse.Namespace) -> int:
    from statbox.catalog.access import RoleAccess, entitlement
    from statbox.catalog.loader import read_catalog

    loaded = _settings(args)
    role, groups = _who(args, loaded)
    info, _ = read_catalog(_catalog_path(args, loaded), _data_root(args, loaded))
    entry = info.entries.get(args.name)
    if entry is None or not entitlement(RoleAccess.of(loaded.settings, role), groups, entry):
        raise BadInput(f"{args.name!r}: no such entry for role {role} (see `statbox catalog list`)")
    m = entry.metadata
    access = m.access.level
    if m.access.roles or m.access.groups:
        allowed_roles = ", ".join(m.access.roles) or "-"
        allowed_groups = ", ".join(m.access.groups) or "-"
        access += f" (roles: {allowed_roles}; groups: {allowed_groups})"
    period = m.temporal_coverage
    fields = [
        ("title", m.title),
        ("domain", m.domain),
        ("access", access),
        ("location", info.url(entry)),
        ("data path", entry.data_path),
        ("format", m.format),
        ("reader", entry.reader.rsplit(":", 1)[1]),
        ("coverage", f"{m.spatial_coverage.description}; bbox {list(m.spatial_coverage.bbox)}"),
        ("period", f"{period.start} to {period.end} ({period.resolution})"),
        ("updated", m.update_frequency),
        ("licence", m.licence),
        ("provenance", m.provenance),
        ("citation", m.citation),
    ]
    print(f"{entry.name}\n")
    print(textwrap.fill(m.description, 96) + "\n")
    for label, value in fields:
        print(
            textwrap.fill(
                str(value), 96, initial_indent=f"{label:<11} ", subsequent_indent=" " * 12
            )
        )
    schema = m.schema_
    print()
    if schema.is_table:
        columns = schema.columns or {}
        rows: list[tuple[str, ...]] = [
            (n, c.type.value, c.unit or "-", c.description) for n, c in columns.items()
        ]
        print(table(rows, ("COLUMN", "TYPE", "UNIT", "DESCRIPTION")))
    else:
        rows = [
            (n, c.type.value, "", c.unit or "-", c.description)
            for n, c in (schema.dims or {}).items()
        ]
        rows += [
            (n, v.type.value, ",".join(v.dims), v.unit or "-", v.description)
            for n, v in (schema.variables or {}).items()
        ]
        print(table(rows, ("NAME", "TYPE", "DIMS", "UNIT", "DESCRIPTION")))
    if schema.crs:
        print(f"\ncrs: {schema.crs}")
    return ExitCode.OK


def cmd_validate(args: argparse.Namespace) -> int:
    from statbox.catalog.build import ROOT_NAME, build_root, domain_files
    from statbox.catalog.errors import CatalogError, Problem
    from statbox.catalog.loader import read_catalog
    from statbox.catalog.verify import sample_problems

    loaded = _settings(args)
    path = _catalog_path(args, loaded)
    info, _ = read_catalog(path, _data_root(args, loaded), lazy=True)  # metadata: per entry
    problems: list[Problem] = []
    for name, entry in info.entries.items():
        found = sample_problems(info, entry)
        problems += found
        print(f"{'ok  ' if not found else 'FAIL'} {name}", flush=True)
    beside = path.name == ROOT_NAME and all(p.exists() for p in domain_files(path.parent))
    if beside and path.read_text() != build_root(path.parent):
        stale = "out of date with the domain catalogs beside it: run `statbox catalog build`"
        problems.append(Problem(str(path), None, "", stale))
    if problems:
        raise CatalogError(problems)
    print(f"{path}: valid, {len(info.entries)} entries read and checked against their schema")
    return ExitCode.OK


def cmd_samples(args: argparse.Namespace) -> int:
    from statbox.catalog.samples import generate, is_current
    from statbox.contract import is_data_url

    loaded = _settings(args)
    out = args.out or str(loaded.paths.data_root)
    if is_data_url(out):
        raise BadInput(
            f"paths.data_root is {out}: samples are written to a directory; pass --out DIR"
        )
    target = Path(out)
    if args.if_missing and is_current(target, args.scale, args.seed):
        print(f"{target}: samples ({args.scale}, seed {args.seed}) are already there")
        return ExitCode.OK
    manifest = generate(
        target, args.scale, args.seed, progress=sys.stderr.isatty() or args.progress
    )
    size = sum(f["bytes"] for f in manifest["files"].values())
    count = len(manifest["files"])
    print(f"{target}: {count} files, {size / 1024**2:.1f} MiB ({args.scale}, seed {args.seed})")
    return ExitCode.OK


def cmd_build(args: argparse.Namespace) -> int:
    from statbox.catalog.build import ROOT_NAME, build_root, write_root

    directory = Path(args.directory)
    if args.check:
        target = directory / ROOT_NAME
        if not target.exists() or target.read_text() != build_root(directory):
            raise BadInput(
                f"{target}: out of date with the domain catalogs: run `statbox catalog build`"
            )
        print(f"{target}: up to date")
        return ExitCode.OK
    print(f"wrote {write_root(directory)}")
    return ExitCode.OK


def register(commands: Any) -> None:
    """Add the ``catalog`` command group to the top-level subparsers."""
    from statbox.catalog.samples import DEFAULT_SEED, SCALE_NAMES
    from statbox.cli.common import CommandGroup
    from statbox.settings.model import ROLE_NAMES  # already loaded by statbox.cli

    group = CommandGroup(commands, "catalog", "Datasets: list, show, validate, samples, build.")

    add = group.add

    def who(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--catalog", metavar="FILE", help="catalog (default: paths.catalog)")
        parser.add_argument(
            "--as-role",
            choices=ROLE_NAMES,
            help="list as this role (default: $STATBOX_ROLE, else default_role)",
        )
        parser.add_argument(
            "--groups",
            nargs="*",
            metavar="GROUP",
            help="the user's groups (default: $STATBOX_GROUPS)",
        )

    who(
        add(
            "list", cmd_list, "List the entries a role (and groups) may see, with their data paths."
        )
    )
    show = add("show", cmd_show, "Describe one entry: metadata and column schema.")
    show.add_argument("name", metavar="NAME")
    who(show)
    show.add_argument("--data-root", metavar="DIR", help="data root (default: paths.data_root)")
    validate = add(
        "validate", cmd_validate, "Load every entry, read a sample, check it against its schema."
    )
    validate.add_argument(
        "path", nargs="?", metavar="PATH", help="catalog (default: paths.catalog)"
    )
    validate.add_argument("--data-root", metavar="DIR", help="data root (default: paths.data_root)")
    samples = add(
        "samples", cmd_samples, "Generate the deterministic sample data into the data root."
    )
    samples.add_argument("--out", metavar="DIR", help="directory (default: paths.data_root)")
    samples.add_argument(
        "--scale",
        choices=SCALE_NAMES,
        default="small",
        help="small (default; seconds, < 100 MB) or medium",
    )
    samples.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})"
    )
    samples.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when samples of this scale and seed are there",
    )
    samples.add_argument(
        "--progress",
        action="store_true",
        help="show the progress bar even when stderr is not a terminal",
    )
    build = add("build", cmd_build, "Write catalogs/statbox.yaml from the domain catalogs.")
    build.add_argument("directory", nargs="?", default="catalogs", metavar="DIR")
    build.add_argument(
        "--check", action="store_true", help="fail (exit 2) if the root is out of date"
    )
