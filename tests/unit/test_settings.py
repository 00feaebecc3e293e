"""The settings model: defaults, a realistic file, every invalid case, the schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from statbox.resources import resource
from statbox.settings.model import (
    ROLE_NAMES,
    Mode,
    SettingsError,
    deep_merge,
    load_settings,
    parse_settings,
    settings_schema,
)
from statbox.settings.units import format_memory, parse_duration, parse_memory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "settings"
INVALID = sorted((FIXTURES / "invalid").glob("*.yaml"))


def test_defaults_need_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    loaded = load_settings()
    s = loaded.settings
    assert s.mode is Mode.local
    assert s.default_role == "trainee"
    assert s.roles.trainee.server.memory == 2 * 1024**3
    assert s.roles.trainee.dask.max_workers < s.roles.analyst.dask.max_workers
    assert s.roles.trainee.dask.idle_timeout == 30 * 60
    # without a file, relative paths resolve against the current directory
    assert loaded.paths.state_dir == tmp_path / ".statbox"
    # ... except a catalog and curriculum that are not there: then the ones Statbox ships
    assert loaded.paths.catalog == (resource("catalogs") / "statbox.yaml").resolve()
    assert loaded.paths.curriculum == resource("curriculum").resolve()
    assert loaded.paths.catalog.is_file()
    assert (loaded.paths.curriculum / "getting-started" / "course.yaml").is_file()


def test_a_catalog_and_curriculum_here_are_used_before_the_shipped_ones(tmp_path, monkeypatch):
    (tmp_path / "catalogs").mkdir()
    (tmp_path / "catalogs" / "statbox.yaml").write_text("")
    (tmp_path / "curriculum").mkdir()
    monkeypatch.chdir(tmp_path)
    loaded = load_settings()
    assert loaded.paths.catalog == tmp_path / "catalogs" / "statbox.yaml"
    assert loaded.paths.curriculum == tmp_path / "curriculum"


def test_a_catalog_named_in_the_file_never_falls_back(tmp_path):
    settings = tmp_path / "statbox.yaml"
    settings.write_text("paths:\n  catalog: elsewhere/statbox.yaml\n")
    loaded = load_settings(settings)
    assert loaded.paths.catalog == tmp_path / "elsewhere" / "statbox.yaml"
    assert loaded.paths.curriculum == resource("curriculum").resolve()


def test_regional_file_merges_over_defaults():
    loaded = load_settings(FIXTURES / "valid-regional.yaml")
    s = loaded.settings
    assert s.hub.region == "Rwanda regional hub"
    assert s.hub.port == 8080
    # given keys change, siblings keep their defaults
    assert s.roles.trainee.server.memory == 1024**3
    assert s.roles.trainee.server.cpu == 1
    assert s.roles.trainee.dask.idle_timeout == 20 * 60
    assert s.roles.analyst.dask.max_workers == 6
    assert s.roles.analyst.dask.max_worker_cores == 4
    # lists replace: the instructor role now names only ines
    assert s.roles.instructor.users == ["ines"]
    # relative paths resolve against the file's directory, absolute ones stay
    # not set, and no catalogs/ beside the file: the shipped catalog
    assert loaded.paths.catalog == (resource("catalogs") / "statbox.yaml").resolve()
    assert loaded.paths.state_dir == Path("/var/lib/statbox")


def _expectation(path: Path) -> tuple[str, str]:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: KEY | TEXT'"
    where, text = first.removeprefix("# expect: ").split(" | ", 1)
    return where, text


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_settings_file(path: Path):
    where, text = _expectation(path)
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    problems = caught.value.problems
    assert len(problems) == 1, [str(p) for p in problems]
    problem = problems[0]
    assert problem.source == str(path)
    if where.startswith("line "):
        assert problem.line == int(where.removeprefix("line "))
    else:
        assert problem.key == where
        assert problem.line is not None
        assert str(problem).startswith(f"{path}:{problem.line}: {where}: ")
    assert text in problem.message


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as caught:
        parse_settings(
            {"mode": "cloud", "hub": {"port": -1}, "roles": {"trainee": {"server": {"cpu": 0}}}}
        )
    keys = sorted(p.key for p in caught.value.problems)
    assert keys == ["hub.port", "mode", "roles.trainee.server.cpu"]


def test_secrets_never_appear_in_messages():
    with pytest.raises(SettingsError) as caught:
        parse_settings({"auth": {"user_password": "hunter2"}})
    assert "hunter2" not in str(caught.value)


def test_deep_merge_leaves_inputs_alone():
    base = {"a": {"b": 1, "c": [1]}}
    override = {"a": {"c": [2]}}
    assert deep_merge(base, override) == {"a": {"b": 1, "c": [2]}}
    assert base == {"a": {"b": 1, "c": [1]}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2G", 2 * 1024**3), ("512Mi", 512 * 1024**2), ("1.5GiB", int(1.5 * 1024**3)), (100, 100)],
)
def test_memory_units(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["2X", "", "-1G", True, None, [1]])
def test_memory_refuses(bad):
    with pytest.raises(ValueError, match="memory size"):
        parse_memory(bad)


def test_memory_round_trips():
    for size in (2 * 1024**3, 512 * 1024**2, 3 * 1024**4, 1000):
        assert parse_memory(format_memory(size)) == size


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), (60, 60)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_schema_documents_every_key_and_accepts_partial_files():
    schema = settings_schema()
    assert set(schema["properties"]) == {
        "hub",
        "mode",
        "auth",
        "default_role",
        "groups",
        "cohorts",
        "images",
        "roles",
        "paths",
        "local",
        "kubernetes",
        "docker",
        "certify",
        "indicators",
    }
    assert "required" not in json.dumps(schema)
    role = schema["$defs"]["Role"]["properties"]
    assert "stopped" in role["idle_timeout"]["description"]
    assert set(schema["$defs"]["Roles"]["properties"]) == set(ROLE_NAMES)


def test_schema_validates_files_like_the_model(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schema = settings_schema()
    jsonschema.validate({"roles": {"trainee": {"server": {"memory": "1G"}}}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"roles": {"trainee": {"server": {"memory": "lots"}}}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"hubb": {}}, schema)
