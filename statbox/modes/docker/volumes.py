"""Publishing a course into docker mode's home volumes, through short-lived helper containers.

In docker mode each user's home is a named volume (``<project>-home-<escaped name>``, see
:class:`statbox.contract.DockerNames`). Its content belongs to the trainee, whose own
container may be changing it while we publish, so Statbox never writes into it from this
host (where a link the trainee planted would be followed as the operator): for each trainee
a helper container from the single-user image mounts that one volume at ``/home/jovyan``,
as jovyan (uid 1000), with no network, no capability and small limits, and runs the very
:class:`~statbox.courses.publish.Publisher` local mode uses on it. The worst a planted link
can do is redirect a write to somewhere jovyan may write inside a throw-away container.

Invariants, as in local mode: the same material (never ``grader/``), the same
keep-the-trainee's-edits rule, and the ledger of what Statbox wrote stays on this host
(``<state>/courses/published/``), out of the trainee's reach: it is handed to the helper
and read back from it. Every volume is checked (a helper in ``check`` mode) before the
first file is written; a volume that does not exist yet is created, labelled like the
spawner's, and the helper's first mount fills it from the image as a first spawn would.

The helper runs this statbox's own code (its ``.py`` files are copied into the container with
the plan), so the image need not carry the same version; only its Python and libraries are
used. Every helper container is removed by id.
"""

from __future__ import annotations

import io
import json
import re
import sys
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import statbox
from statbox.contract import HELPER_LABEL, IMAGE_INTERPRETER, PROJECT_LABEL, USER_LABEL
from statbox.courses.publish import Outcome, Published, Publisher
from statbox.errors import BadInput, EnvironmentProblem
from statbox.modes.docker.engine import run_helper, stderr_tail

if TYPE_CHECKING:
    from statbox.contract import DockerNames

# The container side imports this module, statbox.contract and statbox.courses.publish: the
# image lacks the Docker SDK, which only the host side uses.

PAYLOAD = "/tmp/statbox-helper"
"""Where a helper container finds its plan and statbox's code (its own writable layer)."""
HOME = "/home/jovyan"
JOVYAN = 1000
RESULT_MARK = "statbox-helper-result: "
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
PACKAGE = Path(statbox.__file__).resolve().parent


# ---------------------------------------------------------------------------- container side


class _VolumePublisher(Publisher):
    """The Publisher inside a helper: the one home mounted is the user's."""

    def home(self, user: str) -> Path:
        return self.homes

    def home_names(self, user: str) -> tuple[str, ...]:
        return ()


def main(payload: str = PAYLOAD, home: str = HOME, scratch: str = "/tmp/statbox-ledgers") -> int:
    """Run inside a helper container: check or apply the plan in ``payload`` to the home
    mounted at ``home`` (the ledger goes through ``scratch``); print the result as one JSON
    line. Exit 0 (done), 2 (a target is in the way: nothing written)."""
    root = Path(payload)
    plan = json.loads((root / "plan.json").read_text())
    user, course_id = plan["user"], plan["course"]
    files = {relative: (root / "files" / relative).read_bytes() for relative in plan["files"]}
    publisher = _VolumePublisher(Path(home), Path(scratch))
    publisher.write_ledger(user, course_id, plan["ledger"])
    problems = publisher.problems(course_id, {user: files})
    result: dict[str, Any] = {"problems": problems}
    if not problems and plan["mode"] == "apply":
        # a copy still as the curriculum has it is no edit of the trainee's: it may be replaced
        done = publisher.apply(course_id, {user: files}, plan.get("pristine") or {})
        result["published"] = [[p.path, p.outcome.value, p.beside] for p in done]
        result["ledger"] = publisher.read_ledger(user, course_id)
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 2 if problems else 0


# ------------------------------------------------------------------------------- host side


def helper_command(module: str) -> list[str]:
    """The helper's command: this statbox's ``module.main()``, isolated from the trainee's
    files (``-I``: no user site-packages, no PYTHON* variables, nothing from the cwd)."""
    code = (
        f"import sys; sys.path.insert(0, {PAYLOAD + '/src'!r}); "
        f"from {module} import main; sys.exit(main())"
    )
    return [IMAGE_INTERPRETER, "-I", "-B", "-c", code]


def package_sources() -> Iterable[tuple[str, bytes]]:
    """(archive name, content) of every ``.py`` file of the statbox package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        yield f"src/statbox/{path.relative_to(PACKAGE).as_posix()}", path.read_bytes()


def payload_archive(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """A tar archive of ``entries`` under ``statbox-helper/``, readable by everyone, owned
    by root (the helper reads it; only root could change it)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        made: set[str] = set()
        for name, data in entries:
            parts = PurePosixPath("statbox-helper", name).parts
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in made:
                    made.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def helper_container_config(
    image: str, project: str, purpose: str, volumes: dict[str, dict[str, str]], command: list[str]
) -> dict[str, Any]:
    """``containers.create`` arguments of a helper: jovyan, no network, no capability, small
    limits, labelled so a leftover can be found (and is removed with the project's)."""

    return {
        "image": image,
        "command": command,
        "user": f"{JOVYAN}:{JOVYAN}",
        "working_dir": PAYLOAD,
        "environment": {"HOME": PAYLOAD, "LANG": "C.UTF-8"},
        "network_mode": "none",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": 64,
        "mem_limit": 512 * 1024**2,
        "volumes": volumes,
        "labels": {PROJECT_LABEL: project, HELPER_LABEL: purpose},
    }


def helper_result(stdout: str) -> dict[str, Any] | None:
    """The JSON the helper printed last, or None."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            try:
                value = json.loads(line[len(RESULT_MARK) :])
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def parse_applied(user: str, result: dict[str, Any], files: Iterable[str]) -> list[Published]:
    """What the helper says it did, checked against what it was asked to write."""
    expected = set(files)
    done: list[Published] = []
    for item in result.get("published", []):
        relative, outcome, beside = item
        if relative not in expected:
            raise EnvironmentProblem(f"{user}: the helper reported an unplanned file {relative!r}")
        done.append(Published(user, relative, Outcome(outcome), beside))
    return done


def clean_ledger(ledger: Any, files: Iterable[str]) -> dict[str, str]:
    """The ledger entries the helper returned for files of the plan with a real digest."""
    expected = set(files)
    if not isinstance(ledger, dict):
        return {}
    return {
        str(k): str(v)
        for k, v in ledger.items()
        if k in expected and isinstance(v, str) and _DIGEST.match(v)
    }


@dataclass
class VolumePublishing:
    """Publishing into docker mode's home volumes (see the module docstring)."""

    client: Any
    names: DockerNames
    image: str
    ledgers: Path
    """What Statbox last wrote, per user and course: ``<state>/courses/published``."""

    def volume(self, user: str) -> str:
        return self.names.home_volume(user)

    def _exists(self, name: str) -> bool:
        import docker

        try:
            self.client.volumes.get(name)
        except docker.errors.NotFound:
            return False
        return True

    def _run(
        self,
        mode: str,
        course_id: str,
        user: str,
        files: dict[str, bytes],
        pristine: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        ledgers = Publisher(Path("/nonexistent"), self.ledgers)
        plan = {
            "mode": mode,
            "user": user,
            "course": course_id,
            "files": sorted(files),
            "ledger": ledgers.read_ledger(user, course_id),
            "pristine": pristine or {},
        }
        entries = [
            *package_sources(),
            ("plan.json", json.dumps(plan).encode()),
            *((f"files/{relative}", data) for relative, data in files.items()),
        ]
        config = helper_container_config(
            self.image,
            self.names.project,
            "publish",
            {self.volume(user): {"bind": HOME, "mode": "ro" if mode == "check" else "rw"}},
            helper_command("statbox.modes.docker.volumes"),
        )
        run = run_helper(self.client, config, payload_archive(entries))
        result = helper_result(run.stdout)
        if result is None or run.code not in (0, 2):
            raise EnvironmentProblem(
                f"{user}: the publishing helper (image {self.image}) failed with exit code "
                f"{run.code}: {stderr_tail(run.stderr)}; check that the image is a Statbox "
                "single-user image (statbox images build)"
            )
        return result

    def publish(
        self,
        course_id: str,
        planned: dict[str, dict[str, bytes]],
        pristine: dict[str, str] | None = None,
    ) -> list[Published]:
        """Publish ``planned`` (Publisher.plan) into each user's volume; BadInput, having
        written nothing, when a target in some volume is in the way. ``pristine``:
        Publisher.pristine (copies still as the curriculum has them may be replaced)."""
        problems: list[str] = []
        for user, files in planned.items():
            if self._exists(self.volume(user)):
                found = self._run("check", course_id, user, files).get("problems", [])
                problems.extend(f"{line} (volume {self.volume(user)})" for line in found)
        if problems:
            raise BadInput(*problems)
        done: list[Published] = []
        ledgers = Publisher(Path("/nonexistent"), self.ledgers)

        for user, files in planned.items():
            if not self._exists(self.volume(user)):
                self.client.volumes.create(
                    name=self.volume(user),
                    labels={PROJECT_LABEL: self.names.project, USER_LABEL: user},
                )
            result = self._run("apply", course_id, user, files, pristine)
            if result.get("problems"):  # changed since the check: this user only
                volume = self.volume(user)
                raise BadInput(*(f"{line} (volume {volume})" for line in result["problems"]))
            done.extend(parse_applied(user, result, files))
            ledgers.write_ledger(user, course_id, clean_ledger(result.get("ledger"), files))
        return done


if __name__ == "__main__":
    sys.exit(main())
