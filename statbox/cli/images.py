"""``statbox images build|lock``: the docker mode's images."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from statbox.cli.common import EPILOG
from statbox.errors import ExitCode
from statbox.modes.docker.images import (
    BY_NAME,
    DEBIAN_IMAGE,
    DEFAULT_CACHE,
    IMAGE_PYTHON_VERSION,
    BuildOptions,
    build_images,
    lock_images,
)


def cmd_images_build(args: argparse.Namespace) -> int:
    options = BuildOptions(
        names=args.images or None,
        base_source=args.base,
        cache_dir=Path(args.cache_dir).resolve() if args.cache_dir else DEFAULT_CACHE,
    )
    started = time.monotonic()
    result = build_images(options)
    print(f"built {len(result.tags)} images in {time.monotonic() - started:.0f} s:")
    for name, tag in result.tags.items():
        print(f"  {tag:<28} {result.sizes[name] / 1e9:5.2f} GB")
    return ExitCode.OK


def cmd_images_lock(args: argparse.Namespace) -> int:
    lock_images(args.images or None)
    return ExitCode.OK


def register(commands: Any) -> None:
    """Add ``statbox images build|lock`` to the CLI (see ``statbox.cli.COMMAND_MODULES``)."""

    group = commands.add_parser("images", help="Docker images: build, lock.", epilog=EPILOG)
    sub = group.add_subparsers(dest="images_command", required=True, metavar="COMMAND")
    build = sub.add_parser(
        "build",
        help="Build the docker mode's images, showing progress.",
        description="Build the single-user, gateway, hub and PostgreSQL images.",
        epilog=EPILOG,
    )
    build.add_argument("images", nargs="*", metavar="IMAGE", help=f"among {', '.join(BY_NAME)}")
    build.add_argument(
        "--base",
        choices=["auto", "mmdebstrap", "registry"],
        default="auto",
        help="where the Debian base comes from: mmdebstrap offline (the default when it is "
        f"installed) or {DEBIAN_IMAGE} from a registry",
    )
    build.add_argument("--cache-dir", metavar="DIR", help=f"default: {DEFAULT_CACHE}")
    build.set_defaults(func=cmd_images_build)
    lock = sub.add_parser(
        "lock",
        help="Regenerate images/*/requirements.txt from requirements.in.",
        description="Resolve each image's requirements.in for Python "
        f"{IMAGE_PYTHON_VERSION} and write its locked requirements.txt (with hashes).",
        epilog=EPILOG,
    )
    lock.add_argument("images", nargs="*", metavar="IMAGE")
    lock.set_defaults(func=cmd_images_lock)
