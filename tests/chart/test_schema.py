"""values.schema.json is generated from the settings model, and kept in step with it."""

from __future__ import annotations

import json

import pytest

from statbox.cli import main
from statbox.modes.kubernetes.chart import helm_values_schema, render_schema
from statbox.settings.model import settings_schema

from .conftest import CHART_DIR

SCHEMA_FILE = CHART_DIR / "values.schema.json"

pytestmark = pytest.mark.chart


def test_committed_schema_equals_a_fresh_generation():
    assert SCHEMA_FILE.read_text() == render_schema(), (
        "helm/statbox/values.schema.json is stale: "
        "run `statbox helm schema --write helm/statbox/values.schema.json`"
    )


def test_statbox_key_is_the_settings_model(chart):
    generated = helm_values_schema()
    settings = settings_schema()
    assert set(generated["properties"]["statbox"]["properties"]) == set(settings["properties"])
    assert generated["$defs"].keys() == settings["$defs"].keys()
    assert chart.schema == json.loads(SCHEMA_FILE.read_text())


def test_a_changed_model_makes_the_check_fail(tmp_path, capsys, monkeypatch):
    stale = json.loads(render_schema())
    del stale["$defs"]["KubernetesSettings"]["properties"]["request_fraction"]
    target = tmp_path / "values.schema.json"
    target.write_text(json.dumps(stale))
    assert main(["helm", "schema", "--check", str(target)]) == 2
    err = capsys.readouterr().err
    assert f"{target}: not generated from the current settings model" in err
    assert main(["helm", "schema", "--write", str(target)]) == 0
    assert main(["helm", "schema", "--check", str(target)]) == 0
