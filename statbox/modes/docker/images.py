"""``statbox images``: lock and build the docker mode's images (single-user, hub, gateway, db).

Every image is described once in :data:`IMAGES`. A build has three steps, each cached under
the build cache directory (``.statbox/build-cache`` of the checkout unless given):

1. **Base**: Debian plus the image's ``debian-packages.txt``, tagged by a hash of that list.
   With a registry, ``images/base/Dockerfile`` builds it from ``debian:bookworm-slim``;
   offline, ``mmdebstrap`` makes the same system from the machine's apt sources and
   ``docker import`` loads it (the tarball is cached).
2. **Wheelhouse**: every wheel an image's lock (``requirements.txt``) names, downloaded for
   the image's interpreter (Python 3.11.2 on Debian 12) with their hashes checked, plus a
   wheel of this checkout's ``statbox`` package.
3. **Image**: the image's Dockerfile, built with the base as a build argument, from a
   staged context holding only what it copies (Docker's layer cache keeps rebuilds short).

Invariant: builds fetch nothing but the wheels the locks pin (and, with a registry, the
Debian base): ``statbox images lock`` is the one place where versions are chosen.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from statbox.errors import BadInput, EnvironmentProblem, StatboxError
from statbox.modes.docker.engine import docker_client
from statbox.resources import CHECKOUT, checkout

REPO = CHECKOUT
IMAGES_DIR = REPO / "images"
DEFAULT_CACHE = REPO / ".statbox" / "build-cache"

IMAGE_PYTHON_VERSION = "3.11.2"
"""The interpreter of Debian 12, which every Python image runs: wheels are chosen for it."""
DEBIAN_SUITE = "bookworm"
DEBIAN_IMAGE = "debian:bookworm-slim"
"""The base pulled from a registry when there is one."""

# Fixed zip timestamps make the statbox wheel byte-identical between builds of the same code,
# so Docker's layer cache is not defeated by a rebuilt wheel.
SOURCE_DATE_EPOCH = "315532800"

MMDEBSTRAP_TRIM = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)
"""Documentation that no container reads; the copyright files stay."""


@dataclass(frozen=True)
class ImageSpec:
    """One image: its folder under ``images/``, its tag, and what it is built on."""

    name: str
    tag: str
    parent: str | None = None
    """Another image of :data:`IMAGES` this one is built FROM (else a Debian base)."""
    lock_against: tuple[str, ...] = ()
    """Images whose locks constrain this one's (an image built on another must agree)."""
    python: bool = True
    """Whether the image has a requirements lock and the statbox wheel."""
    extra_context: tuple[tuple[str, str], ...] = ()
    """(source relative to the checkout, name in the build context) to copy in."""

    @property
    def folder(self) -> Path:
        return IMAGES_DIR / self.name

    @property
    def lock(self) -> Path:
        return self.folder / "requirements.txt"

    def debian_packages(self) -> list[str]:
        file = self.folder / "debian-packages.txt"
        return sorted(line.strip() for line in file.read_text().splitlines() if line.strip())


IMAGES: tuple[ImageSpec, ...] = (
    ImageSpec("singleuser", "statbox/singleuser:latest"),
    ImageSpec(
        "gateway", "statbox/gateway:latest", parent="singleuser", lock_against=("singleuser",)
    ),
    ImageSpec(
        "hub",
        "statbox/hub:latest",
        extra_context=(
            ("hub_config.py", "hub_config.py"),
            (".venv/node/node_modules", "node_modules"),
        ),
    ),
    ImageSpec("postgres", "statbox/postgres:latest", python=False),
)
"""Every image, in build order (an image's parent comes first)."""

BY_NAME = {spec.name: spec for spec in IMAGES}


def image_tag(name: str) -> str:
    """The tag ``statbox images build`` gives image ``name``."""
    return BY_NAME[name].tag


Progress = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


# ------------------------------------------------------------------------------ locking


def lock_images(names: list[str] | None = None, progress: Progress = _print) -> list[Path]:
    """Resolve each image's ``requirements.in`` for the image's Python; write its lock.

    Versions the host's ``requirements/constraints.txt`` pins are kept (what the tests run
    is what the images carry); an image built on another is resolved against that one's lock.
    """
    checkout("locking the images' requirements")
    written = []
    for spec in _selected(names):
        if not spec.python:
            continue
        progress(f"locking {spec.name} for Python {IMAGE_PYTHON_VERSION} ...")
        constraints = [REPO / "requirements" / "constraints.txt"]
        with tempfile.TemporaryDirectory() as tmp:
            for other in spec.lock_against:
                # Pins only: a constraint with hashes would put pip in hash-checking mode.
                plain = Path(tmp) / f"{other}.txt"
                plain.write_text(
                    "\n".join(x.split(" ")[0] for x in _pinned_lines(BY_NAME[other].lock))
                )
                constraints.append(plain)
            pins = resolve(spec.folder / "requirements.in", constraints)
        already = set()
        for other in spec.lock_against:
            already |= {line.split("==")[0] for line in _pinned_lines(BY_NAME[other].lock)}
        pins = [pin for pin in pins if pin["name"] not in already]
        spec.lock.write_text(render_lock(spec, pins))
        progress(f"  {spec.lock.relative_to(REPO)}: {len(pins)} packages")
        written.append(spec.lock)
    return written


def resolve(requirements_in: Path, constraints: list[Path]) -> list[dict[str, str]]:
    """Name, version and wheel hash of everything ``requirements_in`` needs (binary only)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--dry-run",
            "--ignore-installed",
            "--disable-pip-version-check",
            f"--python-version={IMAGE_PYTHON_VERSION}",
            "--only-binary=:all:",
            f"--report={report}",
            "-r",
            str(requirements_in),
        ]
        for constraint in constraints:
            command += ["-c", str(constraint)]
        _run(command, f"resolving {requirements_in.relative_to(REPO)}")
        data = json.loads(report.read_text())
    pins = []
    for item in data["install"]:
        metadata = item["metadata"]
        hashes = item["download_info"].get("archive_info", {}).get("hashes", {})
        if "sha256" not in hashes:
            raise StatboxError(f"{metadata['name']}: the index gave no sha256 for its wheel")
        pins.append(
            {
                "name": _canonical(metadata["name"]),
                "version": metadata["version"],
                "sha256": hashes["sha256"],
            }
        )
    return sorted(pins, key=lambda pin: pin["name"])


def render_lock(spec: ImageSpec, pins: list[dict[str, str]]) -> str:
    lines = [
        f"# Locked requirements of the {spec.name} image, "
        f"for Python {IMAGE_PYTHON_VERSION} (Debian 12).",
        "# Generated by `statbox images lock` from requirements.in: do not edit by hand.",
    ]
    for pin in pins:
        lines.append(f"{pin['name']}=={pin['version']} \\")
        lines.append(f"    --hash=sha256:{pin['sha256']}")
    return "\n".join(lines) + "\n"


def _pinned_lines(lock: Path) -> list[str]:
    return [line for line in lock.read_text().splitlines() if "==" in line]


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


# ------------------------------------------------------------------------------ building


@dataclass
class BuildOptions:
    """What ``statbox images build`` was asked for."""

    names: list[str] | None = None
    base_source: str = "auto"
    """``mmdebstrap`` (offline, from the machine's apt sources), ``registry``, or ``auto``."""
    cache_dir: Path = DEFAULT_CACHE
    debian_image: str = DEBIAN_IMAGE


@dataclass
class BuildResult:
    tags: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    """Image name -> size in bytes, as the engine reports it."""


def build_images(options: BuildOptions, progress: Progress = _print, client: Any = None) -> Any:
    """Build the chosen images (with their parents) in order; returns a :class:`BuildResult`."""
    checkout("building the images")
    client = client or docker_client()
    specs = _with_parents(_selected(options.names))
    source = _base_source(options.base_source)
    cache = options.cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    result = BuildResult()
    total = len(specs)
    statbox_wheel = None
    for index, spec in enumerate(specs, start=1):
        started = time.monotonic()
        progress(f"[{index}/{total}] {spec.name} ({spec.tag})")
        context = cache / "context" / spec.name
        _stage_context(spec, context)
        buildargs: dict[str, str] = {}
        if spec.parent is None:
            buildargs["BASE_IMAGE"] = ensure_base(
                client, spec.debian_packages(), source, cache, options.debian_image, progress
            )
        else:
            buildargs["SINGLEUSER_IMAGE"] = BY_NAME[spec.parent].tag
        if spec.python:
            statbox_wheel = statbox_wheel or build_statbox_wheel(cache, progress)
            wheels = ensure_wheelhouse(spec, cache, progress)
            _link_wheels(spec, wheels, context / "wheels")
            shutil.copy2(statbox_wheel, context / "statbox-wheel" / statbox_wheel.name)
        _docker_build(client, context, spec.tag, buildargs, progress)
        size = int(client.images.get(spec.tag).attrs["Size"])
        result.tags[spec.name] = spec.tag
        result.sizes[spec.name] = size
        progress(f"  {spec.tag}: {size / 1e9:.2f} GB, {time.monotonic() - started:.0f} s")
    return result


def _selected(names: list[str] | None) -> list[ImageSpec]:
    if not names:
        return list(IMAGES)
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        raise BadInput(
            f"unknown image {', '.join(map(repr, unknown))}: choose from {', '.join(BY_NAME)}"
        )
    return [spec for spec in IMAGES if spec.name in names]


def _with_parents(specs: list[ImageSpec]) -> list[ImageSpec]:
    wanted = {spec.name for spec in specs}
    for spec in specs:
        if spec.parent:
            wanted.add(spec.parent)
    return [spec for spec in IMAGES if spec.name in wanted]


def _base_source(choice: str) -> str:
    if choice == "auto":
        return "mmdebstrap" if shutil.which("mmdebstrap") else "registry"
    if choice == "mmdebstrap" and not shutil.which("mmdebstrap"):
        raise EnvironmentProblem(
            "mmdebstrap is not installed: apt-get install mmdebstrap (or use --base registry "
            "on a machine that can pull debian:bookworm-slim)"
        )
    return choice


def base_tag(packages: list[str]) -> str:
    """The tag of the Debian base carrying ``packages`` (same for both ways of making it)."""
    digest = hashlib.sha256(" ".join([DEBIAN_SUITE, *packages]).encode()).hexdigest()[:12]
    return f"statbox/base:{DEBIAN_SUITE}-{digest}"


def ensure_base(
    client: Any,
    packages: list[str],
    source: str,
    cache: Path,
    debian_image: str,
    progress: Progress,
) -> str:
    """The tag of a base image with ``packages``, made now if the engine lacks it."""
    import docker

    tag = base_tag(packages)
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(tag)
        progress(f"  base {tag}: present")
        return tag
    if source == "registry":
        progress(f"  base {tag}: building from {debian_image} with {', '.join(packages)}")
        _docker_build(
            client,
            IMAGES_DIR / "base",
            tag,
            {"DEBIAN_IMAGE": debian_image, "PACKAGES": " ".join(packages)},
            progress,
        )
        return tag
    tarball = cache / "bases" / f"{tag.split(':')[1]}.tar"
    if not tarball.exists():
        progress(f"  base {tag}: mmdebstrap {DEBIAN_SUITE} with {', '.join(packages)} ...")
        tarball.parent.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial.tar")
        command = ["mmdebstrap", "--variant=minbase", "--quiet", f"--include={','.join(packages)}"]
        command += [f"--dpkgopt={option}" for option in MMDEBSTRAP_TRIM]
        command += [DEBIAN_SUITE, str(partial)]
        _run(command, "mmdebstrap")
        partial.rename(tarball)
    else:
        progress(f"  base {tag}: importing the cached {tarball.name}")
    repository, version = tag.split(":")
    client.api.import_image_from_file(str(tarball), repository=repository, tag=version)
    return tag


def build_statbox_wheel(cache: Path, progress: Progress) -> Path:
    """A wheel of this checkout's statbox package (reproducible: fixed timestamps)."""
    out = cache / "statbox-wheel"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    progress("  statbox wheel from this checkout")
    with tempfile.TemporaryDirectory() as build_dir:
        # Built from a copy: setuptools writes build/ and egg-info into the source tree.
        source = Path(build_dir) / "src"
        shutil.copytree(
            REPO,
            source,
            ignore=shutil.ignore_patterns(
                ".git",
                ".venv",
                ".statbox",
                "node_modules",
                "build",
                "dist",
                "*.egg-info",
                "__pycache__",
                "data",
                "tests",
                "bench",
                ".*_cache",
            ),
        )
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
                "-w",
                str(out),
                str(source),
            ],
            "building the statbox wheel",
            env={**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH},
        )
    (wheel,) = out.glob("statbox-*.whl")
    return wheel


def ensure_wheelhouse(spec: ImageSpec, cache: Path, progress: Progress) -> list[Path]:
    """The wheels ``spec``'s lock names, downloading the missing ones (hashes checked)."""
    house = cache / "wheelhouse"
    house.mkdir(parents=True, exist_ok=True)
    if not spec.lock.exists():
        raise BadInput(f"{spec.lock}: missing; run `statbox images lock` to write it")
    before = set(house.iterdir())
    progress(f"  wheels for {spec.lock.relative_to(REPO)} ({len(_pinned_lines(spec.lock))})")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            f"--python-version={IMAGE_PYTHON_VERSION}",
            "--require-hashes",
            "-d",
            str(house),
            "-r",
            str(spec.lock),
        ],
        f"downloading the wheels of {spec.name}",
    )
    fetched = len(set(house.iterdir()) - before)
    if fetched:
        progress(f"  downloaded {fetched} wheels into {house}")
    return _wheels_of(spec.lock, house)


def _wheels_of(lock: Path, house: Path) -> list[Path]:
    """The wheel files in ``house`` that ``lock`` pins (one per pin)."""
    wanted = {}
    for line in _pinned_lines(lock):
        name, version = line.split(" ")[0].split("==")
        wanted[(name.replace("-", "_"), version)] = name
    found = []
    for wheel in house.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        if (_canonical(name).replace("-", "_"), version) in wanted:
            found.append(wheel)
    if len(found) < len(wanted):
        raise StatboxError(f"the wheelhouse {house} lacks wheels of {lock}: build again")
    return found


def _stage_context(spec: ImageSpec, context: Path) -> None:
    """A build context holding the image's folder, its lock's wheels and extra files."""
    shutil.rmtree(context, ignore_errors=True)
    context.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(spec.folder, context)
    (context / "wheels").mkdir(exist_ok=True)
    (context / "statbox-wheel").mkdir(exist_ok=True)
    for source, name in spec.extra_context:
        path = REPO / source
        if not path.exists():
            raise EnvironmentProblem(f"{path} is missing: run `make install` first")
        if path.is_dir():
            shutil.copytree(path, context / name, symlinks=True)
        else:
            shutil.copy2(path, context / name)


def _link_wheels(spec: ImageSpec, wheels: list[Path], into: Path) -> None:
    for wheel in wheels:
        target = into / wheel.name
        try:
            os.link(wheel, target)
        except OSError:
            shutil.copy2(wheel, target)


def _docker_build(
    client: Any, context: Path, tag: str, buildargs: dict[str, str], progress: Progress
) -> None:
    """``docker build`` (legacy builder, failed containers removed), steps shown as progress."""
    error = None
    last: list[str] = []
    for chunk in client.api.build(
        path=str(context),
        tag=tag,
        buildargs=buildargs,
        rm=True,
        forcerm=True,
        decode=True,
        pull=False,
    ):
        if "error" in chunk:
            error = chunk["error"]
        text = chunk.get("stream", "")
        for line in text.splitlines():
            if line.startswith("Step "):
                progress(f"    {line[:110]}")
            elif line.strip():
                last = [*last[-14:], line]
    if error:
        raise StatboxError(f"building {tag} failed: {error.strip()}", *("  " + x for x in last))


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env)
    except FileNotFoundError:
        raise EnvironmentProblem(f"{command[0]} is not installed ({what})") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-12:]
        raise StatboxError(f"{what} failed (exit {done.returncode}):", *("  " + x for x in tail))


# ------------------------------------------------------------------------------ command
