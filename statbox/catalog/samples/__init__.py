"""Generate the sample data every catalog entry reads: ``statbox catalog samples``.

Invariant: the same (seed, scale) writes byte-identical files, laid out as
``<out>/<domain>/<dataset>/...`` (one directory per catalog entry). Generation happens in a
staging directory beside ``out``; each domain's directories replace the old ones only once
the whole run has succeeded, so a failed or interrupted run leaves the old samples intact.
``<out>/samples.json`` records the seed, scale and every file's size and SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from statbox.errors import BadInput

if TYPE_CHECKING:
    from statbox.catalog.samples.common import Scale

DEFAULT_SEED = 20240304
SCALE_NAMES = ("small", "medium")
"""The sizes in :data:`.common.SCALES` (named here so the CLI need not import numpy)."""
MANIFEST = "samples.json"


def _generators() -> list[tuple[str, Callable[[Path, Scale, int], None]]]:
    from statbox.catalog.samples import (
        ais,
        earth_observation,
        mobile_phone,
        privacy,
        rural_access,
        scanner,
        sdg,
    )

    return [
        ("sdg", sdg.generate),
        ("privacy", privacy.generate),
        ("scanner", scanner.generate),
        ("rural_access", rural_access.generate),
        ("earth_observation", earth_observation.generate),
        ("ais", ais.generate),
        ("mobile_phone", mobile_phone.generate),
    ]


def file_digests(root: Path) -> dict[str, dict[str, Any]]:
    """Every file under ``root`` (but the manifest): relative path -> size and SHA-256."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        out[path.relative_to(root).as_posix()] = {"bytes": path.stat().st_size, "sha256": digest}
    return out


def generate(
    out: Path, scale: str = "small", seed: int = DEFAULT_SEED, progress: bool = True
) -> dict:
    """Write the samples under ``out``; return the manifest."""
    if scale not in SCALE_NAMES:
        raise BadInput(f"--scale {scale!r}: choose one of {', '.join(SCALE_NAMES)}")
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out} exists and is not a directory: choose another --out")
    from tqdm import tqdm

    from statbox.catalog.samples.common import SCALES

    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".samples-", dir=out))
    try:
        generators = _generators()
        bar = tqdm(generators, desc="samples", unit="domain", disable=not progress, leave=False)
        for domain, make in bar:
            bar.set_postfix_str(domain)
            make(staging, SCALES[scale], seed)
        files = file_digests(staging)
        manifest = {"seed": seed, "scale": scale, "files": files}
        for domain, _ in generators:
            target = out / domain
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging / domain, target)
        for path in (out / d for d, _ in generators):
            _readable(path)
        (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _readable(root: Path) -> None:
    """Samples are readable by every account (local mode runs servers as another user)."""
    for path in (root, *root.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)


def is_current(out: Path, scale: str, seed: int = DEFAULT_SEED) -> bool:
    """Whether ``out`` holds a complete sample of this scale and seed (by its manifest)."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("seed") != seed or manifest.get("scale") != scale:
        return False
    return all((out / name).is_file() for name in manifest.get("files", {}))
