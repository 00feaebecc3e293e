"""Docker mode's courses and certification, for real: publishing into home volumes,
collecting from them (hostile content included), and grading in containers.

Uses the session's private engine and images (tests/docker/conftest.py), not the stack: a
home volume is what the spawner mounts at /home/jovyan, so each check looks into it the way
a user container does, from a container of the single-user image running as jovyan. Every
container and volume made here is removed by id, and each test checks that no helper or
grading container outlived the command that started it.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from statbox.contract import GRADING_LABEL, HELPER_LABEL, PROJECT_LABEL, USER_LABEL, DockerNames
from statbox.courses.model import load_course
from statbox.courses.publish import material
from statbox.modes.docker.collect import VolumeHomes as VolumeSubmissions
from tests.certify.conftest import SAMPLE, write_secret
from tests.certify.sampledata import SECRET_MARKER, write_sample_data
from tests.conftest import REPO
from tests.docker.conftest import remove_project

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

COURSE = "shop-prices"
EXERCISE = "exercise/exercise.ipynb"
SOLUTION = SAMPLE / "grader" / "solution.ipynb"

SETTINGS = """\
mode: docker
hub:
  name: Statbox docker courses test
groups:
  cohort-test: [alice, bob]
cohorts: [cohort-test]
docker:
  project: {project}
  publish: false
certify:
  isolation: docker
  memory: 400M
  processes: 64
paths:
  catalog: {repo}/tests/fixtures/catalogs/shop.yaml
  curriculum: {repo}/tests/fixtures/courses
  data_root: {root}/data
  state_dir: {root}/state
"""


@dataclass
class Project:
    """A docker-mode settings file of its own project on the test engine."""

    root: Path
    config: Path
    names: DockerNames
    client: Any
    image: str
    env: dict[str, str]

    def statbox(self, *args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "statbox.cli", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=900,
        )
        if check is not None:
            assert result.returncode == check, result.stdout + result.stderr
        return result

    def as_jovyan(self, user: str, script: str) -> str:
        """Run shell ``script`` in a container of the image as jovyan with ``user``'s home
        volume at /home/jovyan, as a spawned server has it; its output."""
        container = self.client.containers.create(
            self.image,
            ["bash", "-c", script],
            user="1000:1000",
            network_mode="none",
            volumes={self.names.home_volume(user): {"bind": "/home/jovyan", "mode": "rw"}},
            labels={PROJECT_LABEL: self.names.project},
        )
        try:
            container.start()
            status = container.wait(timeout=120)["StatusCode"]
            output = container.logs().decode(errors="replace")
            assert status == 0, output
            return output
        finally:
            container.remove(force=True)

    def containers(self, label: str) -> list[Any]:
        return self.client.containers.list(
            all=True, filters={"label": [f"{PROJECT_LABEL}={self.names.project}", label]}
        )


@pytest.fixture(scope="module")
def project(engine, images) -> Iterator[Project]:
    name = f"sbxc{secrets.token_hex(3)}"
    root = Path(tempfile.mkdtemp(prefix="statbox-docker-courses-"))
    root.chmod(0o755)
    (root / "data").mkdir()
    write_sample_data(root / "data")
    for path in [root / "data", *(root / "data").rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    config = root / "statbox.yaml"
    config.write_text(SETTINGS.format(project=name, root=root, repo=REPO))
    env = {**os.environ, "DOCKER_HOST": engine.host}
    names = DockerNames(name)
    try:
        yield Project(root, config, names, engine.client, images.tags["singleuser"], env)
    finally:
        remove_project(engine, name)
        shutil.rmtree(root, ignore_errors=True)


def _listing(project: Project, user: str) -> dict[str, tuple[int, str]]:
    """{relative path: (uid, sha256)} of every file under courses/shop-prices in the volume."""
    out = project.as_jovyan(
        user,
        f"cd /home/jovyan/courses/{COURSE} && find . -type f -printf '%P %U ' "
        "-exec sha256sum {} \\; | cut -d' ' -f1-3",
    )
    listing = {}
    for line in out.splitlines():
        path, uid, digest = line.split(" ")
        listing[path] = (int(uid), digest)
    return listing


def test_publish_writes_each_trainees_volume_and_keeps_their_edits(project):
    result = project.statbox("course", "publish", COURSE, "--cohort", "cohort-test")
    assert f"volume {project.names.home_volume('alice')}" in result.stdout
    expected = set(material(load_course(SAMPLE)))
    listings = {user: _listing(project, user) for user in ("alice", "bob")}
    for user, listing in listings.items():
        assert set(listing) == expected, user  # grader/ never reaches a trainee
        assert {uid for uid, _ in listing.values()} == {1000}, user
        volume = project.client.volumes.get(project.names.home_volume(user))
        assert volume.attrs["Labels"][USER_LABEL] == user
    # The exercise is personalised (each their own variant); the lesson is the same.
    assert listings["alice"][EXERCISE] != listings["bob"][EXERCISE]
    lesson = "01-lesson.ipynb"
    assert listings["alice"][lesson] == listings["bob"][lesson]
    ledger = project.root / "state" / "courses" / "published" / "alice" / f"{COURSE}.json"
    assert json.loads(ledger.read_text())[lesson] == listings["alice"][lesson][1]

    # Alice edits the lesson; the course changes; publishing again keeps her edit.
    project.as_jovyan("alice", f"echo '{{}}' > /home/jovyan/courses/{COURSE}/{lesson}")
    again = project.statbox("course", "publish", COURSE, "--cohort", "cohort-test")
    assert "alice: " in again.stdout and "kept" not in again.stdout.split("bob:")[1]
    assert f"{lesson}: changed by alice: kept as they have it" in again.stdout
    after = _listing(project, "alice")
    assert project.as_jovyan("alice", f"cat /home/jovyan/courses/{COURSE}/{lesson}") == "{}\n"
    assert set(after) == set(listings["alice"])  # no look-alike beside her edit
    assert _listing(project, "bob") == listings["bob"]  # nothing to change there
    assert project.containers(HELPER_LABEL) == []


def test_publish_refuses_a_planted_link_and_writes_nowhere(project):
    project.statbox("course", "publish", COURSE, "--cohort", "cohort-test")
    # Alice lost her exercise copy: publishing would write it again ...
    project.as_jovyan("alice", f"rm /home/jovyan/courses/{COURSE}/{EXERCISE}")
    before = _listing(project, "alice")
    assert EXERCISE not in before
    # ... but bob has planted a link where the lesson goes.
    lesson = f"/home/jovyan/courses/{COURSE}/01-lesson.ipynb"
    project.as_jovyan("bob", f"rm {lesson} && ln -s /etc/passwd {lesson}")
    result = project.statbox("course", "publish", COURSE, "--cohort", "cohort-test", check=2)
    assert "01-lesson.ipynb is not a regular file" in result.stderr, result.stderr
    assert project.names.home_volume("bob") in result.stderr
    assert "Traceback" not in result.stderr
    assert _listing(project, "alice") == before  # checked everywhere before any write
    project.as_jovyan("bob", f"rm {lesson}")  # bob moves it away: publishing works again
    project.statbox("course", "publish", COURSE, "--cohort", "cohort-test")
    assert EXERCISE in _listing(project, "alice")
    assert "root:" not in project.as_jovyan("bob", f"cat {lesson}")
    assert project.containers(HELPER_LABEL) == []


def test_collect_from_volumes_refuses_hostile_content(project, tmp_path):
    project.statbox("course", "publish", COURSE, "--cohort", "cohort-test")
    names, client = project.names, project.client
    exercise = f"/home/jovyan/courses/{COURSE}/{EXERCISE}"
    project.as_jovyan("alice", f"echo '# alice was here' >> {exercise}")
    alice = project.as_jovyan("alice", f"cat {exercise}")
    # bob links his copy to alice's (where the collecting helper mounts her home) ...
    project.as_jovyan(
        "bob", f"rm {exercise} && ln -s /homes/alice/courses/{COURSE}/{EXERCISE} {exercise}"
    )
    # ... carol's is far too large, dave has none, and one volume lies about its user.
    labels = {PROJECT_LABEL: names.project}
    client.volumes.create(names.home_volume("carol"), labels={**labels, USER_LABEL: "carol"})
    client.volumes.create(names.home_volume("dave"), labels={**labels, USER_LABEL: "dave"})
    client.volumes.create(names.home_volume("mallory"), labels={**labels, USER_LABEL: "alice"})
    project.as_jovyan(
        "carol",
        f"mkdir -p $(dirname {exercise}) && head -c 25000000 /dev/zero > {exercise}",
    )
    out = tmp_path / "collected"
    # The collecting helper itself (a trainee's Submit reads their copy through it) ...
    result = VolumeSubmissions(client, names, project.image).collect(COURSE, EXERCISE, out)
    assert sorted(p.name for p in out.iterdir()) == ["alice.ipynb"]
    assert (out / "alice.ipynb").read_text() == alice
    refused = "\n".join(result.refused)
    assert "bob: courses/shop-prices/exercise/exercise.ipynb: a symbolic link" in refused
    assert "carol: courses/shop-prices/exercise/exercise.ipynb: larger than" in refused
    assert f"volume {names.home_volume('mallory')}: its user label 'alice'" in refused
    assert (result.copied, len(result.missing), len(result.refused)) == (["alice"], 1, 3)
    # ... and the classroom's path: submit, then collect the cohort's snapshots.
    project.statbox("course", "submit", COURSE, "--as", "alice")
    refusal = project.statbox("course", "submit", COURSE, "--as", "bob", check=2)
    assert "a symbolic link" in refusal.stderr and "Traceback" not in refusal.stderr
    snapshots = tmp_path / "snapshots"
    project.statbox(
        "certify", "collect", "--course", COURSE, "--cohort", "cohort-test", "--out", str(snapshots)
    )
    assert sorted(p.name for p in snapshots.iterdir()) == ["alice.ipynb"]
    assert (snapshots / "alice.ipynb").read_text() == alice
    assert project.containers(HELPER_LABEL) == []


def _with_code(cell_source: str) -> bytes:
    """The solution with the first answer cell (task 1) replaced by ``cell_source``."""
    nb = json.loads(SOLUTION.read_text())
    nb["cells"][4]["source"] = cell_source
    return json.dumps(nb).encode()


def _created_since(client: Any, since: float, label: str) -> list[str]:
    events = client.events(
        since=int(since),
        until=int(time.time()) + 1,
        decode=True,
        filters={"type": "container", "event": "create", "label": label},
    )
    return [event["id"] for event in events]


def test_grading_in_containers_without_network_and_within_memory(project, tmp_path):
    write_secret(project.root / "state")
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    notebooks = {
        "alice": SOLUTION.read_bytes(),
        "bob": SOLUTION.read_bytes(),
        "netty": _with_code(
            "import socket\n"
            "answer = socket.create_connection(('192.0.2.1', 80), timeout=5).recv(64)\n"
            "total = int(answer)"
        ),
        "probe": _with_code(
            "import os, socket\n"
            "print('uid', os.getuid())\n"
            "print('socket', os.path.exists('/var/run/docker.sock'))\n"
            "print('interfaces', ','.join(sorted(n for _, n in socket.if_nameindex())))\n"
            "total = sum(values)"
        ),
        # Reads a dataset no exercise declares and one only analysts may read.
        "snoop": _with_code(
            "import os\n"
            "root = os.path.join(os.environ['STATBOX_DATA_ROOT'], 'scanner')\n"
            "for name in ('shop_stock/stock.csv', 'shop_margins/margins.csv'):\n"
            "    try:\n"
            "        print(open(os.path.join(root, name)).read())\n"
            "    except OSError as exc:\n"
            "        print('refused', name, type(exc).__name__)\n"
            "print('listing', sorted(os.listdir(root)))\n"
            "total = sum(values)"
        ),
        "hog": _with_code(
            "hoard = []\nwhile True:\n    hoard.append(b'x' * (32 * 1024**2))\ntotal = 0"
        ),
    }
    for trainee, content in notebooks.items():
        (submissions / f"{trainee}.ipynb").write_bytes(content)
    out = tmp_path / "out"
    started = time.time() - 1
    result = project.statbox(
        "certify", "run", "--course", COURSE, "--exercise", EXERCISE, "--workers", "2",
        "--submissions", str(submissions), "--out", str(out), "--quiet",
    )  # fmt: skip
    assert "isolation: docker (a container per kernel" in result.stdout
    with open(out / "results.csv") as handle:
        rows = {row["trainee"]: row for row in csv.DictReader(handle)}
    for name in ("alice", "bob"):
        assert (rows[name]["score"], rows[name]["passed"]) == ("10", "yes"), rows[name]
    # No network: the connection fails at once, so task 1 is lost; the rest is right.
    assert (rows["netty"]["score"], rows["netty"]["passed"]) == ("6", "yes"), rows["netty"]
    graded = (out / "graded" / "netty.ipynb").read_text()
    assert "Network is unreachable" in graded
    # The kernel runs as a grading uid, with no engine socket and only a loopback interface.
    probe = (out / "graded" / "probe.ipynb").read_text()
    assert rows["probe"]["score"] == "10", rows["probe"]
    uid = int(probe.split("uid ")[1].split("\\n")[0])
    assert uid >= 200000
    assert "socket False" in probe and "interfaces lo" in probe
    # Only the declared dataset the trainee role may read is mounted, not the data root.
    snoop = (out / "graded" / "snoop.ipynb").read_text()
    assert rows["snoop"]["score"] == "10", rows["snoop"]
    assert SECRET_MARKER not in snoop
    assert "refused shop_stock/stock.csv" in snoop and "refused shop_margins/margins.csv" in snoop
    assert "listing ['shop_prices']" in snoop
    # The memory hog is killed by its container's limit, before any answer: a failure.
    assert (rows["hog"]["score"], rows["hog"]["passed"]) == ("0", "no"), rows["hog"]
    assert "out of memory" in rows["hog"]["reason"], rows["hog"]
    # Every container the grader started (one per kernel, at least one per trainee) is gone.
    created = _created_since(project.client, started, GRADING_LABEL)
    assert len(created) >= len(notebooks)
    for container_id in created:
        with pytest.raises(docker.errors.NotFound):
            project.client.containers.get(container_id)
    assert project.containers(GRADING_LABEL) == []
