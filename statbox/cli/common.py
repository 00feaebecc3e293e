"""What every ``statbox`` command group shares: the exit-code epilog, the --config option,
and :class:`CommandGroup`, which command modules use in their ``register(commands)``.

Light on purpose (argparse only): building the parser must not import what the commands
use, so ``statbox --help`` and a refused argument answer at once.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from statbox.contract import CONFIG_ENV

if TYPE_CHECKING:
    from statbox.settings.model import LoadedSettings

EPILOG = (
    "exit codes: 0 success; 1 failed while running; 2 bad input (nothing changed); "
    "3 this machine lacks something (see `statbox doctor`); 4 damaged state (a database "
    "damaged or emptied: restore a backup, nothing changed); 130 interrupted."
)

CONFIG_HELP = "settings file (default: $STATBOX_CONFIG, ./statbox.yaml, else built-in defaults)"


def add_config_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    return parser


class CommandGroup:
    """``statbox <name> <command> ...``: a group of commands under the top-level parser."""

    def __init__(
        self,
        commands: Any,
        name: str,
        help: str,
        description: str | None = None,
        epilog: str = EPILOG,
    ):
        self.epilog = epilog
        group = commands.add_parser(name, help=help, description=description or help, epilog=epilog)
        self.commands = group.add_subparsers(
            dest=f"{name}_command", required=True, metavar="COMMAND"
        )

    def add(
        self,
        name: str,
        func: Callable[[argparse.Namespace], int],
        help: str,
        config: bool = True,
    ) -> argparse.ArgumentParser:
        """A command running ``func(args)``; with ``--config`` unless ``config`` is False."""
        parser = self.commands.add_parser(name, help=help, description=help, epilog=self.epilog)
        parser.set_defaults(func=func)
        return add_config_option(parser) if config else parser


def settings_file(explicit: str | None) -> Path | None:
    """--config, else $STATBOX_CONFIG, else ./statbox.yaml when present, else the defaults."""
    chosen = explicit or os.environ.get(CONFIG_ENV)
    if chosen:
        return Path(chosen)
    local = Path("statbox.yaml")
    return local if local.exists() else None


def load(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> LoadedSettings:
    """The settings a command runs with (``--config`` and the rules of :func:`settings_file`)."""
    # The settings model (pydantic) loads when a command runs, never to build the parser.
    from statbox.settings.model import load_settings

    return load_settings(settings_file(args.config), overrides or {})


def acting(args: argparse.Namespace) -> Any:
    """Who a command acts for: the operator on the host, or with ``--as USER`` that user
    (with the groups the settings give them), as the hub's services would act for them."""
    from statbox.classroom.people import Actor
    from statbox.errors import BadInput
    from statbox.settings.names import is_valid_username

    name = getattr(args, "as_user", None)
    if name is None:
        return Actor.operator()
    if not is_valid_username(name):
        raise BadInput(f"--as {name[:64]!r}: not a username (lower-case letters, digits, . _ -)")
    return Actor.user(name)


def table(rows: list[list[str]]) -> str:
    """Rows as left-aligned columns two spaces apart (the first row is the header)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
