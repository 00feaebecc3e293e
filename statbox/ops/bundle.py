"""``statbox bundle create``: one file holding everything a hub needs where there is no network.

A bundle is an uncompressed tar (its large parts, wheels and images, are compressed already):

    install.py        the stdlib-only installer (statbox/ops/bundle_install.py), first, so that
                      ``tar -xOf BUNDLE install.py | python3 - BUNDLE`` works on a bare machine
    manifest.json     versions, the parts, and the SHA-256 and size of every other member
    README.txt        for the operator: what is inside and how to install it
    wheelhouse/       the statbox command and every package it and its notebook extra
                      (user servers, kernels, the courses) need, as wheels
    catalogs/ data/   the catalog and its sample data
    curriculum/       the courses
    chart/            the packaged Helm chart
    images/           statbox-images.tar.gz: one ``docker save`` (through the engine's API)
                      of the docker stack's images, gzip; index.json: their ids and sizes

Parts are a table (:data:`PARTS`), each built into a cache keyed by a digest of its inputs,
so a second run with nothing changed reuses them and only writes the tar again. The images
are carried by default for a docker-mode bundle (``--with-images``/``--without-images``): the
hub, gateway and PostgreSQL images and every role's single-user image, as the settings name
them; ``statbox bundle install`` loads them into the engine ``DOCKER_HOST`` names and checks
their ids, so ``statbox up --mode docker`` then starts with nothing pulled or built.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from statbox.errors import EnvironmentProblem, StatboxError
from statbox.modes.docker.engine import docker_client
from statbox.modes.docker.stack import images_needed
from statbox.ops import bundle_install
from statbox.resources import CHECKOUT, checkout

REPO = CHECKOUT


@dataclass(frozen=True)
class BundleOptions:
    out: Path
    cache: Path
    mode: str = "docker"
    images: tuple[str, ...] = ()
    """Docker images to carry (``docker save``); empty: none."""
    python: str = sys.executable


@dataclass
class Part:
    """One part of a bundle: the inputs that decide it and how to build it into a folder."""

    name: str
    inputs: Callable[[BundleOptions], Iterable[Path | str]]
    build: Callable[[BundleOptions, Path], None]
    meta: dict[str, Any] = field(default_factory=dict)


def _files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        else:
            for path in sorted(root.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    yield path


def _digest_inputs(inputs: Iterable[Path | str]) -> str:
    digest = hashlib.sha256()
    for item in inputs:
        if isinstance(item, Path):
            digest.update(
                str(item.relative_to(REPO) if item.is_relative_to(REPO) else item).encode()
            )
            digest.update(item.read_bytes())
        else:
            digest.update(item.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-10:]
        raise StatboxError(f"{what} failed: {' '.join(cmd[:4])} ...", *tail)


# ------------------------------------------------------------------------------------ parts


EXTRAS = ("notebook",)
"""Extras of statbox a bundle carries and installs: user servers, kernels, Dask clusters and
the courses run from the installed environment (local mode; grading in every mode)."""


def _dependencies() -> list[str]:
    """pyproject's ranges for statbox and its :data:`EXTRAS` (constraints.txt pins them)."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return [*project["dependencies"], *(req for extra in EXTRAS for req in extras[extra])]


def _packages_inputs(options: BundleOptions) -> Iterable[Path | str]:
    yield REPO / "requirements" / "constraints.txt"
    yield from _dependencies()
    yield f"python {sys.version_info[:2]}"


def _build_packages(options: BundleOptions, out: Path) -> None:
    """Wheels of everything the statbox command needs (changes only with the pins)."""
    wheels = out / "wheelhouse"
    wheels.mkdir()
    _run(
        [
            options.python, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels),
            "-c", str(REPO / "requirements" / "constraints.txt"), *_dependencies(),
        ],
        "building the wheelhouse",
    )  # fmt: skip


def _statbox_inputs(options: BundleOptions) -> Iterable[Path | str]:
    yield from (REPO / "pyproject.toml", REPO / "README.md")
    # The wheel carries copies of what statbox/resources links to (catalogs/, curriculum/):
    # rglob does not follow the links, so their folders are named here.
    yield from _files_under(REPO / "statbox", REPO / "catalogs", REPO / "curriculum")


WHEEL_SOURCES = ("pyproject.toml", "README.md", "statbox")
"""What building the statbox wheel reads from the checkout."""


def _build_statbox_wheel(options: BundleOptions, out: Path) -> None:
    """The statbox wheel alone (changes with every change to the code).

    Built from a copy holding only :data:`WHEEL_SOURCES` (the links under statbox/resources
    followed): setuptools writes build/ and egg-info into the tree it builds, and a build/
    left by an older layout would put stale modules in the wheel."""
    import tempfile

    wheels = out / "wheelhouse"
    wheels.mkdir()
    with tempfile.TemporaryDirectory(prefix="statbox-wheel-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        for name in WHEEL_SOURCES:
            if (REPO / name).is_dir():
                _copy_tree(REPO / name, source / name)
            else:
                shutil.copy2(REPO / name, source / name)
        _run(
            [
                options.python, "-m", "pip", "wheel", "--quiet", "--no-deps",
                "--wheel-dir", str(wheels), str(source),
            ],
            "building the statbox wheel",
        )  # fmt: skip


def _copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", ".*"))


def _build_catalog(options: BundleOptions, out: Path) -> None:
    _copy_tree(REPO / "catalogs", out / "catalogs")
    (out / "data").mkdir()
    _run(
        [options.python, "-m", "statbox.cli", "catalog", "samples", "--out", str(out / "data")],
        "generating the sample data",
    )


def _build_curriculum(options: BundleOptions, out: Path) -> None:
    _copy_tree(REPO / "curriculum", out / "curriculum")


def _build_chart(options: BundleOptions, out: Path) -> None:
    chart = REPO / "helm" / "statbox"
    (out / "chart").mkdir()
    with tarfile.open(out / "chart" / "statbox-chart.tgz", "w:gz") as tar:
        tar.add(chart, arcname="statbox", filter=lambda m: None if "__pycache__" in m.name else m)


def _proxy_dir() -> Path:
    """The configurable-http-proxy that `make` installs beside the interpreter (pure
    JavaScript: it runs on the target's Node.js)."""
    return Path(sys.prefix) / "node" / "node_modules"


def _build_proxy(options: BundleOptions, out: Path) -> None:
    # Laid down inside the release's venv, where statbox.modes.local.stack.find_proxy looks.
    # npm's .bin/ holds symbolic links, which bundles do not carry: find_proxy knows the real
    # path.
    shutil.copytree(
        _proxy_dir(), out / "venv" / "node" / "node_modules", ignore=shutil.ignore_patterns(".bin")
    )


IMAGES_FILE = "images/statbox-images.tar.gz"
"""Every image in one ``docker save`` stream (layers the images share are stored once),
gzip-compressed: ``docker load`` reads it as it is."""
IMAGES_INDEX = "images/index.json"
IMAGES_GZIP_LEVEL = 1
"""Fast compression: the level-1 stream is within a few percent of level 6 on these layers
(wheels and shared objects) at a fraction of the time on two cores."""


def _image_ids(options: BundleOptions) -> Iterable[str]:
    """``name=id`` of each image: the images part is rebuilt exactly when one changes."""
    for image in options.images:
        yield f"{image}={_engine_image(image).id}"


def _engine_image(name: str) -> Any:
    import docker

    try:
        return docker_client().images.get(name)
    except docker.errors.ImageNotFound:
        raise EnvironmentProblem(
            f"image {name} is not in the Docker engine: build it first (statbox images build)"
        ) from None


class _Tee:
    """A readable stream that also writes every byte it hands out to ``out``."""

    def __init__(self, source: Any, out: Any):
        self.source, self.out = source, out

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size if size is not None and size >= 0 else 1 << 20)
        if size is None or size < 0:
            while chunk := self.source.read(1 << 20):
                data += chunk
        self.out.write(data)
        return bytes(data)


def _build_images(options: BundleOptions, out: Path) -> None:
    """``docker save`` of every image through the engine's API (``DOCKER_HOST``), one gzip
    stream, plus an index: each image's id, its size in the engine, and the bytes its layers
    take in the bundle."""
    import gzip
    import tarfile as tarmodule

    client = docker_client()
    engine = {name: _engine_image(name) for name in options.images}
    target = out / IMAGES_FILE
    target.parent.mkdir()
    api = client.api
    response = api.get(
        f"{api.base_url}/v{api.api_version}/images/get",
        params={"names": list(options.images)},
        stream=True,
    )
    if response.status_code != 200:
        raise StatboxError(f"docker save failed: {response.status_code} {response.text[:300]}")
    response.raw.decode_content = True
    # Each member's bytes in the compressed file: where the output stood when the stream
    # reached it (zlib holds back well under a megabyte, small beside a layer).
    starts: list[tuple[str, int]] = []
    saved_manifest: list[dict[str, Any]] = []
    with target.open("wb") as raw:
        with gzip.GzipFile(
            fileobj=raw, mode="wb", compresslevel=IMAGES_GZIP_LEVEL, mtime=0
        ) as zipped:
            tee = _Tee(response.raw, zipped)
            with tarmodule.open(fileobj=tee, mode="r|") as stream:  # type: ignore[call-overload]
                for member in stream:
                    starts.append((member.name, raw.tell()))
                    if member.name == "manifest.json":
                        data = stream.extractfile(member)
                        saved_manifest = json.loads(data.read()) if data else []
            while tee.read(1 << 20):
                pass
        ends = [start for _, start in starts[1:]] + [raw.tell()]
    member_bytes = {name: end - start for (name, start), end in zip(starts, ends, strict=True)}
    layers = {}
    for entry in saved_manifest:
        for tag in entry.get("RepoTags") or []:
            layers[tag] = entry.get("Layers", [])
    index = {
        "file": IMAGES_FILE,
        "images": [
            {
                "name": name,
                "id": image.id,
                "size": int(image.attrs["Size"]),
                "bundle_bytes": sum(member_bytes.get(layer, 0) for layer in layers.get(name, [])),
            }
            for name, image in engine.items()
        ],
        "bytes": target.stat().st_size,
    }
    (out / IMAGES_INDEX).write_text(json.dumps(index, indent=1) + "\n")


PARTS: tuple[Part, ...] = (
    Part("packages", _packages_inputs, _build_packages),
    Part("statbox", _statbox_inputs, _build_statbox_wheel),
    Part(
        "catalog",
        lambda o: [*_files_under(REPO / "catalogs"), *_files_under(REPO / "statbox" / "catalog")],
        _build_catalog,
    ),
    Part("curriculum", lambda o: _files_under(REPO / "curriculum"), _build_curriculum),
    Part("chart", lambda o: _files_under(REPO / "helm" / "statbox"), _build_chart),
    Part("proxy", lambda o: [REPO / "package-lock.json"], _build_proxy),
    Part("images", _image_ids, _build_images),
)
"""What a bundle holds, in order. A part whose inputs are empty is left out."""


# ------------------------------------------------------------------------------------ create


@dataclass(frozen=True)
class BundleSummary:
    path: Path
    size: int
    reused: list[str]
    built: list[str]
    images: list[dict[str, Any]] = field(default_factory=list)
    """Each image carried: name, id, size in the engine, bytes its layers take in the bundle."""


def _part_dir(
    options: BundleOptions, part: Part, progress: Callable[[str], None]
) -> tuple[Path, bool]:
    """The cached folder of ``part`` (built now if its inputs changed); and whether reused."""
    key = _digest_inputs(part.inputs(options))
    cached = options.cache / part.name / key[:16]
    if (cached / ".complete").exists():
        return cached, True
    progress(f"building {part.name}")
    staging = cached.with_name(cached.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    part.build(options, staging)
    (staging / ".complete").write_text(key + "\n")
    shutil.rmtree(cached, ignore_errors=True)
    staging.rename(cached)
    for old in cached.parent.iterdir():  # one cached build per part is enough
        if old != cached:
            shutil.rmtree(old, ignore_errors=True)
    return cached, False


def _members(folder: Path) -> Iterator[tuple[str, Path]]:
    for path in _files_under(folder):
        if path.name != ".complete":
            yield str(path.relative_to(folder)), path


README = """\
Statbox offline bundle {version} ({created})

Everything a hub needs with no network: the statbox command and its packages (wheelhouse/),
{images}the catalog and its sample data, the curriculum, and the Helm chart.

Install on a machine with Python >= 3.11{docker}:

    tar -xOf {name} install.py | python3 - {name} --prefix /opt/statbox

The installer checks every file against manifest.json first and changes nothing if any
differs. Installing a newer bundle over an older one keeps users, homes, results and
certificates (they live in /opt/statbox/state) and your /opt/statbox/statbox.yaml.
Then start the hub:

    /opt/statbox/current/venv/bin/statbox up --config /opt/statbox/statbox.yaml
"""


def create_bundle(
    options: BundleOptions, progress: Callable[[str], None] = lambda _: None
) -> BundleSummary:
    """Build (or reuse) every part and write the bundle to ``options.out``."""
    checkout("creating a bundle")
    folders: list[Path] = []
    reused: list[str] = []
    built: list[str] = []
    images: list[dict[str, Any]] = []
    for part in PARTS:
        if part.name == "images" and not options.images:
            continue
        folder, was_cached = _part_dir(options, part, progress)
        folders.append(folder)
        (reused if was_cached else built).append(part.name)
        if part.name == "images":
            index = json.loads((folder / IMAGES_INDEX).read_text())
            images = [{**image, "file": index["file"]} for image in index["images"]]
    members = [member for folder in folders for member in _members(folder)]
    files = {
        name: {"sha256": bundle_install._digest(path.open("rb"))[0], "size": path.stat().st_size}
        for name, path in members
    }
    installer = Path(bundle_install.__file__)
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    readme = README.format(
        version=version("statbox"),
        created=created,
        name=options.out.name,
        images="the Docker images (images/), " if options.images else "",
        docker=" and a Docker engine" if options.images else "",
    ).encode()
    extra = {bundle_install.INSTALLER: installer.read_bytes(), "README.txt": readme}
    for name, data in extra.items():
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    manifest = {
        "format": bundle_install.FORMAT,
        "statbox_version": version("statbox"),
        "extras": list(EXTRAS),
        "created": created,
        "mode": options.mode,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "digest": digest,
        "parts": reused + built,
        "images": images,
        "files": files,
    }
    progress("writing the bundle")
    partial = options.out.with_name(options.out.name + ".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, bundle_install.INSTALLER, extra[bundle_install.INSTALLER], 0o755)
        manifest_bytes = json.dumps(manifest, indent=1).encode()
        _add_bytes(tar, bundle_install.MANIFEST, manifest_bytes)
        digest_line = hashlib.sha256(manifest_bytes).hexdigest() + "\n"
        _add_bytes(tar, bundle_install.MANIFEST_DIGEST, digest_line.encode())
        _add_bytes(tar, "README.txt", readme)
        for name, path in members:
            tar.add(path, arcname=name, recursive=False)
    partial.rename(options.out)
    return BundleSummary(options.out, options.out.stat().st_size, reused, built, images)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    info.mtime = int(dt.datetime.now().timestamp())
    tar.addfile(info, io.BytesIO(data))


# ------------------------------------------------------------------------------ command line


def stack_images(settings: Any) -> list[str]:
    """Every image ``statbox up --mode docker`` needs with these settings."""

    return images_needed(settings)
