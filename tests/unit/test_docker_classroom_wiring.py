"""Docker mode's wiring of the classroom service: the hub container's folders (their owner,
what is and is not mounted), the grading scratch, and the grading backend it picks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from statbox.classroom.setup import service_isolation
from statbox.contract import DOCKER_GRADING_SCRATCH
from statbox.modes.docker.hubfolders import HUB_FOLDERS, HUB_UID, give_to_hub
from statbox.modes.docker.stack import COMPOSE_FILE, parse_compose
from statbox.settings.model import parse_settings
from tests.unit.test_docker_mode import VARIABLES, configured, docker_runtime  # noqa: F401

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


@needs_root
def test_the_hubs_folders_and_all_in_them_become_the_hubs(tmp_path):
    state = tmp_path / "state"
    (state / "classroom" / "people").mkdir(parents=True)
    (state / "classroom" / "people" / "alice.json").write_text("{}")  # written by root's CLI
    (state / "secrets").mkdir()
    (state / "secrets" / "db_password").write_text("x")
    give_to_hub(state)
    for name in HUB_FOLDERS:
        folder = state / name
        assert folder.stat().st_uid == HUB_UID and folder.stat().st_mode & 0o777 == 0o700, name
    assert (state / "classroom" / "people" / "alice.json").stat().st_uid == HUB_UID
    # the other secrets stay the operator's: the hub gets them as variables
    assert (state / "secrets").stat().st_uid == 0
    assert (state / "secrets" / "db_password").stat().st_uid == 0


@needs_root
def test_a_link_planted_in_a_hub_folder_gives_nothing_away(tmp_path):
    """The hub (uid 990) may write its folders; `statbox up` runs as root: a link there to a
    root file, or a folder swapped for a link, must not make root give that file away."""
    outside = tmp_path / "shadow"
    outside.write_text("root's")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    state = tmp_path / "state"
    (state / "classroom").mkdir(parents=True)
    (state / "classroom" / "link").symlink_to(outside)
    (state / "classroom" / "dirlink").symlink_to(elsewhere)
    give_to_hub(state)
    assert outside.stat().st_uid == 0 and elsewhere.stat().st_uid == 0
    assert (state / "classroom" / "link").lstat().st_uid == HUB_UID
    # a hub folder that is itself a link is refused, before anything is changed through it
    (state / "certify").rename(tmp_path / "old-certify")
    (state / "certify").symlink_to(elsewhere)
    with pytest.raises(Exception, match="must be a folder"):
        give_to_hub(state)
    assert elsewhere.stat().st_uid == 0


def test_the_hub_gets_the_classrooms_folders_and_no_other_secret():
    stack = parse_compose(COMPOSE_FILE.read_text(), VARIABLES, publish=False)
    hub = next(s for s in stack.services if s.key == "hub")
    state = VARIABLES["STATBOX_STATE_DIR"]
    for name in HUB_FOLDERS:
        assert f"{state}/{name}:{state}/{name}" in hub.binds, name
    sources = [bind.split(":")[0] for bind in hub.binds]
    assert f"{state}/secrets" not in sources and state not in sources
    assert [s for s in sources if s.startswith(f"{state}/secrets")] == [f"{state}/secrets/certify"]
    # nobody else gets them
    for service in stack.services:
        if service.key != "hub":
            assert not any(
                b.startswith((f"{state}/classroom", f"{state}/secrets")) for b in service.binds
            )


def test_the_classroom_grades_in_containers_from_a_scratch_at_its_host_path(docker_runtime):  # noqa: F811
    (classroom,) = [
        s for s in configured(docker_runtime).JupyterHub.services if s["name"] == "classroom"
    ]
    scratch = Path(classroom["environment"]["TMPDIR"])
    assert scratch == docker_runtime.paths.state_dir / DOCKER_GRADING_SCRATCH
    assert service_isolation(docker_runtime.settings) == "docker"
    chosen = parse_settings({"mode": "docker", "certify": {"isolation": "sandbox"}})
    assert service_isolation(chosen) == "sandbox"  # the operator's choice stands
    assert service_isolation(parse_settings({})) == "auto"  # local mode: unchanged
