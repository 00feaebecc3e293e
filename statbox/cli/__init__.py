"""The ``statbox`` command: a thin layer that parses arguments and calls the library.

Every error the library raises on purpose (:class:`statbox.errors.StatboxError`,
:class:`statbox.settings.model.SettingsError`) is printed as plain lines on stderr, one per problem,
and mapped to its exit code (see :mod:`statbox.errors`); no traceback reaches the operator.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from statbox import errors
from statbox.cli.common import EPILOG, add_config_option, load, settings_file
from statbox.errors import ExitCode, StatboxError
from statbox.settings.model import (
    DEFAULTS_FILE,
    Mode,
    SettingsError,
    load_settings,
    settings_schema,
    settings_to_yaml,
)

NOTEBOOK_MODULES = (
    *("numpy", "pandas", "pyarrow", "fsspec", "dask", "distributed", "dask_gateway"),
    *("xarray", "zarr", "shapely", "geopandas", "pyproj", "matplotlib", "sklearn"),
    *("jupyterlab", "jupyter_server", "ipykernel"),
)
EXTRA_OF = {
    **dict.fromkeys(NOTEBOOK_MODULES, "notebook"),
    **dict.fromkeys(("kubespawner", "kubernetes_asyncio"), "kubernetes"),
}
"""Libraries that come with an extra rather than with Statbox itself, by import name: a
command that needs one says which extra to install instead of failing with a traceback."""

COMMAND_MODULES: tuple[str, ...] = (
    "statbox.cli.catalog",
    "statbox.cli.courses",
    "statbox.cli.images",
    "statbox.cli.helm",
    "statbox.cli.backup",
    "statbox.cli.bundle",
    "statbox.cli.certify",
    "statbox.cli.indicators",
)
"""Modules that add command groups: each has ``register(commands)`` taking the top-level
subparsers and adding one group whose leaf parsers ``set_defaults(func=...)``; a ``func``
takes the parsed arguments and returns an exit code, raising StatboxError for errors."""


# ----------------------------------------------------------------------------- commands


def cmd_up(args: argparse.Namespace) -> int:
    from statbox.modes.base import deployment

    overrides: dict[str, Any] = {}
    hub: dict[str, Any] = {}
    if args.ip is not None:
        hub["ip"] = args.ip
    if args.port is not None:
        hub["port"] = args.port
    if hub:
        overrides["hub"] = hub
    if args.state_dir is not None:
        overrides["paths"] = {"state_dir": str(Path(args.state_dir).resolve())}
    if args.mode is not None:
        overrides["mode"] = args.mode
    loaded = load(args, overrides)
    mode = deployment(loaded.settings.mode)
    if args.prepare and not mode.prepare_only:
        raise errors.BadInput(f"--prepare: docker mode has it; mode is {mode.name!r}")
    stack = mode.stack(loaded)
    stack.prepare()
    if args.prepare:
        print("\n".join(mode.prepared(stack)))
        return ExitCode.OK
    print(f"Starting Statbox ({loaded.settings.hub.name}) ...", flush=True)

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # as under nohup
        # The terminal it ran in closed: stop as on Ctrl-C (by default the process would
        # just die, leaving its hub, proxy and gateway running).
        signal.signal(signal.SIGHUP, _terminate)
    for line in getattr(stack, "leftovers", []):
        print(line, flush=True)
    try:
        stack.start()
        _print_welcome(stack)
        ended = stack.wait()
        print(
            f"The {ended} could not be kept running; stopping the rest. Its log:", file=sys.stderr
        )
        print("\n".join(stack.log_tail(ended)), file=sys.stderr)
        return ExitCode.FAILED
    except KeyboardInterrupt:
        print("\nStopping Statbox ...", flush=True)
        return ExitCode.OK
    finally:
        # A second Ctrl-C or SIGTERM must not cut the orderly stop short and strand processes.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        stack.stop()


def _print_welcome(stack: Any) -> None:
    creds = stack.credentials
    settings = stack.loaded.settings
    from statbox.identity.roles import users_with_role

    if settings.auth.type != "shared-password":
        from statbox.configure.hub import hub_public_url

        print(
            f"\nStatbox is running at {stack.url}\n"
            f"  Sign-in: {settings.auth.type} (callback to register with the provider: "
            f"{hub_public_url(stack.runtime)}/hub/oauth_callback)\n"
            f"  Logs: {stack.state_dir / 'logs'}   Stop: Ctrl-C\n",
            flush=True,
        )
        return

    staff = sorted(users_with_role(settings, "instructor", "admin"))

    def shown(name: str, env: str) -> str:
        if name in creds.generated:
            kept = creds.directory / name
            return f"{creds.values[name]}  (generated now, shown once; kept in {kept})"
        if os.environ.get(env):
            return f"as given in {env}"
        return f"kept in {creds.directory / name}"

    print(
        f"\nStatbox is running at {stack.url}\n"
        f"  Trainees and analysts: any username, class password: "
        f"{shown('user_password', 'STATBOX_USER_PASSWORD')}\n"
        f"  Instructors and admins ({', '.join(staff) or 'none named'}): admin password: "
        f"{shown('admin_password', 'STATBOX_ADMIN_PASSWORD')}\n"
        f"  Logs: {stack.state_dir / 'logs'}   Stop: Ctrl-C\n",
        flush=True,
    )


def cmd_config_schema(args: argparse.Namespace) -> int:
    print(json.dumps(settings_schema(), indent=2))
    return ExitCode.OK


def cmd_config_check(args: argparse.Namespace) -> int:
    file = args.file or settings_file(None)
    loaded = load_settings(file)
    print(f"{file or '<built-in defaults>'}: valid ({loaded.settings.mode.value} mode)")
    return ExitCode.OK


def cmd_config_show(args: argparse.Namespace) -> int:
    print(settings_to_yaml(load(args).settings), end="")
    return ExitCode.OK


def cmd_config_defaults(args: argparse.Namespace) -> int:
    print(DEFAULTS_FILE.read_text(), end="")
    return ExitCode.OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from statbox.ops.doctor import run_checks

    loaded = load(args)
    modes = set(Mode) if args.mode == "all" else ({Mode(args.mode)} if args.mode else None)
    healthy = True
    for name, needed, finding in run_checks(loaded, modes):
        mark = "ok " if finding.ok else ("FAIL" if needed else "--  ")
        print(f"[{mark}] {name}: {finding.detail}")
        if not finding.ok and finding.fix:
            print(f"       fix: {finding.fix}")
        healthy = healthy and (finding.ok or not needed)
    return ExitCode.OK if healthy else ExitCode.ENVIRONMENT


def cmd_roles_explain(args: argparse.Namespace) -> int:
    from statbox.identity.roles import explain
    from statbox.settings.names import describe, is_valid_group, is_valid_username

    if not is_valid_username(args.user):
        raise errors.BadInput(
            f"{describe(args.user)} is not a valid username: lower-case letters, digits, . _ - "
            "(at most 63, starting with a letter or digit)"
        )
    bad = [group for group in args.groups if not is_valid_group(group)]
    if bad:
        raise errors.BadInput(
            f"--groups {describe(bad[0])}: not a group name an identity provider may send "
            "(letters, digits, space . _ : / @ -, at most 128)"
        )
    for label, value in explain(load(args).settings, args.user, args.groups):
        print(f"{label + ':':<15} {value}")
    return ExitCode.OK


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="statbox",
        description="Statbox: a JupyterHub sandbox for official statistics.",
        epilog=EPILOG,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str, parent: Any = commands
    ) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help, description=help, epilog=EPILOG)
        sub.set_defaults(func=func)
        return sub

    with_config = add_config_option

    up = with_config(
        add("up", cmd_up, "Run the sandbox on this machine (local or docker mode) until Ctrl-C.")
    )
    up.add_argument("--ip", help="address to listen on (default: hub.ip, 127.0.0.1)")
    up.add_argument(
        "--port", type=int, help="port to listen on (default: hub.port, 8000; 0 picks a free one)"
    )
    up.add_argument(
        "--state-dir",
        metavar="DIR",
        help="hub database, secrets, homes and logs (default: paths.state_dir)",
    )
    up.add_argument(
        "--mode",
        choices=[Mode.local.value, Mode.docker.value],
        help="where servers run (default: the settings' mode)",
    )
    up.add_argument(
        "--prepare",
        action="store_true",
        help="docker mode: check, write <state>/run/compose.env for docker compose, start nothing",
    )

    config = commands.add_parser(
        "config", help="Settings: schema, check, show, defaults.", epilog=EPILOG
    )
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    add("schema", cmd_config_schema, "Print the JSON schema of statbox.yaml.", config_commands)
    check = add(
        "check",
        cmd_config_check,
        "Validate a settings file (default: $STATBOX_CONFIG, ./statbox.yaml, else the built-in"
        " defaults).",
        config_commands,
    )
    check.add_argument("file", metavar="FILE", nargs="?")
    with_config(
        add(
            "show",
            cmd_config_show,
            "Print the effective settings (secrets masked).",
            config_commands,
        )
    )
    add("defaults", cmd_config_defaults, "Print the built-in settings.", config_commands)

    doctor = with_config(
        add("doctor", cmd_doctor, "Check what each mode needs and say how to fix what is missing.")
    )
    doctor.add_argument(
        "--mode",
        choices=[m.value for m in Mode] + ["all"],
        help="mode to check for (default: the settings' mode)",
    )

    roles = commands.add_parser("roles", help="Roles: explain a user's role.", epilog=EPILOG)
    roles_commands = roles.add_subparsers(dest="roles_command", required=True, metavar="COMMAND")
    explain = with_config(
        add(
            "explain",
            cmd_roles_explain,
            "Show a user's role, why, and what it grants.",
            roles_commands,
        )
    )
    explain.add_argument("user")
    explain.add_argument(
        "--groups",
        nargs="*",
        default=[],
        metavar="GROUP",
        help="groups the identity provider sends",
    )
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"statbox: {problem}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except StatboxError as exc:
        for message in exc.messages:
            print(f"statbox: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except ModuleNotFoundError as exc:
        extra = EXTRA_OF.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        print(
            f"statbox: this command needs {exc.name}, from Statbox's {extra!r} extra: install "
            f"it (pip install 'statbox[{extra}]', or `make install` in a checkout)",
            file=sys.stderr,
        )
        return ExitCode.ENVIRONMENT


if __name__ == "__main__":
    sys.exit(main())
