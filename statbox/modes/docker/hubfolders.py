"""The state folders the hub's container writes (compose.yaml mounts each at its host path).

The hub runs as ``jupyterhub`` (uid 990) without capabilities, so each folder it writes must
belong to that uid on the host: its own database and cookie secret (``hub``), and the
classroom service it starts: its records (``classroom``), the results store, trusted keys and
revocations (``certify``), the signing key and cohort secrets (``secrets/certify``, never the
rest of ``secrets/``), the ledgers of what publishing wrote (``courses``) and the scratch of
graded kernels (``grading``: the docker backend's containers bind their job folders by path,
which must mean the same on the host as in the hub's container), and the indicators service's
runs, vintages, stages and schedule journals (``indicators``).
"""

from __future__ import annotations

import os
from pathlib import Path

from statbox.contract import DOCKER_GRADING_SCRATCH
from statbox.errors import EnvironmentProblem

HUB_UID = 990
"""The hub image's account (``jupyterhub``)."""

HUB_FOLDERS = (
    "hub",
    "classroom",
    "certify",
    "secrets/certify",
    "courses",
    DOCKER_GRADING_SCRATCH,
    "indicators",
)
"""Under the state folder, in compose.yaml's order."""


def give_to_hub(state_dir: Path) -> list[Path]:
    """Make each of :data:`HUB_FOLDERS` (0700) and give it, and all in it, to the hub's uid.

    Files the operator's commands wrote there as root (``statbox classroom``, ``statbox
    certify``) become the hub's, so the service can read and change them. Links are changed
    themselves, never followed (``lchown``; ``os.walk`` does not enter linked folders), so
    a link the hub planted cannot make this root process give away a file elsewhere.
    """
    folders = [state_dir / name for name in HUB_FOLDERS]
    (state_dir / "secrets").mkdir(mode=0o700, exist_ok=True)
    for folder in folders:
        folder.mkdir(mode=0o700, exist_ok=True)
        if folder.is_symlink() or not folder.is_dir():
            raise EnvironmentProblem(f"{folder} must be a folder (not a link): move it away")
        folder.chmod(0o700)
        try:
            _chown_tree(folder)
        except PermissionError:
            raise EnvironmentProblem(
                f"{folder} must belong to uid {HUB_UID} (the hub container's account): run "
                f"`chown -R {HUB_UID}:{HUB_UID} {folder}` as root, or start statbox as root"
            ) from None
    return folders


def _chown_tree(folder: Path) -> None:
    if folder.stat().st_uid == HUB_UID and os.geteuid() != 0:
        return  # given before, by root; this user could not change what is in it anyway
    os.chown(folder, HUB_UID, HUB_UID, follow_symlinks=False)
    for root, directories, files in os.walk(folder):
        for name in (*directories, *files):
            path = os.path.join(root, name)
            if os.lstat(path).st_uid != HUB_UID:
                os.chown(path, HUB_UID, HUB_UID, follow_symlinks=False)
