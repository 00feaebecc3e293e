"""Gathering submissions: each trainee's copy of the exercise, into ``OUT/<trainee>.ipynb``.

Local mode (:class:`LocalHomes`): the copy lives at
``<state>/homes/<trainee>/courses/<course>/<exercise notebook>``. Homes belong to trainees,
and collecting runs as the operator (often root), so nothing there is trusted: no symbolic
link is followed anywhere on the way (a link to another trainee's notebook or to a system
file is skipped and reported), only regular files of a sane size are copied, and only homes
named like a username count.

Docker mode (:class:`VolumeHomes`): the copy lives in the trainee's home volume
(``<project>-home-<escaped name>``, labelled with the username by the spawner). The
volumes are never read from this host: one helper container from the single-user image
mounts every home volume of the project read-only at ``/homes/<username>`` and runs
:class:`LocalHomes` on them as jovyan, with no network and no capability; the copies come
back as a tar archive, of which only regular files named ``<trainee>.ipynb`` for a mounted
trainee, no larger than the cap, are taken. A volume whose label and name disagree is
refused and reported.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from statbox.contract import PROJECT_LABEL, USER_LABEL
from statbox.errors import BadInput, EnvironmentProblem
from statbox.settings.names import is_valid_username

if TYPE_CHECKING:
    from statbox.contract import DockerNames

HELPER_OUT = "/tmp/statbox-out"
"""Where the collecting helper container writes the copies."""


def _default_limit() -> int:
    from statbox.certify.notebook import MAX_SUBMISSION_BYTES

    return MAX_SUBMISSION_BYTES


@dataclass
class Collected:
    copied: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """One line per home whose file could not be taken, with the reason."""


def _read_no_symlinks(base: Path, parts: tuple[str, ...], limit: int) -> bytes:
    """The file at ``base/parts...``, refusing a symbolic link at every step, and anything
    but a regular file of at most ``limit`` bytes."""
    fd = os.open(base, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)
    with os.fdopen(file_fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError("not a regular file")
        if info.st_size > limit:
            raise OSError(f"larger than {limit // 1024**2} MiB")
        content = handle.read(limit + 1)
        if len(content) > limit:  # grew since fstat
            raise OSError(f"larger than {limit // 1024**2} MiB")
        return content


class LocalHomes:
    """Submissions in local mode's home directories."""

    def __init__(self, homes: Path, limit: int | None = None):
        self.homes = homes
        self.limit = limit if limit is not None else _default_limit()

    def collect(self, course_id: str, notebook: str, out: Path) -> Collected:
        if not self.homes.is_dir():
            raise BadInput(f"{self.homes}: no home directories (has anyone logged in yet?)")
        out.mkdir(parents=True, exist_ok=True)
        parts = ("courses", course_id, *PurePosixPath(notebook).parts)
        result = Collected()
        for home in sorted(self.homes.iterdir()):
            trainee = home.name
            if not is_valid_username(trainee) or home.is_symlink() or not home.is_dir():
                continue
            try:
                content = _read_no_symlinks(home, parts, self.limit)
            except FileNotFoundError:
                result.missing.append(trainee)
                continue
            except OSError as exc:
                reason = exc.strerror or str(exc)
                if exc.errno == 40:  # ELOOP: O_NOFOLLOW met a symbolic link
                    reason = "a symbolic link (not followed)"
                result.refused.append(f"{trainee}: {'/'.join(parts)}: {reason}")
                continue
            target = out / f"{trainee}.ipynb"
            temporary = target.with_suffix(".ipynb.tmp")
            temporary.write_bytes(content)
            os.replace(temporary, target)
            result.copied.append(trainee)
        return result


# ---------------------------------------------------------------------------- docker mode


def main() -> int:
    """Run inside the collecting helper: LocalHomes over ``/homes``; print the result."""
    from statbox.modes.docker.volumes import PAYLOAD, RESULT_MARK

    plan = json.loads(Path(PAYLOAD, "plan.json").read_text())
    result = LocalHomes(Path("/homes"), plan["limit"]).collect(
        plan["course"], plan["notebook"], Path(HELPER_OUT)
    )
    print(RESULT_MARK + json.dumps(result.__dict__), flush=True)
    return 0


def take_copies(archive: bytes, trainees: set[str], limit: int, out: Path) -> list[str]:
    """Write each ``<trainee>.ipynb`` regular file of the helper's tar ``archive`` (at most
    ``limit`` bytes, ``trainee`` in ``trainees``) into ``out``; the trainees taken."""
    taken = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        for member in tar:
            path = PurePosixPath(member.name)
            if len(path.parts) != 2 or path.suffix != ".ipynb" or not member.isreg():
                continue  # the folder itself, or anything the helper would never write
            trainee = path.stem
            if trainee not in trainees or member.size > limit:
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            content = handle.read(limit + 1)
            if len(content) > limit:
                continue
            target = out / f"{trainee}.ipynb"
            temporary = target.with_suffix(".ipynb.tmp")
            temporary.write_bytes(content)
            os.replace(temporary, target)
            taken.append(trainee)
    return sorted(taken)


def home_volumes(volumes: list[Any], names: DockerNames) -> tuple[dict[str, str], list[str]]:
    """({trainee: volume name}, refusals) from the project's labelled volumes: a home
    volume's ``org.statbox.user`` label must name a valid username whose home volume name
    it is (else it is refused); other volumes of the project are ignored."""

    homes: dict[str, str] = {}
    refused: list[str] = []
    for volume in volumes:
        labels = volume.attrs.get("Labels") or {}
        user = labels.get(USER_LABEL)
        if user is None:
            continue
        if not is_valid_username(user) or names.home_volume(user) != volume.name:
            refused.append(f"volume {volume.name}: its user label {user[:64]!r} does not match")
            continue
        homes[user] = volume.name
    return dict(sorted(homes.items())), refused


class VolumeHomes:
    """Submissions in docker mode's home volumes (see the module docstring)."""

    def __init__(self, client: Any, names: DockerNames, image: str, limit: int | None = None):
        self.client = client
        self.names = names
        self.image = image
        self.limit = limit if limit is not None else _default_limit()

    def collect(self, course_id: str, notebook: str, out: Path) -> Collected:
        from statbox.modes.docker.volumes import (
            helper_command,
            helper_container_config,
            helper_result,
            package_sources,
            payload_archive,
            run_helper,
            stderr_tail,
        )

        label = f"{PROJECT_LABEL}={self.names.project}"
        volumes = self.client.volumes.list(filters={"label": label})
        homes, refused = home_volumes(volumes, self.names)
        if not homes:
            raise BadInput(
                f"no home volumes of project {self.names.project!r} (has anyone logged in yet?)"
            )
        out.mkdir(parents=True, exist_ok=True)
        plan = {"course": course_id, "notebook": notebook, "limit": self.limit}
        entries = [*package_sources(), ("plan.json", json.dumps(plan).encode())]
        config = helper_container_config(
            self.image,
            self.names.project,
            "collect",
            {volume: {"bind": f"/homes/{user}", "mode": "ro"} for user, volume in homes.items()},
            helper_command("statbox.certify.collect"),
        )
        run = run_helper(self.client, config, payload_archive(entries), 600, fetch=HELPER_OUT)
        result = helper_result(run.stdout)
        if run.code != 0 or result is None:
            raise EnvironmentProblem(
                f"the collecting helper (image {self.image}) failed with exit code {run.code}: "
                f"{stderr_tail(run.stderr)}"
            )
        archive = run.fetched
        copied = take_copies(archive, set(result.get("copied", [])), self.limit, out)
        missing = [str(u) for u in result.get("missing", []) if u in homes]
        reported = [str(line) for line in result.get("refused", [])]
        lost = sorted(set(result.get("copied", [])) - set(copied))
        reported += [f"{user}: the copy did not come back whole (not taken)" for user in lost]
        return Collected(copied, missing, [*refused, *reported])


if __name__ == "__main__":
    sys.exit(main())
