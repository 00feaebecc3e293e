"""The chart tier: the real Helm template engine (helm-python-sdk) on helm/statbox.

No cluster and no chart repository are reachable here, so the zero-to-jupyterhub and
dask-gateway dependencies are rendered disabled; the values we hand them are checked against
what those charts document instead (upstream_keys.yaml). Marker: ``chart``. Without
helm-python-sdk or kubernetes-validate the tier skips, and fails under ``CI=true``.

Fixtures and helpers:
- ``chart``: the loaded chart (session-wide).
- ``render(values)``: rendered manifests by template path, dependencies disabled unless the
  values enable them; raises the engine's own errors.
- ``values_file(name)``: a values file of the chart as data (``values-brazil.yaml``, ...).
- ``REGIONS``: the regional values files.
- ``helm_merge(base, override)``: values merged the way Helm merges values files.
- ``container_environment(extra_env, secrets)``: the variables Kubernetes gives a container
  for zero-to-jupyterhub's ``extraEnv`` notation, resolving ``secretKeyRef`` like the kubelet.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, require_tool

CHART_DIR = REPO / "helm" / "statbox"
REGIONS = ("brazil", "china", "rwanda", "uae")
RELEASE = "statbox"
NAMESPACE = "statbox-test"


def _import_tools() -> Any:
    try:
        import helm_python
        import kubernetes_validate  # noqa: F401
    except ImportError:
        return None
    return helm_python


@pytest.fixture(scope="session")
def helm() -> Any:
    module = _import_tools()
    require_tool("helm-python-sdk and kubernetes-validate", module is not None)
    module.disable_logging()
    return module


@pytest.fixture(scope="session")
def chart(helm: Any) -> Any:
    return helm.Chart.load(CHART_DIR)


def values_file(name: str) -> dict[str, Any]:
    return yaml.safe_load((CHART_DIR / name).read_text())


def without_dependencies(values: dict[str, Any]) -> dict[str, Any]:
    values = copy.deepcopy(values)
    for dependency in ("jupyterhub", "dask-gateway"):
        values.setdefault(dependency, {}).setdefault("enabled", False)
    return values


@pytest.fixture
def render(chart: Any) -> Callable[..., dict[str, str]]:
    def _render(values: dict[str, Any] | None = None) -> dict[str, str]:
        return chart.render(without_dependencies(values or {}), name=RELEASE, namespace=NAMESPACE)

    return _render


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object rendered (NOTES.txt is text for the operator, not an object)."""
    objects = []
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def find(rendered: dict[str, str], kind: str, name: str) -> dict[str, Any]:
    return next(
        o for o in manifests(rendered) if o["kind"] == kind and o["metadata"]["name"] == name
    )


def helm_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base`` as Helm merges values: maps merge, a null deletes the key,
    anything else (lists included) replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class MissingSecretKey(LookupError):
    """A non-optional secretKeyRef names a key that is not there: Kubernetes would refuse to
    start the container (CreateContainerConfigError)."""


def container_environment(
    extra_env: dict[str, Any], secrets: dict[str, dict[str, str]]
) -> dict[str, str]:
    """The environment of a container from ``extraEnv`` (name -> value or EnvVar source), with
    ``secrets`` as name -> decoded data: a missing optional key sets no variable."""
    env: dict[str, str] = {}
    for name, entry in extra_env.items():
        if not isinstance(entry, dict):
            env[name] = str(entry)
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        value = secrets.get(ref["name"], {}).get(ref["key"])
        if value is not None:
            env[name] = value
        elif not ref.get("optional", False):
            raise MissingSecretKey(f"{name}: Secret {ref['name']} has no key {ref['key']}")
    return env
