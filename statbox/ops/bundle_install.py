"""Install a Statbox offline bundle on a machine with no network: verify, then lay it down.

Standard library only, on purpose: a new machine has Python but not yet Statbox, so the
bundle carries this file as its first member and the operator runs::

    tar -xOf statbox-bundle.tar install.py | python3 - statbox-bundle.tar --prefix /opt/statbox

(`statbox bundle install FILE` runs the same code where Statbox is already installed.)

Layout under the prefix::

    releases/<version>-<digest>/   one per bundle: venv/, catalogs/, data/, curriculum/, chart/
    current -> releases/...        switched atomically when a release is complete
    statbox.yaml                   written on first install, never overwritten
    state/                         the hub's database, results, secrets, homes: never touched

Invariants: every member of the bundle is checked against the manifest's SHA-256 and size
before anything on the machine changes, and a bundle that fails any check is refused whole.
Installing a newer bundle adds a release and switches ``current``; users, homes, results and
certificates live in ``state/`` and the settings in ``statbox.yaml``, which it keeps. The
previous release stays until the next install, so a switch can be undone by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

FORMAT = 1
INSTALLER = "install.py"
MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest.sha256"
"""The SHA-256 of manifest.json: the manifest vouches for every other member, this for it."""

# Exit codes, as statbox.errors.ExitCode (this file cannot import Statbox).
OK, FAILED, BAD_INPUT, ENVIRONMENT = 0, 1, 2, 3


class InstallError(Exception):
    def __init__(self, code: int, *messages: str):
        self.code = code
        self.messages = list(messages)
        super().__init__("\n".join(messages))


def _digest(stream: IO[bytes]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for block in iter(lambda: stream.read(1 << 20), b""):
        digest.update(block)
        size += len(block)
    return digest.hexdigest(), size


def _safe_name(name: str) -> bool:
    normal = os.path.normpath(name)
    return not (os.path.isabs(normal) or normal.split(os.sep)[0] == "..")


def _member_bytes(tar: tarfile.TarFile, name: str) -> bytes:
    stream = tar.extractfile(tar.getmember(name))
    if stream is None:
        raise KeyError(name)
    return stream.read()


def verify_bundle(bundle: Path, progress: Callable[[str], None] = lambda _: None) -> dict:
    """The bundle's manifest once every member matches it; raise InstallError(BAD_INPUT)."""
    if not bundle.is_file():
        raise InstallError(BAD_INPUT, f"{bundle}: no such file")
    problems: list[str] = []
    seen: set[str] = set()
    try:
        with tarfile.open(bundle, "r:") as tar:
            manifest_bytes = _member_bytes(tar, MANIFEST)
            recorded = _member_bytes(tar, MANIFEST_DIGEST).decode().strip()
            if hashlib.sha256(manifest_bytes).hexdigest() != recorded:
                raise InstallError(
                    BAD_INPUT, f"{bundle}: {MANIFEST} differs from its checksum (damaged)",
                    "nothing was changed",
                )  # fmt: skip
            manifest = json.loads(manifest_bytes)
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise InstallError(BAD_INPUT, f"{bundle}: not a Statbox bundle of format {FORMAT}")
            files: dict[str, Any] = manifest["files"]
            for member in tar:
                name = member.name
                if name in (MANIFEST, MANIFEST_DIGEST) or member.isdir():
                    continue
                if not member.isfile() or not _safe_name(name):
                    problems.append(f"{bundle}: member {name!r} is not a plain file inside")
                    continue
                expected = files.get(name)
                if expected is None:
                    problems.append(f"{bundle}: member {name!r} is not in the manifest")
                    continue
                progress(name)
                content = tar.extractfile(member)
                assert content is not None
                digest, size = _digest(content)
                if (digest, size) != (expected["sha256"], expected["size"]):
                    problems.append(f"{bundle}: {name} differs from the manifest (damaged)")
                seen.add(name)
    except InstallError:
        raise
    except KeyError:
        raise InstallError(
            BAD_INPUT, f"{bundle}: damaged or not a Statbox bundle (no manifest)"
        ) from None
    except (tarfile.TarError, EOFError, OSError, ValueError, TypeError) as exc:
        raise InstallError(BAD_INPUT, f"{bundle}: damaged or truncated ({exc})") from None
    missing = sorted(set(files) - seen)
    problems.extend(f"{bundle}: {name} is missing (truncated?)" for name in missing)
    if problems:
        raise InstallError(BAD_INPUT, *problems, "nothing was changed")
    return manifest


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-10:])
        raise InstallError(FAILED, f"{what} failed ({' '.join(cmd[:3])} ...):", tail)


def _extract(bundle: Path, release: Path, manifest: dict) -> None:
    # Images go from the bundle straight into the engine (_load_images), never to disk.
    images = {image["file"] for image in manifest.get("images", [])}
    with tarfile.open(bundle, "r:") as tar:
        for member in tar:
            if member.name in manifest["files"] and member.name not in (INSTALLER, *images):
                target = release / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                with target.open("wb") as out:
                    shutil.copyfileobj(source, out)
                target.chmod(member.mode & 0o755 | 0o644)


def _docker() -> str:
    docker = shutil.which("docker")
    if docker is None:
        raise InstallError(
            ENVIRONMENT,
            "docker is not installed: install a Docker engine (apt-get install docker.io)",
        )
    probe = subprocess.run([docker, "info"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise InstallError(
            ENVIRONMENT, "the Docker engine does not answer: start it, or set DOCKER_HOST"
        )
    return docker


SETTINGS_TEMPLATE = """\
# Written by the Statbox bundle installer on first install; yours to edit. Later bundles
# never overwrite it. `statbox config check {prefix}/statbox.yaml` validates it.
mode: {mode}
paths:
  catalog: {prefix}/current/catalogs/statbox.yaml
  curriculum: {prefix}/current/curriculum
  data_root: {prefix}/current/data
  state_dir: {prefix}/state
"""


COMPLETE = ".complete"
"""Written last into a release: a release without it is half-made and is made again."""


def _lay_down(
    bundle: Path,
    release: Path,
    manifest: dict,
    python: str,
    docker: str | None,
    progress: Callable[[str], None],
) -> None:
    progress("extracting")
    _extract(bundle, release, manifest)
    progress("installing the statbox command")
    venv = release / "venv"
    _run([python, "-m", "venv", str(venv)], "making the environment")
    # statbox with the extras the wheelhouse carries (the notebook stack), as the manifest names
    extras = manifest.get("extras", [])
    name = f"statbox[{','.join(extras)}]" if extras else "statbox"
    requirement = f"{name}=={manifest['statbox_version']}"
    _run(
        [
            str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index",
            "--find-links", str(release / "wheelhouse"), requirement,
        ],
        "installing statbox from the bundle's wheelhouse",
    )  # fmt: skip
    shutil.rmtree(release / "wheelhouse")
    images = manifest.get("images", [])
    if docker is not None and images:
        _load_images(bundle, docker, images, progress)


def _load_images(bundle: Path, docker: str, images: list[dict], progress: Callable) -> None:
    """``docker load`` each images file, streamed from the bundle; then check the ids."""
    files = list(dict.fromkeys(image["file"] for image in images))
    with tarfile.open(bundle, "r:") as tar:
        for file in files:
            names = [image["name"] for image in images if image["file"] == file]
            progress(f"loading the images {', '.join(names)}")
            source = tar.extractfile(tar.getmember(file))
            assert source is not None
            load = subprocess.Popen(
                [docker, "load", "--quiet"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            assert load.stdin is not None and load.stderr is not None
            try:
                shutil.copyfileobj(source, load.stdin, 1 << 20)
            except BrokenPipeError:
                pass  # docker load stopped reading: its error is reported below
            finally:
                load.stdin.close()
            err = load.stderr.read().decode(errors="replace").strip()
            if load.wait() != 0:
                raise InstallError(FAILED, f"docker load of {file} failed:", err)
    _check_loaded(docker, images)


def _check_loaded(docker: str, images: list[dict]) -> None:
    """Each image is in the engine under its name with the id it had where it was saved."""
    wrong = []
    for image in images:
        if "id" not in image:
            continue  # a bundle made before ids were recorded
        found = subprocess.run(
            [docker, "image", "inspect", "--format", "{{.Id}}", image["name"]],
            capture_output=True,
            text=True,
        )
        if found.returncode != 0 or found.stdout.strip() != image["id"]:
            wrong.append(f"{image['name']}: {found.stdout.strip() or 'missing'}")
    if wrong:
        raise InstallError(
            FAILED, "the engine does not hold the images the bundle carries, with their ids:",
            *wrong,
        )  # fmt: skip


def install_bundle(
    bundle: Path,
    prefix: Path,
    python: str = sys.executable,
    load_images: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> Path:
    """Verify ``bundle`` and install it under ``prefix``; return the release directory."""
    manifest = verify_bundle(bundle, progress)
    images = manifest.get("images", [])
    docker = _docker() if load_images and images else None
    release_name = f"{manifest['statbox_version']}-{manifest['digest'][:12]}"
    releases = prefix / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    release = releases / release_name
    complete = release / COMPLETE
    if not complete.exists():
        # Built in place: a virtual environment cannot move once made. Until it is complete
        # and `current` points at it, the hub keeps running the previous release.
        shutil.rmtree(release, ignore_errors=True)
        release.mkdir()
        try:
            _lay_down(bundle, release, manifest, python, docker, progress)
            complete.write_text(manifest["digest"] + "\n")
        except BaseException:
            shutil.rmtree(release, ignore_errors=True)
            raise
    _switch_current(prefix, release)
    (prefix / "state").mkdir(exist_ok=True)
    settings = prefix / "statbox.yaml"
    if not settings.exists():
        settings.write_text(SETTINGS_TEMPLATE.format(prefix=prefix, mode=manifest["mode"]))
    _prune(releases, keep={release.name, *_previous(prefix)})
    return release


def _switch_current(prefix: Path, release: Path) -> None:
    current = prefix / "current"
    previous = current.resolve() if current.is_symlink() else None
    link = prefix / ".current.new"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(release.relative_to(prefix))
    os.replace(link, current)
    if previous is not None and previous != release:
        (prefix / ".previous").write_text(previous.name + "\n")


def _previous(prefix: Path) -> set[str]:
    marker = prefix / ".previous"
    return {marker.read_text().strip()} if marker.exists() else set()


def _prune(releases: Path, keep: set[str]) -> None:
    for path in releases.iterdir():
        if path.name not in keep and not path.name.startswith("."):
            shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="install.py", description="Install a Statbox offline bundle (no network needed)."
    )
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--prefix", type=Path, default=Path("/opt/statbox"))
    parser.add_argument("--no-images", action="store_true", help="do not load the images")
    args = parser.parse_args(argv)
    try:
        release = install_bundle(
            args.bundle.resolve(),
            args.prefix.resolve(),
            load_images=not args.no_images,
            progress=lambda step: print(f"  {step}", file=sys.stderr, flush=True),
        )
    except InstallError as exc:
        for message in exc.messages:
            print(f"statbox bundle: {message}", file=sys.stderr)
        return exc.code
    prefix = args.prefix.resolve()
    print(f"Installed {release.name} in {prefix}.")
    print(f"  Start: {prefix}/current/venv/bin/statbox up --config {prefix}/statbox.yaml")
    return OK


if __name__ == "__main__":
    sys.exit(main())
