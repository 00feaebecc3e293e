"""Who sees and mounts what: the access rule per role and group, the filtered notebook view."""

from __future__ import annotations

import pytest

from statbox.catalog import open_catalog
from statbox.catalog.access import entitled_data_paths, entitled_entries
from statbox.settings.model import load_settings
from tests.catalog.conftest import ROOT_CATALOG

pytestmark = pytest.mark.catalog

RESTRICTED = "mobile_phone.events"


@pytest.fixture(scope="module")
def settings():
    return load_settings(None, {"roles": {"trainee": {"data": {"levels": ["public"]}}}}).settings


@pytest.mark.parametrize(
    ("role", "groups", "sees_restricted", "sees_registered"),
    [
        ("trainee", [], False, False),
        ("trainee", ["mobile-data-analysts"], True, False),
        ("instructor", [], False, True),
        ("analyst", [], True, True),
        ("admin", [], True, True),
    ],
)
def test_entitlement_by_role_and_group(settings, role, groups, sees_restricted, sees_registered):
    entries = {e.name: e for e in entitled_entries(settings, role, groups, ROOT_CATALOG)}
    paths = entitled_data_paths(settings, role, groups, ROOT_CATALOG)
    assert (RESTRICTED in entries) is sees_restricted
    assert ("mobile_phone/events" in paths) is sees_restricted
    assert ("scanner.transactions" in entries) is sees_registered
    assert "sdg.indicators" in entries
    assert paths == sorted(e.data_path for e in entries.values())
    assert all("/" in p and not p.startswith("/") and ".." not in p for p in paths)


def test_role_settings_can_name_restricted_entries(settings):
    named = load_settings(
        None, {"roles": {"instructor": {"data": {"restricted": [RESTRICTED]}}}}
    ).settings
    entries = {e.name: e for e in entitled_entries(named, "instructor", [], ROOT_CATALOG)}
    assert entries[RESTRICTED].reason == "named in roles.instructor.data.restricted"
    assert entries[RESTRICTED].level == "restricted"


def test_open_catalog_applies_the_users_environment(samples, monkeypatch):
    monkeypatch.setenv("STATBOX_CATALOG", str(ROOT_CATALOG))
    monkeypatch.setenv("STATBOX_DATA_ROOT", str(samples))
    monkeypatch.delenv("STATBOX_CONFIG", raising=False)
    monkeypatch.setenv("STATBOX_ROLE", "trainee")
    monkeypatch.delenv("STATBOX_GROUPS", raising=False)
    trainee = open_catalog()
    assert RESTRICTED not in list(trainee)
    with pytest.raises(KeyError):
        trainee[RESTRICTED]
    assert len(trainee["sdg.indicators"].read()) > 1000
    monkeypatch.setenv("STATBOX_GROUPS", "cohort-a,mobile-data-analysts")
    assert RESTRICTED in list(open_catalog())
    monkeypatch.setenv("STATBOX_ROLE", "analyst")
    monkeypatch.delenv("STATBOX_GROUPS")
    assert len(open_catalog()[RESTRICTED].read()) > 0


def test_open_catalog_follows_the_access_the_spawner_passes(samples, monkeypatch):
    """A deployment's own role settings reach the server by environment, not the defaults."""
    monkeypatch.setenv("STATBOX_CATALOG", str(ROOT_CATALOG))
    monkeypatch.setenv("STATBOX_DATA_ROOT", str(samples))
    monkeypatch.delenv("STATBOX_CONFIG", raising=False)
    monkeypatch.delenv("STATBOX_GROUPS", raising=False)
    monkeypatch.setenv("STATBOX_ROLE", "trainee")
    monkeypatch.setenv("STATBOX_DATA_LEVELS", "public")
    monkeypatch.setenv("STATBOX_DATA_RESTRICTED", RESTRICTED)
    names = list(open_catalog())
    assert RESTRICTED in names
    assert "scanner.transactions" not in names  # registered, and this trainee sees public only
    assert "sdg.indicators" in names
