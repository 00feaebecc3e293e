"""``statbox bundle create|install``: offline bundles."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from statbox.cli.common import load, settings_file
from statbox.errors import BadInput, ExitCode, StatboxError
from statbox.ops import bundle_install
from statbox.ops.bundle import BundleOptions, create_bundle, stack_images


def cmd_create(args: argparse.Namespace) -> int:

    loaded = load(args)
    given = settings_file(args.config) is not None
    # The installed hub's mode: --mode, else the settings' mode when a file was given, else
    # docker (the mode bundles are for: one server, no network).
    mode = args.mode or (loaded.settings.mode.value if given else "docker")
    if mode not in ("local", "docker"):
        raise BadInput(f"--mode {mode}: a bundle installs a local or docker hub")
    with_images = args.with_images if args.with_images is not None else mode == "docker"
    images = [*(stack_images(loaded.settings) if with_images else []), *(args.image or ())]
    out = Path(args.out).resolve()
    options = BundleOptions(
        out=out,
        cache=Path(args.cache).resolve() if args.cache else out.parent / ".statbox-bundle-cache",
        images=tuple(dict.fromkeys(images)),
        mode=mode,
    )
    summary = create_bundle(options, progress=lambda step: print(f"  {step} ...", flush=True))
    print(
        f"Wrote {summary.path}: {summary.size / 1024**2:.0f} MiB "
        f"(built: {', '.join(summary.built) or 'nothing'}; "
        f"reused: {', '.join(summary.reused) or 'nothing'})"
    )
    for image in summary.images:
        print(
            f"  image {image['name']}: {image['size'] / 1e9:.2f} GB in the engine, "
            f"{image['bundle_bytes'] / 1e9:.2f} GB of the bundle (layers shared with others "
            "are stored once)"
        )
    return ExitCode.OK


def cmd_install(args: argparse.Namespace) -> int:
    try:
        release = bundle_install.install_bundle(
            Path(args.bundle).resolve(),
            Path(args.prefix).resolve(),
            load_images=not args.no_images,
            progress=lambda step: print(f"  {step}", flush=True),
        )
    except bundle_install.InstallError as exc:
        error = StatboxError(*exc.messages)
        error.exit_code = ExitCode(exc.code)
        raise error from None
    print(f"Installed {release.name} in {Path(args.prefix).resolve()}.")
    return ExitCode.OK


def register(commands: Any) -> None:
    from statbox.cli.common import CommandGroup

    group = CommandGroup(
        commands, "bundle", "Offline bundles: everything a hub needs, in one file."
    )
    create = group.add("create", cmd_create, "Write a bundle.")
    create.add_argument("--out", required=True, metavar="FILE")
    images = create.add_mutually_exclusive_group()
    images.add_argument(
        "--with-images",
        action="store_true",
        default=None,
        help="carry the docker stack's images (hub, gateway, PostgreSQL, every role's "
        "single-user image, named by the settings); the default in docker mode",
    )
    images.add_argument(
        "--without-images", dest="with_images", action="store_false", help="carry no images"
    )
    create.add_argument("--image", action="append", metavar="IMAGE", help="another image to carry")
    create.add_argument("--cache", metavar="DIR", help="where built parts are kept for reuse")
    create.add_argument(
        "--mode",
        choices=["docker", "local"],
        default=None,
        help="the mode the installed settings start in (default: the settings' mode when "
        "--config is given, else docker)",
    )
    install = group.add("install", cmd_install, "Verify and install a bundle.", config=False)
    install.add_argument("bundle", metavar="FILE")
    install.add_argument("--prefix", default="/opt/statbox", metavar="DIR")
    install.add_argument("--no-images", action="store_true", help="do not load the images")
