"""The README's instructor and trainee tours, followed word for word on the shipped curriculum:
the operator's example settings, the instructor's commands as printed, each trainee's
commands with their own name. Each trainee gets one variant end to end: the one in the
notebook they open is the one the grader injects, and the reference solution scores full
marks under it."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from statbox.cli import main
from tests.conftest import REPO

pytestmark = [pytest.mark.certify, pytest.mark.usefixtures("sandbox")]

README = (REPO / "README.md").read_text()


def tour(name: str) -> list[list[str]]:
    """The ``statbox ...`` commands of the block after ``<!-- tour: name -->``."""
    match = re.search(rf"<!-- tour: {name} -->\s*```sh\n(.*?)```", README, re.S)
    assert match, f"README.md has no <!-- tour: {name} --> block"
    return [shlex.split(line)[1:] for line in match.group(1).splitlines() if line.strip()]


def operator_settings() -> dict:
    match = re.search(r"### Hub operator.*?```yaml\n(.*?)```", README, re.S)
    assert match, "README.md's hub operator tour has no settings example"
    return yaml.safe_load(re.sub(r"^   ", "", match.group(1), flags=re.M))


@pytest.fixture(scope="module")
def samples() -> Iterator[Path]:
    reuse = os.environ.get("STATBOX_TEST_SAMPLES")
    if reuse:
        yield Path(reuse)
        return
    root = Path(tempfile.mkdtemp(prefix="statbox-tour-data-"))
    subprocess.run(
        [sys.executable, "-m", "statbox.cli", "catalog", "samples", "--out", str(root)],
        check=True,
        capture_output=True,
    )
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_the_readme_tours_give_each_trainee_one_variant_end_to_end(
    tmp_path, samples, monkeypatch, capsys
):
    settings = operator_settings()
    settings["paths"] = {"state_dir": str(tmp_path / "state"), "data_root": str(samples)}
    (tmp_path / "statbox.yaml").write_text(yaml.safe_dump(settings))
    monkeypatch.chdir(tmp_path)  # ./statbox.yaml: the commands as printed, no --config
    instructor = tour("instructor")
    trainee = tour("trainee")
    state = tmp_path / "state"
    trainees = settings["groups"]["cohort-2026a"][:2]
    assert trainees == ["alice", "bob"]
    for user in trainees:  # a first server start makes their home
        (state / "homes" / user).mkdir(parents=True)

    assert main(instructor[0]) == 0  # publish
    solution = (REPO / "curriculum" / "ais-port-calls" / "grader" / "solution.ipynb").read_bytes()
    opened = {}
    for user in trainees:
        mine = [[user if arg == "alice" else arg for arg in argv] for argv in trainee]
        assert main(mine[0]) == 0  # open
        work = state / "homes" / user / "courses" / "ais-port-calls" / "exercise"
        notebook = json.loads((work / "port-calls-exercise.ipynb").read_text())
        opened[user] = notebook["metadata"]["papermill"]["parameters"]
        (work / "port-calls-exercise.ipynb").write_bytes(solution)  # the trainee's work
        assert main(mine[1]) == 0  # submit
    assert opened["alice"] != opened["bob"]
    capsys.readouterr()
    for argv in instructor[1:]:  # roster, grade, report, release
        assert main(argv) == 0, argv
    printed = capsys.readouterr().out
    assert "Released ais-port-calls results to 2 trainees of cohort-2026a" in printed

    [job] = (state / "classroom" / "gradings" / "cohort-2026a" / "ais-port-calls").iterdir()
    with open(job / "run" / "report.csv") as handle:
        rows = {row["trainee"]: row for row in csv.DictReader(handle)}
    for user in trainees:
        assert json.loads(rows[user]["variant"]) == opened[user], user
        assert (rows[user]["score"], rows[user]["passed"]) == ("100", "yes"), rows[user]
    assert sorted(p.name for p in (job / "run" / "certificates").glob("*.json")) == [
        "alice.json",
        "bob.json",
    ]
    assert main(trainee[2]) == 0  # alice's result
    out = capsys.readouterr().out
    assert out.startswith("ais-port-calls: 100 / 100, passed")
