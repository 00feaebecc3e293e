"""Offline operation in docker mode, for real: backups and bundles on a real Docker engine.

- A backup of a running docker stack (users in its PostgreSQL database, a home volume with
  files) restores after the stack, its volumes and its state directory are destroyed: the
  files come back byte for byte with their owners and modes, the users and their tokens
  come back (seen through the hub's API), and what happened after the backup does not.
  A damaged copy of the backup is refused with exit 2 and nothing is created.
- A bundle carrying the images installs into a second, empty engine with every package index
  unreachable and nothing to pull from: the images are there with the same ids, and the
  installed ``statbox up --mode docker --prepare`` finds everything it needs.

This module runs its own stack (project ``sbxo...``), one at a time and before
test_docker_stack.py's session stack starts, so no two stacks share the machine.

Fixtures here:
- ``offline_root``: a folder with the test settings and the catalog's samples; removed after,
  with every volume of its project.
- ``saved``: the stack run once: alice (with files) and bob log in, the admin takes a token,
  the backup is made while it runs, then things change; the stack is stopped and destroyed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from statbox.contract import PROJECT_LABEL, DockerNames
from statbox.modes.docker.images import DEFAULT_CACHE
from statbox.sandbox import CgroupTree
from tests.conftest import REPO
from tests.docker.conftest import (
    PASSWORDS,
    SETTINGS,
    RunningStack,
    _run_stack,
    make_test_data,
    remove_project,
    stack_env,
)
from tests.docker.engine import PrivateEngine, forwarding_dropped, free_subnet
from tests.integration.hubclient import HubUser

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)]

NO_NETWORK = {
    "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
    "PIP_EXTRA_INDEX_URL": "",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
}
"""Where an install would go for packages if it tried: nothing listens there."""

PINGS = random.Random(9).randbytes(300_000)
"""A binary file alice keeps in her home (written from inside her container)."""


def statbox(*args: str, env: dict[str, str], python: str = sys.executable):
    return subprocess.run(
        [python, "-m", "statbox.cli", *args],
        capture_output=True, text=True, env=env, timeout=1200,
    )  # fmt: skip


@dataclass
class OfflineRoot:
    root: Path
    config: Path
    project: str
    env: dict[str, str]
    subnets: tuple[str, str]
    """The private and database networks' subnets (users' are cut from another)."""

    @property
    def names(self) -> DockerNames:
        return DockerNames(self.project)

    @property
    def state(self) -> Path:
        return self.root / "state"


@pytest.fixture(scope="module")
def offline_root(engine, images) -> Iterator[OfflineRoot]:
    project = f"sbxo{secrets.token_hex(3)}"
    root = Path(tempfile.mkdtemp(prefix="statbox-offline-"))
    try:  # the folder goes whatever fails after it is made
        make_test_data(root)
        private = free_subnet()
        db = free_subnet(exclude=(private,))
        users = free_subnet(exclude=(private, db))
        config = root / "statbox.yaml"
        config.write_text(
            SETTINGS.format(project=project, root=root, repo=REPO, user_subnets=users)
        )
        env = stack_env(engine)
        with forwarding_dropped(users):
            yield OfflineRoot(root, config, project, env, (private, db))
    finally:
        remove_project(engine, project)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def running(engine: PrivateEngine, where: OfflineRoot, log: str) -> Iterator[RunningStack]:
    stack = contextlib.contextmanager(_run_stack)(
        engine, where.project, where.names, where.root, where.config, where.env,
        where.root / log, where.subnets,
    )  # fmt: skip
    with stack as running_stack:
        yield running_stack


def log_in(url: str, name: str, start: bool = False) -> HubUser:
    user = HubUser(url, name)
    user.login(PASSWORDS["admin"] if name == "admin" else PASSWORDS["user"])
    user.create_token()
    if start:
        user.start_server(timeout=180)
    return user


def put_text(user: HubUser, path: str, text: str) -> None:
    response = user.api(
        "PUT",
        f"/user/{user.name}/api/contents/{path}",
        json={"type": "file", "format": "text", "content": text},
    )
    assert response.status_code in (200, 201), response.text


def helper(engine: PrivateEngine, volume: str, script: str) -> str:
    """Run a shell script as root over ``volume`` (read-only at /v) in a throwaway container."""
    out = engine.client.containers.run(
        "statbox/postgres:latest", ["-c", script], entrypoint=["bash"], user="0",
        network_mode="none", volumes={volume: {"bind": "/v", "mode": "ro"}}, remove=True,
    )  # fmt: skip
    return out.decode()


def volume_listing(engine: PrivateEngine, volume: str) -> dict[str, tuple]:
    """Every path in ``volume``: (mode, uid, gid, sha256 of a file's bytes or None)."""
    script = (
        "cd /v && find . -printf '%p\\t%m\\t%U\\t%G\\t%y\\n' | sort && echo '--' && "
        "find . -type f -print0 | sort -z | xargs -0 -r sha256sum"
    )
    listing, sums = helper(engine, volume, script).split("--\n")
    digests = {
        name.strip(): digest for digest, name in (line.split("  ", 1) for line in sums.splitlines())
    }
    found = {}
    for line in listing.splitlines():
        path, mode, uid, gid, kind = line.split("\t")
        found[os.path.normpath(path)] = (
            int(mode, 8),
            int(uid),
            int(gid),
            digests.get(path) if kind == "f" else None,
        )
    return found


def archive_listing(archive: Path) -> dict[str, tuple]:
    """The same, read from a volume archive of a backup."""
    found = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            digest = None
            if member.isfile():
                stream = tar.extractfile(member)
                assert stream is not None
                digest = hashlib.sha256(stream.read()).hexdigest()
            found[os.path.normpath(member.name)] = (member.mode, member.uid, member.gid, digest)
    return found


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@dataclass
class Saved:
    backup: Path
    alice_token: str
    admin_token: str
    users_before: dict[str, str]
    """name -> created, as the admin saw them when the backup was made."""
    secrets_before: dict[str, bytes]
    volumes_before: list[str]
    seconds: float


@pytest.fixture(scope="module")
def saved(engine, offline_root) -> Saved:
    where = offline_root
    backup = where.root / "backup"
    with running(engine, where, "statbox-up-1.log") as stack:
        admin = log_in(stack.url, "admin")
        alice = log_in(stack.url, "alice", start=True)
        log_in(stack.url, "bob")
        put_text(alice, "notes.txt", "port calls, week 12\n")
        written = alice.run(
            "import os, random\n"
            "os.makedirs('ais', exist_ok=True)\n"
            "open('ais/pings.bin', 'wb').write(random.Random(9).randbytes(300_000))\n"
            "open('ais/private.txt', 'w').write('mine')\n"
            "os.chmod('ais/private.txt', 0o600)\n"
            "print('{}')\n"
        )
        assert written.error is None, written.stderr
        users = admin.api("GET", "/hub/api/users").json()
        users_before = {user["name"]: user["created"] for user in users}
        assert set(users_before) == {"admin", "alice", "bob"}

        started = time.monotonic()
        made = statbox("backup", "create", "--config", str(where.config), "--out", str(backup),
                       env=where.env)  # fmt: skip
        seconds = time.monotonic() - started
        assert made.returncode == 0, made.stderr
        print(made.stdout, made.stderr, f"backup of the running stack: {seconds:.1f} s")

        # After the backup: a new user, a changed file. A restore must undo both.
        log_in(stack.url, "carol")
        put_text(alice, "notes.txt", "written after the backup\n")
    volumes = [
        v.name
        for v in engine.client.volumes.list(filters={"label": f"{PROJECT_LABEL}={where.project}"})
    ]
    assert where.names.home_volume("alice") in volumes
    secrets_before = tree_bytes(where.state / "secrets")

    # Destroy: every container and volume of the project, and the state directory.
    label = {"label": f"{PROJECT_LABEL}={where.project}"}
    assert engine.client.containers.list(all=True, filters=label) == []
    for volume in engine.client.volumes.list(filters=label):
        volume.remove(force=True)
    shutil.rmtree(where.state)
    return Saved(backup, alice.token, admin.token, users_before, secrets_before, volumes, seconds)


def test_backup_holds_the_database_and_every_home(saved, offline_root):
    manifest = json.loads((saved.backup / "manifest.json").read_text())
    assert manifest["mode"] == "docker"
    names = offline_root.names
    volumes = {v["name"]: v for v in manifest["docker"]["volumes"]}
    assert set(volumes) == {names.home_volume("alice")}  # bob never started a server
    assert volumes[names.home_volume("alice")]["labels"]["org.statbox.user"] == "alice"
    assert set(manifest["files"]) == {
        "state.tar",
        "settings.yaml",
        "database.dump",
        f"volume-{names.home_volume('alice')}.tar",
    }
    # pg_dump's custom format, with the hub's tables in it.
    dump = (saved.backup / "database.dump").read_bytes()
    assert dump.startswith(b"PGDMP")
    assert b"api_tokens" in dump and b"users" in dump
    # Pid files of the hub and its proxy are not carried: restored, they made the new hub
    # signal whatever had that pid in its container.
    with tarfile.open(saved.backup / "state.tar") as tar:
        assert "hub/jupyterhub_cookie_secret" in tar.getnames()
        assert [name for name in tar.getnames() if name.endswith(".pid")] == []
    # The gateway's scratch and the database volume's files are not carried as files.
    assert not any(name.startswith(f"volume-{names.gateway_volume}") for name in manifest["files"])


def damaged_copies(backup: Path, into: Path) -> dict[str, Path]:
    manifest = json.loads((backup / "manifest.json").read_text())
    volume = manifest["docker"]["volumes"][0]["file"]
    copies = {}
    for case in ("byte flipped in a home", "database truncated", "home archive missing"):
        copy = into / case.replace(" ", "-")
        shutil.copytree(backup, copy)
        copies[case] = copy
    home = copies["byte flipped in a home"] / volume
    data = bytearray(home.read_bytes())
    data[len(data) // 2] ^= 0x01
    home.write_bytes(bytes(data))
    dump = copies["database truncated"] / "database.dump"
    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    (copies["home archive missing"] / volume).unlink()
    return copies


def test_a_damaged_docker_backup_is_refused_and_nothing_changes(
    saved, engine, offline_root, tmp_path
):
    where = offline_root
    label = {"label": f"{PROJECT_LABEL}={where.project}"}
    for case, copy in damaged_copies(saved.backup, tmp_path).items():
        done = statbox("backup", "restore", str(copy), "--config", str(where.config), env=where.env)
        assert done.returncode == 2, (case, done.stderr)
        assert "Traceback" not in done.stderr, case
        assert "nothing was restored" in done.stderr, (case, done.stderr)
        assert any(word in done.stderr for word in ("checksum", "bytes", "missing")), done.stderr
        assert engine.client.volumes.list(filters=label) == [], case
        assert engine.client.containers.list(all=True, filters=label) == [], case
        assert not where.state.exists(), case


def test_restore_brings_back_homes_users_and_the_database(saved, engine, offline_root):
    where = offline_root
    started = time.monotonic()
    done = statbox("backup", "restore", str(saved.backup), "--config", str(where.config),
                   env=where.env)  # fmt: skip
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    print(done.stdout, f"restore: {seconds:.1f} s")

    # Exactly what was saved: every path of alice's home with its bytes, mode and owner.
    home = where.names.home_volume("alice")
    restored = volume_listing(engine, home)
    assert restored == archive_listing(saved.backup / f"volume-{home}.tar")
    assert restored["ais/private.txt"][:3] == (0o600, 1000, 1000)
    assert tree_bytes(where.state / "secrets") == saved.secrets_before
    label = {"label": f"{PROJECT_LABEL}={where.project}"}
    assert engine.client.containers.list(all=True, filters=label) == []  # helpers removed

    # A second restore over what is there is refused unless --replace.
    again = statbox("backup", "restore", str(saved.backup), "--config", str(where.config),
                    env=where.env)  # fmt: skip
    assert again.returncode == 2 and "--replace" in again.stderr, again.stderr

    with running(engine, where, "statbox-up-2.log") as stack:
        admin = HubUser(stack.url, "admin")
        admin.token = saved.admin_token  # issued before the backup: its row came back
        users = admin.api("GET", "/hub/api/users")
        assert users.status_code == 200, users.text
        assert {u["name"]: u["created"] for u in users.json()} == saved.users_before  # no carol
        alice = HubUser(stack.url, "alice")
        alice.token = saved.alice_token
        alice.start_server(timeout=180)
        note = alice.api("GET", "/user/alice/api/contents/notes.txt").json()
        assert note["content"] == "port calls, week 12\n"
        pings = alice.run(
            "import hashlib, json\n"
            "data = open('ais/pings.bin', 'rb').read()\n"
            "print(json.dumps({'sha': hashlib.sha256(data).hexdigest()}))\n"
        )
        assert pings.error is None, pings.stderr
        assert pings.json() == {"sha": hashlib.sha256(PINGS).hexdigest()}


# ------------------------------------------------------------------------------- bundle


def test_bundle_with_images_installs_into_an_empty_engine(engine, images, offline_root, tmp_path):
    where = offline_root
    out = tmp_path / "statbox-bundle.tar"
    started = time.monotonic()
    made = statbox(
        "bundle", "create", "--with-images", "--config", str(where.config), "--out", str(out),
        "--cache", str(DEFAULT_CACHE / "bundle-parts"), env=where.env,
    )  # fmt: skip
    create_seconds = time.monotonic() - started
    assert made.returncode == 0, made.stderr
    with tarfile.open(out) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    carried = {image["name"]: image for image in manifest["images"]}
    wanted = {"statbox/hub:latest", "statbox/gateway:latest", "statbox/singleuser:latest",
              "statbox/postgres:latest"}  # fmt: skip
    assert set(carried) == wanted
    assert carried["statbox/singleuser:latest"]["file"] in manifest["files"]

    fresh = PrivateEngine(Path(tempfile.mkdtemp(prefix="sbx-fresh-engine-")))
    fresh.start()
    prefix = tmp_path / "opt-statbox"
    try:
        assert fresh.client.images.list() == []
        installer = subprocess.run(
            ["tar", "-xOf", str(out), "install.py"], capture_output=True
        ).stdout
        started = time.monotonic()
        installed = subprocess.run(
            [sys.executable, "-", str(out), "--prefix", str(prefix)], input=installer,
            capture_output=True, env={**where.env, **NO_NETWORK, "DOCKER_HOST": fresh.host},
            timeout=1800,
        )  # fmt: skip
        install_seconds = time.monotonic() - started
        assert installed.returncode == 0, installed.stderr.decode()
        for name in wanted:
            assert fresh.client.images.get(name).id == engine.client.images.get(name).id, name
            assert carried[name]["id"] == engine.client.images.get(name).id

        # The installed command finds every image, folder and secret it needs: `up` would
        # start now with nothing pulled or built (--prepare checks and creates nothing).
        settings = prefix / "statbox.yaml"
        assert "mode: docker" in settings.read_text()
        python = str(prefix / "current" / "venv" / "bin" / "python")
        prepared = statbox("up", "--config", str(settings), "--prepare", python=python,
                           env={**where.env, **NO_NETWORK, "DOCKER_HOST": fresh.host})  # fmt: skip
        assert prepared.returncode == 0, prepared.stderr
        assert fresh.client.containers.list(all=True) == []
    finally:
        # --prepare makes the clusters' cgroup folder `docker compose up` needs; `statbox up`
        # would remove it at stop, so the test does, as test_docker_stack's prepare test does.
        for env_file in prefix.glob("**/run/compose.env"):
            variables = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
            tree = CgroupTree.detect(f"statbox-{variables['STATBOX_PROJECT']}-dask")
            if tree is not None:
                tree.remove()
        fresh.remove_everything_but_images()
        fresh.stop()
        shutil.rmtree(fresh.data_root, ignore_errors=True)
    single = carried["statbox/singleuser:latest"]
    print(
        f"bundle: {out.stat().st_size / 1e9:.2f} GB, made in {create_seconds:.0f} s; "
        f"single-user image: {single['size'] / 1e9:.2f} GB in the engine, "
        f"{single['bundle_bytes'] / 1e9:.2f} GB inside the bundle; "
        f"install (verify, venv from the wheelhouse, docker load): {install_seconds:.0f} s"
    )
