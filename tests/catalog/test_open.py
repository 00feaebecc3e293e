"""Opening a catalog is cheap and checks nothing less: what it leaves out, and when it catches up.

Opening (``open_catalog`` in a user server) imports neither pydantic nor the settings model:
entries' access is checked at once, the rest of their metadata on first use, and the role's
access comes from the built-in defaults read plainly. These tests hold the light copies to
what they copy, and the lazy checks to running before any data is read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from statbox.catalog import CatalogError, load_catalog, open_catalog
from statbox.catalog.access import RoleAccess, builtin_role_access
from statbox.catalog.levels import LEVELS
from statbox.catalog.loader import read_catalog
from statbox.errors import BadInput
from statbox.settings.model import ROLE_NAMES, load_settings
from tests.catalog.conftest import ROOT_CATALOG
from tests.conftest import REPO

pytestmark = pytest.mark.catalog

MISSING_LICENCE = REPO / "tests" / "fixtures" / "catalogs" / "invalid" / "missing-licence.yaml"

OPEN_IN_A_USER_SERVER = """
import json, sys
from statbox.catalog import open_catalog
catalog = open_catalog()
opened = sorted(m for m in {modules} if m in sys.modules)
rows = len(catalog["sdg.indicators"].read())
used = sorted(m for m in {modules} if m in sys.modules)
print(json.dumps({{"entries": sorted(catalog), "opened": opened, "used": used, "rows": rows}}))
"""
LAZY = ["pydantic", "statbox.settings.model", "statbox.catalog.metadata"]


def test_opening_in_a_user_server_imports_no_model_until_an_entry_is_used(samples):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATBOX_")}
    env |= {
        "STATBOX_CATALOG": str(ROOT_CATALOG),
        "STATBOX_DATA_ROOT": str(samples),
        "STATBOX_ROLE": "trainee",
    }
    out = subprocess.run(
        [sys.executable, "-c", OPEN_IN_A_USER_SERVER.format(modules=LAZY)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=True,
    )
    seen = json.loads(out.stdout)
    assert seen["opened"] == []
    assert seen["used"] == ["pydantic", "statbox.catalog.metadata"]  # validated on first use
    defaults = load_settings(None).settings
    expected = open_catalog(ROOT_CATALOG, role="trainee", groups=[], settings=defaults)
    assert seen["entries"] == sorted(expected)
    assert "mobile_phone.events" not in seen["entries"]
    assert seen["rows"] > 1000


@pytest.mark.parametrize("role", [*ROLE_NAMES, None])
def test_builtin_role_access_is_what_the_validated_defaults_say(role):
    settings = load_settings(None).settings
    expected = RoleAccess.of(settings, role or settings.default_role)
    assert builtin_role_access(role) == expected
    assert expected.levels <= set(LEVELS)


def test_an_unknown_role_is_bad_input_either_way():
    with pytest.raises(BadInput, match="'auditor' is not one of"):
        builtin_role_access("auditor")
    with pytest.raises(BadInput, match="'auditor' is not one of"):
        RoleAccess.of(load_settings(None).settings, "auditor")
    with pytest.raises(BadInput, match="'auditor' is not one of"):
        open_catalog(ROOT_CATALOG, data_root=REPO, role="auditor", groups=[])


def test_metadata_is_validated_on_first_use_and_whole_by_read_catalog(samples):
    with pytest.raises(CatalogError, match="licence: required, and missing"):
        read_catalog(MISSING_LICENCE, samples)
    catalog = load_catalog(MISSING_LICENCE, samples)
    assert list(catalog) == ["sdg.indicators"]
    entry = catalog.info.entries["sdg.indicators"]
    assert entry.access.level == "public"
    with pytest.raises(CatalogError) as caught:
        catalog["sdg.indicators"]
    assert [str(p) for p in caught.value.problems] == [str(p) for p in entry.metadata_problems()]
    assert all(p.source == str(MISSING_LICENCE) and p.line for p in caught.value.problems)
    with pytest.raises(CatalogError):  # still refused: the check is not used up by failing
        catalog["sdg.indicators"]
