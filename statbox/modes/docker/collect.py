"""Gathering submissions in docker mode, from the trainees' home volumes.

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
import sys
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from statbox.certify.collect import Collected, LocalHomes, default_limit, write_private
from statbox.contract import PROJECT_LABEL, USER_LABEL, DockerNames
from statbox.errors import BadInput, EnvironmentProblem
from statbox.modes.docker.volumes import (
    PAYLOAD,
    RESULT_MARK,
    helper_command,
    helper_container_config,
    helper_result,
    package_sources,
    payload_archive,
    run_helper,
    stderr_tail,
)
from statbox.settings.names import is_valid_username

HELPER_OUT = "/tmp/statbox-out"
"""Where the collecting helper container writes the copies."""


def main() -> int:
    """Run inside the collecting helper: LocalHomes over ``/homes``; print the result."""
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
            write_private(out / f"{trainee}.ipynb", content)
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
        self.limit = limit if limit is not None else default_limit()

    def collect(self, course_id: str, notebook: str, out: Path) -> Collected:
        label = f"{PROJECT_LABEL}={self.names.project}"
        volumes = self.client.volumes.list(filters={"label": label})
        homes, refused = home_volumes(volumes, self.names)
        if not homes:
            raise BadInput(
                f"no home volumes of project {self.names.project!r} (has anyone logged in yet?)"
            )
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        plan = {"course": course_id, "notebook": notebook, "limit": self.limit}
        entries = [*package_sources(), ("plan.json", json.dumps(plan).encode())]
        config = helper_container_config(
            self.image,
            self.names.project,
            "collect",
            {volume: {"bind": f"/homes/{user}", "mode": "ro"} for user, volume in homes.items()},
            helper_command("statbox.modes.docker.collect"),
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
