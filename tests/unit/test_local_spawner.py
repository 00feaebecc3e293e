"""What local mode binds into a user's sandbox: their catalog and the course material.

The sandbox itself is attacked in tests/sandbox and, on a real stack, in
tests/integration/test_local_isolation.py; here, the two allow-lists it is given.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from statbox.catalog import load_catalog
from statbox.settings.model import parse_settings
from statbox.spawners.local import course_material, entitlement, user_catalog
from tests.conftest import REPO

CATALOG = REPO / "catalogs" / "statbox.yaml"
RESTRICTED = "mobile_phone.events"
SETTINGS = parse_settings({"groups": {"analysts": ["ana"]}})


def test_a_trainees_catalog_lists_only_her_entries_and_still_loads(tmp_path: Path) -> None:
    document = user_catalog(SETTINGS, "trainee", [], CATALOG)
    assert RESTRICTED not in document["entries"]
    assert not any(key.startswith(RESTRICTED) for key in document["data"])
    assert RESTRICTED not in document["aliases"]
    assert "sdg.indicators" in document["entries"]
    own = tmp_path / "alice.yaml"
    own.write_text(yaml.safe_dump(document, sort_keys=False))
    loaded = load_catalog(own, REPO / "data")
    assert RESTRICTED not in loaded.entries and "sdg.indicators" in loaded.entries


def test_an_analysts_catalog_has_the_restricted_entry() -> None:
    document = user_catalog(SETTINGS, "analyst", ["analysts"], CATALOG)
    assert RESTRICTED in document["entries"]
    assert f"{RESTRICTED}.files" in document["data"]


def test_course_material_never_includes_a_grader_folder() -> None:
    given = course_material(REPO / "curriculum")
    assert given, "the curriculum has courses"
    assert not any("grader" in path.parts for path in given)
    assert REPO / "curriculum" / "rural-access-index" / "course.yaml" in given
    assert REPO / "curriculum" / "rural-access-index" / "exercise" in given


def test_a_trainee_gets_neither_analyst_only_courses_nor_the_authors_readme() -> None:
    curriculum = REPO / "curriculum"
    assert (curriculum / "README.md").is_file()
    trainee = course_material(curriculum, "trainee")
    analyst = course_material(curriculum, "analyst")
    assert not any(p.parent.name == "mobile-phone-population" for p in trainee)
    assert any(p.parent.name == "mobile-phone-population" for p in analyst)
    assert curriculum / "ais-port-calls" / "course.yaml" in trainee
    assert curriculum / "README.md" not in trainee + analyst


def test_missing_curriculum_gives_nothing(tmp_path: Path) -> None:
    assert course_material(tmp_path / "absent") == []


def test_an_entitlement_is_worked_out_once_and_matches_the_catalog_rule() -> None:
    first = entitlement(SETTINGS, "trainee", [], CATALOG)
    assert entitlement(SETTINGS, "trainee", [], CATALOG) is first
    assert yaml.safe_load(first.catalog) == user_catalog(SETTINGS, "trainee", [], CATALOG)
    assert "mobile_phone/events" not in first.data_paths
    assert "mobile_phone/events" in entitlement(SETTINGS, "analyst", [], CATALOG).data_paths
