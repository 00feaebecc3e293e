"""Docker mode's courses and grading without an engine: the helper containers' plan,
configuration and results, what is taken back from a collecting helper, which volumes
count as homes, and the grading container's configuration.

The helper's own side (``statbox.modes.docker.volumes.main``) is the real Publisher; here it runs
on a temporary folder standing for the mounted home.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from statbox.certify.isolation import Job, Limits
from statbox.cli.certify import grading_setup
from statbox.contract import PROJECT_LABEL, USER_LABEL, DockerNames
from statbox.errors import EnvironmentProblem
from statbox.modes.docker.collect import home_volumes, take_copies
from statbox.modes.docker.grading import (
    GRADING_LABEL,
    SANDBOX_IN_CONTAINER,
    container_config,
    in_container_limits,
)
from statbox.modes.docker.volumes import (
    HELPER_LABEL,
    RESULT_MARK,
    clean_ledger,
    helper_command,
    helper_container_config,
    helper_result,
    main,
    package_sources,
    parse_applied,
    payload_archive,
)
from statbox.settings.model import LoadedSettings

DIGEST = "ab" * 32


def _payload(tmp_path: Path, mode: str, files: dict[str, bytes], ledger: dict[str, str]) -> Path:
    """Unpack what the host would put into the helper, as the helper finds it."""
    plan = {"mode": mode, "user": "alice", "course": "c1", "files": sorted(files), "ledger": ledger}
    archive = payload_archive(
        [("plan.json", json.dumps(plan).encode()), *((f"files/{k}", v) for k, v in files.items())]
    )
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp_path / "unpacked")  # our own archive (3.11.2 has no filter=)
    return tmp_path / "unpacked" / "statbox-helper"


def _result(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    result = helper_result(capsys.readouterr().out)
    assert result is not None
    return result


def test_the_helper_publishes_then_keeps_an_edit(tmp_path, capsys):
    home = tmp_path / "home"
    home.mkdir()
    files = {"01-lesson.ipynb": b"lesson v1\n", "data/x.csv": b"a,b\n"}
    payload = _payload(tmp_path, "apply", files, {})
    assert main(str(payload), str(home), str(tmp_path / "scratch")) == 0
    first = _result(capsys)
    assert sorted(tuple(p) for p in first["published"]) == [
        ("01-lesson.ipynb", "new", None),
        ("data/x.csv", "new", None),
    ]
    assert (home / "courses" / "c1" / "data" / "x.csv").read_bytes() == b"a,b\n"
    # The trainee edits the lesson; a new version comes with the ledger the host kept.
    (home / "courses" / "c1" / "01-lesson.ipynb").write_bytes(b"mine\n")
    files["01-lesson.ipynb"] = b"lesson v2\n"
    payload = _payload(tmp_path / "2", "apply", files, first["ledger"])
    assert main(str(payload), str(home), str(tmp_path / "scratch2")) == 0
    second = {p[0]: p for p in _result(capsys)["published"]}
    assert second["01-lesson.ipynb"][1] == "kept"
    assert second["data/x.csv"][1] == "unchanged"
    assert (home / "courses" / "c1" / "01-lesson.ipynb").read_bytes() == b"mine\n"
    assert sorted(p.name for p in (home / "courses" / "c1").iterdir()) == [
        "01-lesson.ipynb",
        "data",
    ]


def test_the_helper_checks_without_writing(tmp_path, capsys):
    home = tmp_path / "home"
    (home / "courses" / "c1").mkdir(parents=True)
    (home / "courses" / "c1" / "01-lesson.ipynb").symlink_to("/etc/passwd")
    payload = _payload(tmp_path, "apply", {"01-lesson.ipynb": b"x", "new.txt": b"y"}, {})
    assert main(str(payload), str(home), str(tmp_path / "scratch")) == 2
    result = _result(capsys)
    assert "published" not in result
    assert len(result["problems"]) == 1 and "not a regular file" in result["problems"][0]
    assert not (home / "courses" / "c1" / "new.txt").exists()


def test_payload_archive_is_root_owned_and_readable():
    archive = payload_archive([("plan.json", b"{}"), ("files/a/b.txt", b"x")])
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name: m for m in tar}
    assert set(members) == {
        "statbox-helper",
        "statbox-helper/plan.json",
        "statbox-helper/files",
        "statbox-helper/files/a",
        "statbox-helper/files/a/b.txt",
    }
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())
    assert members["statbox-helper/files/a"].isdir()
    assert members["statbox-helper/files/a/b.txt"].mode == 0o644


def test_the_helper_runs_this_statboxs_code_isolated():
    names = [name for name, _ in package_sources()]
    assert "src/statbox/modes/docker/volumes.py" in names
    assert "src/statbox/courses/publish.py" in names
    assert not any("__pycache__" in name for name in names)
    command = helper_command("statbox.modes.docker.volumes")
    assert command[:3] == ["/opt/statbox/bin/python", "-I", "-B"]
    assert "/tmp/statbox-helper/src" in command[-1]


def test_helper_container_has_no_network_capability_or_root():
    config = helper_container_config(
        "img", "kigali", "publish", {"kigali-home-alice": {"bind": "/home/jovyan"}}, ["true"]
    )
    assert config["network_mode"] == "none"
    assert config["cap_drop"] == ["ALL"]
    assert config["security_opt"] == ["no-new-privileges"]
    assert config["user"] == "1000:1000"
    assert config["labels"] == {PROJECT_LABEL: "kigali", HELPER_LABEL: "publish"}
    assert list(config["volumes"]) == ["kigali-home-alice"]
    assert config["pids_limit"] and config["mem_limit"]


def test_helper_result_takes_the_last_marked_line_only():
    out = f'noise\n{RESULT_MARK}{{"a": 1}}\n{RESULT_MARK}{{"b": 2}}\n'
    assert helper_result(out) == {"b": 2}
    assert helper_result("nothing here\n") is None
    assert helper_result(f"{RESULT_MARK}not json\n") is None
    assert helper_result(f"{RESULT_MARK}[1, 2]\n") is None


def test_what_the_helper_reports_is_checked_against_the_plan():
    done = parse_applied("alice", {"published": [["a.txt", "new", None]]}, ["a.txt"])
    assert [(p.user, p.path, p.outcome.value) for p in done] == [("alice", "a.txt", "new")]
    with pytest.raises(EnvironmentProblem, match="unplanned file"):
        parse_applied("alice", {"published": [["../../etc/x", "new", None]]}, ["a.txt"])
    ledger = {"a.txt": DIGEST, "b.txt": DIGEST, "c.txt": "not-a-digest", "d.txt": 5}
    assert clean_ledger(ledger, ["a.txt", "c.txt", "d.txt"]) == {"a.txt": DIGEST}
    assert clean_ledger(["a.txt"], ["a.txt"]) == {}


def _tar(entries: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """name, content (None: a directory) or a link target."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data, link in entries:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            elif data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_only_well_formed_copies_are_taken_back(tmp_path):
    archive = _tar(
        [
            ("statbox-out", None, None),
            ("statbox-out/alice.ipynb", b"{}", None),
            ("statbox-out/bob.ipynb", None, "/etc/shadow"),
            ("statbox-out/carol.ipynb", b"x" * 101, None),
            ("statbox-out/eve.ipynb", b"{}", None),  # not a trainee the helper copied
            ("statbox-out/sub/dave.ipynb", b"{}", None),
            ("statbox-out/frank.txt", b"{}", None),
        ]
    )
    trainees = {"alice", "bob", "carol", "dave", "frank"}
    assert take_copies(archive, trainees, 100, tmp_path) == ["alice"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice.ipynb"]


@dataclass
class Volume:
    """What home_volumes reads of a Docker volume: its name and attributes."""

    name: str
    attrs: dict[str, Any] = field(default_factory=dict)


def test_home_volumes_are_those_whose_label_matches_their_name():
    names = DockerNames("kigali")

    def volume(name: str, user: str | None) -> Volume:
        labels = {PROJECT_LABEL: "kigali", **({USER_LABEL: user} if user else {})}
        return Volume(name, {"Labels": labels})

    homes, refused = home_volumes(
        [
            volume(names.home_volume("alice"), "alice"),
            volume(names.home_volume("a.b"), "a.b"),
            volume(names.db_volume, None),
            volume(names.home_volume("mallory"), "alice"),
            volume(names.home_volume("x"), "../x"),
        ],
        names,
    )
    assert homes == {"a.b": names.home_volume("a.b"), "alice": names.home_volume("alice")}
    assert len(refused) == 2 and all("does not match" in line for line in refused)


def test_grading_container_is_cut_off_and_capped(tmp_path):
    data = tmp_path / "data"
    (data / "ais").mkdir(parents=True)
    (data / "mobile").mkdir()
    limits = Limits(memory=512 * 1024**2, processes=80, workdir=64 * 1024**2)
    job = Job.create(3, limits, scratch=tmp_path, data_root=data, datasets=[data / "ais"])
    job.catalog.write_text("{}")
    job.env = {"STATBOX_CATALOG": str(job.catalog)}
    config = container_config(job, "img", 200003, 200003, ["k"], {GRADING_LABEL: "r"})
    assert config["network_mode"] == "none"
    assert config["mem_limit"] == config["memswap_limit"] == 512 * 1024**2
    assert config["pids_limit"] == 80
    assert config["user"] == "200003:200003"
    assert config["cap_drop"] == ["ALL"] and config["read_only"] is True
    assert config["security_opt"] == ["no-new-privileges"]
    assert "uid=200003" in config["tmpfs"][str(job.workdir)]
    assert "size=67108864" in config["tmpfs"]["/tmp"]
    volumes = config["volumes"]
    modes = {source: spec["mode"] for source, spec in volumes.items()}
    # An allow-list: the IPC folder the only bind written to (at the grader's own path, so the
    # sockets' paths agree), the declared dataset alone, never the data root or the job root.
    assert modes[str(job.root / "ipc")] == "rw"
    assert [source for source, mode in modes.items() if mode == "rw"] == [str(job.root / "ipc")]
    assert volumes[str(data / "ais")] == {"bind": str(data / "ais"), "mode": "ro"}
    assert str(data) not in volumes and str(data / "mobile") not in volumes
    assert str(job.root) not in volumes
    assert volumes[str(job.catalog)]["mode"] == "ro"
    assert SANDBOX_IN_CONTAINER in {spec["bind"] for spec in volumes.values()}
    assert not any("docker.sock" in source for source in volumes)
    job.remove()


def test_the_container_limits_replace_address_space_and_per_uid_caps():
    limits = in_container_limits(Limits().rlimits())
    assert "as" not in limits and "nproc" not in limits
    assert {"fsize", "cpu", "nofile", "core"} <= set(limits)


def test_docker_isolation_gets_the_trainee_image_and_project(loaded):
    settings = loaded.settings.model_copy(
        update={
            "certify": loaded.settings.certify.model_copy(update={"isolation": "docker"}),
        }
    )
    setup = grading_setup(LoadedSettings(settings, loaded.source, loaded.paths))
    trainee_image = settings.images[settings.roles.trainee.images[0]].image
    assert setup.isolation == "docker"
    assert setup.isolation_options == {
        "image": trainee_image,
        "project": settings.docker.project,
    }
    assert grading_setup(loaded).isolation_options == {}
