"""``statbox helm schema``: the chart's values schema, generated from the settings model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from statbox.modes.kubernetes.chart import SCHEMA_FILE, render_schema


def cmd_helm_schema(args: argparse.Namespace) -> int:
    from statbox.errors import BadInput, ExitCode

    text = render_schema()
    if args.check:
        target = Path(args.check)
        current = target.read_text() if target.exists() else ""
        if current != text:
            raise BadInput(
                f"{target}: not generated from the current settings model; "
                f"run `statbox helm schema --write {target}`"
            )
        print(f"{target}: up to date")
    elif args.write:
        Path(args.write).write_text(text)
        print(f"wrote {args.write}")
    else:
        print(text, end="")
    return ExitCode.OK


def register(commands: Any) -> None:
    """``statbox helm schema``: print, write or check the chart's values schema."""
    from statbox.cli.common import CommandGroup

    helm = CommandGroup(commands, "helm", "The Helm chart: its values schema.")
    about = "Print the chart's values.schema.json (statbox: generated from the settings model)."
    schema = helm.add("schema", cmd_helm_schema, about, config=False)
    target = schema.add_mutually_exclusive_group()
    target.add_argument("--write", metavar="FILE", help=f"write it to FILE (e.g. {SCHEMA_FILE})")
    target.add_argument(
        "--check", metavar="FILE", help="exit 2 unless FILE equals a fresh generation"
    )
