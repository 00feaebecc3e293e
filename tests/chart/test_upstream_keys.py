"""The values we hand zero-to-jupyterhub and dask-gateway use only keys those charts document.

The charts cannot be downloaded here, so their schemas cannot validate our values at render
time. Instead upstream_keys.yaml lists each key path we rely on with where its chart documents
it (read from the charts' published values schema and templates); every values file of ours
must stay within that list, so a typo or an invented key fails here, not in a cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CHART_DIR, REGIONS, values_file

pytestmark = pytest.mark.chart

DOCUMENTED = yaml.safe_load((Path(__file__).with_name("upstream_keys.yaml")).read_text())
FILES = ["values.yaml", *(f"values-{region}.yaml" for region in REGIONS)]


def key_paths(node: Any, prefix: str = "") -> list[str]:
    """Dotted paths to every leaf; a list is a leaf (native objects or plain values)."""
    if isinstance(node, dict) and (node or not prefix):
        paths = []
        for key, value in node.items():
            paths.extend(key_paths(value, f"{prefix}{key}."))
        return paths
    return [prefix.rstrip(".")]


def undocumented(paths: list[str], documented: dict[str, str]) -> list[str]:
    exact = {key for key in documented if not key.endswith(".*")}
    subtrees = [key.removesuffix("*") for key in documented if key.endswith(".*")]
    return [p for p in paths if p not in exact and not any(p.startswith(s) for s in subtrees)]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("dependency", ["jupyterhub", "dask-gateway"])
def test_values_use_only_documented_keys(name, dependency):
    values = values_file(name).get(dependency, {})
    documented = DOCUMENTED[dependency]["keys"]
    assert undocumented(key_paths(values), documented) == []


def test_every_documented_key_says_where_and_is_used():
    used = {
        dependency: {p for name in FILES for p in key_paths(values_file(name).get(dependency, {}))}
        for dependency in DOCUMENTED
    }
    for dependency, entry in DOCUMENTED.items():
        assert entry["source"]
        for key, where in entry["keys"].items():
            assert where.strip(), key
            prefix = key.removesuffix("*")
            assert any(p == key or p.startswith(prefix) for p in used[dependency]), (
                f"{dependency}.{key} is listed but no values file uses it: drop it"
            )


def test_an_invented_key_would_be_caught():
    invented = {"hub": {"extraConfigs": {"x": "typo"}, "config": {"Anything": {"goes": 1}}}}
    # hub.config is not used at all: sign-in, its main use upstream, is statbox.auth's
    assert undocumented(key_paths(invented), DOCUMENTED["jupyterhub"]["keys"]) == [
        "hub.extraConfigs.x",
        "hub.config.Anything.goes",
    ]


def test_chart_dir_has_the_values_files_tested():
    assert sorted(p.name for p in CHART_DIR.glob("values*.yaml")) == sorted(FILES)
