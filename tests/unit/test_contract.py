"""The runtime document: what ``statbox up`` writes is what the hub loads, and the contract's
JSON schema says so (the Helm chart's writer is checked against it in tests/chart)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from statbox.configure.runtime import MissingEnvironment, load_runtime, write_runtime
from statbox.contract import RUNTIME_ENV, SECRET_ENV
from statbox.contract.runtime import runtime_schema


def test_the_written_document_matches_its_schema_and_loads_back(runtime, tmp_path):
    file = tmp_path / "run" / "runtime.json"
    write_runtime(file, runtime)
    document = json.loads(file.read_text())
    jsonschema.validate(document, runtime_schema())
    assert "user_password" not in json.dumps(document)  # secrets never travel in it
    env = {RUNTIME_ENV: str(file), SECRET_ENV["user_password"]: "x" * 12}
    loaded = load_runtime(env)
    assert loaded.ports == runtime.ports
    assert loaded.hosts == runtime.hosts
    assert loaded.proxy_command == runtime.proxy_command
    assert loaded.run_as == runtime.run_as
    assert loaded.paths == runtime.paths
    assert loaded.secret("user_password") == "x" * 12


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["ports"].pop("hub_api"),
        lambda d: d["ports"].update(hub_api=70000),
        lambda d: d.update(unknown=1),
        lambda d: d["hosts"].update(listen=5),
        lambda d: d.pop("python"),
    ],
    ids=["missing-port", "port-out-of-range", "unknown-key", "host-not-text", "no-python"],
)
def test_a_bad_document_is_refused_by_schema_and_loader_alike(runtime, tmp_path, change):
    file = tmp_path / "runtime.json"
    write_runtime(file, runtime)
    document = json.loads(file.read_text())
    change(document)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, runtime_schema())
    file.write_text(json.dumps(document))
    with pytest.raises(MissingEnvironment, match="not a runtime document"):
        load_runtime({RUNTIME_ENV: str(file)})
