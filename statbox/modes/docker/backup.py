"""Docker-mode backups: the hub's PostgreSQL database and every home volume, beside the state.

A docker-mode backup is a local backup (:mod:`statbox.ops.backup`: ``manifest.json``,
``state.tar`` with settings, secrets, results store and signing key) plus::

    DIR/database.dump          pg_dump --format=custom of the hub's database
    DIR/volume-<name>.tar      one per user's home volume (GNU tar, numeric owners, modes)

and the manifest says ``"mode": "docker"``, the project, and each volume's name and labels.

Invariants:

* Consistent while the hub runs: pg_dump runs inside the db container (over the Docker API)
  in one transaction, a snapshot of one moment however busy the hub is. Homes are read file
  by file through a short-lived container that mounts each volume read-only (a file being
  written at that moment may be caught half-written; tar says so, and the backup says so).
  The gateway's volume is not saved: it holds running clusters' records and scratch, and the
  gateway stops every cluster when it stops, so a restart starts it empty anyway.
* Restore checks everything first (checksums, archive members, the engine, the helper image,
  the secrets) and changes nothing when a check fails. It refuses while any container of the
  project runs (stop ``statbox up`` first), and refuses when the volumes it would make exist,
  unless ``--replace`` is given, which removes the project's volumes first (that data is gone:
  back it up before). It then makes each volume anew with its saved labels, unpacks the
  homes, loads the database into a fresh PostgreSQL on the db volume, and lays the state
  directory down last. If a step fails, the volumes it made are removed again.

Every helper container is labelled with the project, has no network, and is removed by id.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statbox.configure.runtime import SECRET_ENV
from statbox.contract import BACKUP_LABEL, PROJECT_LABEL, USER_LABEL, DockerNames
from statbox.errors import BadInput, EnvironmentProblem, StatboxError
from statbox.modes.docker.engine import run_helper

DATABASE_FILE = "database.dump"
DATABASE_NAME = "jupyterhub"
"""The hub's database and the role owning it (images/postgres/entrypoint.sh)."""
PGDATA = "/var/lib/postgresql/data"
VOLUME_MOUNT = "/volume"
BACKUP_MOUNT = "/backup"
READY_TIMEOUT = 120.0


def volume_file(name: str) -> str:
    return f"volume-{name}.tar"


@dataclass(frozen=True)
class DockerTarget:
    """What a docker-mode backup reads from or restores to: an engine and a project."""

    client: Any
    project: str
    helper_image: str
    """An image with tar and PostgreSQL's tools (the stack's PostgreSQL image)."""

    @property
    def names(self) -> DockerNames:
        return DockerNames(self.project)

    @property
    def labels(self) -> dict[str, str]:
        return {PROJECT_LABEL: self.project}

    def home_volumes(self) -> list[Any]:
        """Every user's home volume of the project, by name."""
        volumes = self.client.volumes.list(filters={"label": f"{PROJECT_LABEL}={self.project}"})
        homes = [
            v
            for v in volumes
            if USER_LABEL in (v.attrs.get("Labels") or {})
            and v.name.startswith(self.names.home_volume_prefix)
        ]
        return sorted(homes, key=lambda v: v.name)

    def project_volumes(self) -> list[Any]:
        found = self.client.volumes.list(filters={"label": f"{PROJECT_LABEL}={self.project}"})
        names = {v.name for v in found}
        # Volumes the stack made before labels existed, found by name.
        for name in (self.names.db_volume, self.names.gateway_volume):
            if name not in names:
                with contextlib.suppress(_not_found()):
                    found.append(self.client.volumes.get(name))
        return sorted(found, key=lambda v: v.name)

    def running_containers(self) -> list[Any]:
        return list(
            self.client.containers.list(filters={"label": f"{PROJECT_LABEL}={self.project}"})
        )


def _not_found() -> type[Exception]:
    import docker

    return docker.errors.NotFound


def _image_present(client: Any, image: str) -> bool:
    try:
        client.images.get(image)
    except _not_found():
        return False
    return True


# ------------------------------------------------------------------------------ helpers

HELPER_TIMEOUT = 3600
"""Seconds a backup helper (copying one volume) may take."""


def _run_helper(
    target: DockerTarget,
    command: list[str],
    volumes: dict[str, dict[str, str]],
    what: str,
    ok_codes: tuple[int, ...] = (0,),
) -> tuple[int, str]:
    """Run ``command`` in a short-lived root container with no network; (exit code, log)."""
    config = {
        "image": target.helper_image,
        "command": command[1:],
        "entrypoint": [command[0]],
        "user": "0",
        "network_mode": "none",
        "volumes": volumes,
        "labels": {**target.labels, BACKUP_LABEL: "backup-helper"},
    }
    run = run_helper(target.client, config, b"", timeout=HELPER_TIMEOUT)
    code, log = run.code, run.stdout + run.stderr
    if code not in ok_codes:
        raise StatboxError(f"{what} failed (exit {code}):", *log.strip().splitlines()[-10:])
    return code, log


def _exec(container: Any, command: list[str], user: str = "postgres") -> tuple[int, str]:
    result = container.exec_run(command, user=user)
    return int(result.exit_code), result.output.decode(errors="replace")


@contextlib.contextmanager
def _temporary_database(
    target: DockerTarget, password: str, extra_binds: dict[str, dict[str, str]] | None = None
) -> Iterator[Any]:
    """A PostgreSQL of the stack's image on the db volume, with no network; removed after."""
    container = target.client.containers.create(
        target.helper_image,
        environment={"POSTGRES_PASSWORD": password},
        network_mode="none",
        volumes={target.names.db_volume: {"bind": PGDATA, "mode": "rw"}, **(extra_binds or {})},
        labels={**target.labels, BACKUP_LABEL: "backup-helper"},
    )
    try:
        container.start()
        _wait_for_postgres(container)
        yield container
        container.stop(timeout=60)  # a clean shutdown: the data directory is checkpointed
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


def _wait_for_postgres(container: Any) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        container.reload()
        if container.status in ("exited", "dead"):
            log = container.logs(tail=10).decode(errors="replace")
            raise StatboxError("PostgreSQL exited while starting:", *log.splitlines())
        # Over TCP: during first-start initialisation the entry point's server listens on
        # its socket only, and stops again.
        code, _ = _exec(container, ["pg_isready", "--quiet", "--host=127.0.0.1"])
        if code == 0:
            return
        time.sleep(0.3)
    raise StatboxError(f"PostgreSQL did not become ready within {READY_TIMEOUT:.0f} s")


# ------------------------------------------------------------------------------- create


def write_docker_parts(target: DockerTarget, folder: Path, warnings: list[str]) -> dict[str, Any]:
    """Dump the database and archive every home volume into ``folder``; manifest keys."""
    _dump_database(target, folder / DATABASE_FILE)
    volumes = []
    for volume in target.home_volumes():
        file = volume_file(volume.name)
        code, log = _run_helper(
            target,
            ["tar", "--create", "--numeric-owner", "--sparse", f"--file={BACKUP_MOUNT}/{file}",
             f"--directory={VOLUME_MOUNT}", "."],
            {volume.name: {"bind": VOLUME_MOUNT, "mode": "ro"},
             str(folder): {"bind": BACKUP_MOUNT, "mode": "rw"}},
            f"archiving volume {volume.name}",
            ok_codes=(0, 1),  # 1: a file changed while it was read (a user was writing)
        )  # fmt: skip
        if code == 1:
            warnings.append(f"volume {volume.name}: files changed while read: {log.strip()}")
        volumes.append(
            {"name": volume.name, "labels": volume.attrs.get("Labels") or {}, "file": file}
        )
    return {
        "mode": "docker",
        "docker": {
            "project": target.project,
            "helper_image": target.helper_image,
            "database": {"file": DATABASE_FILE, "name": DATABASE_NAME},
            "volumes": volumes,
            "warnings": warnings,
        },
    }


def _dump_database(target: DockerTarget, out: Path) -> None:
    """pg_dump of the hub's database, streamed out of the db container (or, with the stack
    stopped, of a short-lived PostgreSQL on its volume)."""
    import docker

    try:
        db = target.client.containers.get(target.names.db)
    except docker.errors.NotFound:
        db = None
    if db is not None and db.status == "running":
        _stream_dump(target, db, out)
        return
    if not any(v.name == target.names.db_volume for v in target.project_volumes()):
        raise BadInput(
            f"project {target.project!r} has no database volume {target.names.db_volume}: "
            "nothing to back up (is docker.project right?)"
        )
    # The entry point only uses the password to initialise an empty volume; this one is not.
    with _temporary_database(target, password="unused-volume-is-initialised") as temporary:
        _stream_dump(target, temporary, out)


def _stream_dump(target: DockerTarget, container: Any, out: Path) -> None:
    api = target.client.api
    exec_id = api.exec_create(
        container.id,
        ["pg_dump", "--username=postgres", "--format=custom", f"--dbname={DATABASE_NAME}"],
        user="postgres",
    )["Id"]
    errors = []
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as stream:
        for stdout, stderr in api.exec_start(exec_id, stream=True, demux=True):
            if stdout:
                stream.write(stdout)
            if stderr:
                errors.append(stderr.decode(errors="replace"))
    code = api.exec_inspect(exec_id)["ExitCode"]
    if code != 0:
        raise StatboxError(
            f"pg_dump in {container.name} failed (exit {code}):", *"".join(errors).splitlines()
        )
    # Readable by the restore's PostgreSQL account when bound in alone; the backup folder
    # (0700) keeps it private.
    out.chmod(0o644)


# ------------------------------------------------------------------------------ restore


def docker_manifest_problems(backup: Path, manifest: dict[str, Any]) -> list[str]:
    """What is wrong with the docker part of a verified manifest (members, shape)."""
    where = backup / "manifest.json"
    docker_part = manifest.get("docker")
    if not isinstance(docker_part, dict) or not isinstance(docker_part.get("volumes"), list):
        return [f"{where}: damaged (no docker section)"]
    files = manifest["files"]
    problems = []
    if DATABASE_FILE not in files:
        problems.append(f"{where}: damaged (it lists no {DATABASE_FILE})")
    for volume in docker_part["volumes"]:
        if not isinstance(volume, dict) or volume.get("file") not in files:
            problems.append(f"{where}: damaged (volume entry {volume!r})")
            continue
        archive = backup / volume["file"]
        with tarfile.open(archive) as tar:
            for member in tar:
                name = os.path.normpath(member.name)
                if os.path.isabs(name) or name.split(os.sep)[0] == "..":
                    problems.append(f"{archive}: {member.name!r} would land outside the volume")
    return problems


def _saved_db_password(backup: Path) -> str | None:
    env = os.environ.get(SECRET_ENV["db_password"])
    if env:
        return env
    with tarfile.open(backup / "state.tar") as tar:
        for name in ("secrets/db_password", "./secrets/db_password"):
            with contextlib.suppress(KeyError):
                stream = tar.extractfile(name)
                if stream is not None:
                    return stream.read().decode().strip()
    return None


@dataclass
class DockerRestorePlan:
    target: DockerTarget
    volumes: list[dict[str, Any]]
    password: str
    remove: list[Any]
    """Existing volumes ``--replace`` removes first."""
    stale_containers: list[Any]


def plan_docker_restore(
    backup: Path, manifest: dict[str, Any], client: Any, replace: bool
) -> DockerRestorePlan:
    """Every check a docker restore needs, changing nothing; raise with every problem."""
    docker_part = manifest["docker"]
    target = DockerTarget(client, docker_part["project"], docker_part["helper_image"])
    if not _image_present(client, target.helper_image):
        raise EnvironmentProblem(
            f"image {target.helper_image} (the stack's PostgreSQL image, which restores the "
            "database and the volumes) is not in the engine: run `statbox images build`, or "
            "load it from the offline bundle; nothing was restored"
        )
    running = target.running_containers()
    if running:
        raise EnvironmentProblem(
            f"containers of project {target.project!r} are running "
            f"({', '.join(sorted(c.name for c in running))}): stop the stack (Ctrl-C on "
            "`statbox up`) and run the restore again; nothing was restored"
        )
    password = _saved_db_password(backup)
    if not password:
        raise BadInput(
            f"{backup / 'state.tar'}: holds no secrets/db_password and "
            f"{SECRET_ENV['db_password']} is not set: set it to the database password the "
            "hub used; nothing was restored"
        )
    existing = target.project_volumes()
    wanted = {target.names.db_volume, *(v["name"] for v in docker_part["volumes"])}
    conflicts = [v for v in existing if v.name in wanted]
    if conflicts and not replace:
        raise BadInput(
            f"volumes of project {target.project!r} exist: "
            f"{', '.join(v.name for v in conflicts)}. Pass --replace to remove the project's "
            "volumes and restore over them (their data is lost), or remove them yourself "
            "(docker volume rm); nothing was restored"
        )
    stale = list(
        client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={target.project}"})
    )
    return DockerRestorePlan(
        target, docker_part["volumes"], password, existing if replace else [], stale
    )


def restore_docker_parts(backup: Path, plan: DockerRestorePlan) -> list[str]:
    """Recreate the volumes and load the database; remove what was made if a step fails.

    Returns the names of the volumes made.
    """
    target, client = plan.target, plan.target.client
    for container in plan.stale_containers:  # stopped leftovers: they hold volumes in use
        with contextlib.suppress(_not_found()):
            container.remove(force=True)
    for volume in plan.remove:
        with contextlib.suppress(_not_found()):
            volume.remove(force=True)
    made: list[str] = []
    try:
        for entry in plan.volumes:
            client.volumes.create(name=entry["name"], labels=entry["labels"])
            made.append(entry["name"])
            _run_helper(
                target,
                ["tar", "--extract", "--numeric-owner", "--same-permissions", "--same-owner",
                 f"--file={BACKUP_MOUNT}/{entry['file']}", f"--directory={VOLUME_MOUNT}"],
                {entry["name"]: {"bind": VOLUME_MOUNT, "mode": "rw"},
                 str(backup): {"bind": BACKUP_MOUNT, "mode": "ro"}},
                f"restoring volume {entry['name']}",
            )  # fmt: skip
        client.volumes.create(name=target.names.db_volume, labels=target.labels)
        made.append(target.names.db_volume)
        dump = "/restore/" + DATABASE_FILE
        binds = {str(backup / DATABASE_FILE): {"bind": dump, "mode": "ro"}}
        with _temporary_database(target, plan.password, binds) as db:
            code, out = _exec(
                db,
                ["pg_restore", "--username=postgres", f"--dbname={DATABASE_NAME}",
                 "--exit-on-error", "--single-transaction", dump],
            )  # fmt: skip
            if code != 0:
                raise StatboxError(f"pg_restore failed (exit {code}):", *out.splitlines()[-10:])
    except BaseException:
        remove_volumes(target, made)
        raise
    return made


def remove_volumes(target: DockerTarget, names: list[str]) -> None:
    """Remove the volumes a failed restore made (by name; they are new and ours)."""
    for name in names:
        with contextlib.suppress(Exception):
            target.client.volumes.get(name).remove(force=True)
