"""The chart with the real Helm engine: lint, render, Kubernetes schemas, and what it wires.

Each case renders helm/statbox with the dependencies disabled, for the default values and for
each regional file, and checks the objects and the configuration the hub and gateway pods get.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from traitlets.config import Config, PyFileConfigLoader

from statbox.hub import configure_hub
from statbox.kubernetes import USER_LABEL, user_label_value
from statbox.runtime import load_runtime
from statbox.settings import parse_settings

from .conftest import CHART_DIR, NAMESPACE, REGIONS, find, manifests, values_file

pytestmark = pytest.mark.chart

CASES = ["values.yaml", *(f"values-{region}.yaml" for region in REGIONS)]
MISSING_DEPENDENCIES = "chart directory is missing these dependencies: jupyterhub,dask-gateway"


def case_values(name: str) -> dict:
    return {} if name == "values.yaml" else values_file(name)


@pytest.mark.parametrize("name", CASES)
def test_lint_is_clean(helm, name):
    """No error and no warning but the dependencies this machine cannot download."""
    values = case_values(name)
    values.setdefault("jupyterhub", {})["enabled"] = False
    values.setdefault("dask-gateway", {})["enabled"] = False
    report = helm.lint(CHART_DIR, values, kube_version="v1.30.0")
    assert report["errors"] == []
    problems = [m["error"] for m in report["messages"] if m["severity"] >= 2]
    assert problems == [MISSING_DEPENDENCIES]


@pytest.mark.parametrize("name", CASES)
def test_every_manifest_validates_against_kubernetes_schemas(render, name):
    import kubernetes_validate

    objects = manifests(render(case_values(name)))
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == ["ConfigMap", "NetworkPolicy", "Role", "RoleBinding", "Secret"]
    for version in ("1.30.0", kubernetes_validate.latest_version()):
        for obj in objects:
            kubernetes_validate.validate(obj, version, strict=True)
    assert all(o["metadata"]["labels"]["app.kubernetes.io/name"] == "statbox" for o in objects)


@pytest.mark.parametrize("name", CASES)
def test_settings_handed_to_the_hub_are_valid_kubernetes_settings(render, name):
    config = find(render(case_values(name)), "ConfigMap", "statbox-config")["data"]
    settings = parse_settings(json.loads(config["statbox.json"]), source=name)
    assert settings.mode.value == "kubernetes"
    runtime = json.loads(config["runtime.json"])
    assert runtime["settings"] == json.loads(config["statbox.json"])
    assert config["hub_config.py"] == (CHART_DIR.parent.parent / "hub_config.py").read_text()
    # every role can start a server with an image its role lists
    for role_name, role in settings.roles.items():
        assert all(image in settings.images for image in role.images), role_name


@pytest.mark.parametrize("region", REGIONS)
def test_regional_file_is_its_own_deployment(render, region):
    """Its own identity provider, language, tiers and data location, not the defaults'."""
    values = values_file(f"values-{region}.yaml")
    hub_config = values["jupyterhub"]["hub"]["config"]
    assert hub_config["JupyterHub"]["authenticator_class"] != (
        "statbox.auth.StatboxSharedPasswordAuthenticator"
    )
    assert hub_config["Authenticator"]["allow_all"] is False  # the provider's groups decide
    provider = next(v for k, v in hub_config.items() if k.endswith("OAuthenticator"))
    assert provider["oauth_callback_url"].startswith("https://")
    assert "LANG" in values["jupyterhub"]["singleuser"]["extraEnv"]
    config = find(render(values), "ConfigMap", "statbox-config")["data"]
    settings = parse_settings(json.loads(config["statbox.json"]))
    defaults = parse_settings({})
    assert settings.hub.region and settings.hub.name != defaults.hub.name
    assert settings.kubernetes.data_claim
    assert settings.roles.analyst.server != defaults.roles.analyst.server


def test_regions_differ_from_each_other():
    tiers = {
        region: json.dumps(values_file(f"values-{region}.yaml")["statbox"]["roles"], sort_keys=True)
        for region in REGIONS
    }
    assert len(set(tiers.values())) == len(REGIONS)


def test_identity_provider_settings_are_real_traits(helm):
    """hub.config is passed to traitlets as is: every key must be a trait of its class."""
    from jupyterhub.app import JupyterHub
    from jupyterhub.auth import Authenticator
    from oauthenticator.azuread import AzureAdOAuthenticator
    from oauthenticator.generic import GenericOAuthenticator
    from oauthenticator.github import GitHubOAuthenticator

    classes = {
        cls.__name__: cls
        for cls in (
            JupyterHub,
            Authenticator,
            GenericOAuthenticator,
            GitHubOAuthenticator,
            AzureAdOAuthenticator,
        )
    }
    for name in CASES:
        values = values_file(name)
        for section, traits in values["jupyterhub"]["hub"]["config"].items():
            known = classes[section].class_traits(config=True)
            unknown = sorted(set(traits) - set(known))
            assert unknown == [], f"{name}: jupyterhub.hub.config.{section}: {unknown}"


def test_images_follow_the_app_version(chart):
    app = chart.metadata["appVersion"]
    values = values_file("values.yaml")
    hub, gateway = values["jupyterhub"], values["dask-gateway"]
    assert hub["hub"]["image"] == {"name": "statbox/hub", "tag": app}
    assert hub["singleuser"]["image"] == {"name": "statbox/singleuser", "tag": app}
    assert gateway["gateway"]["image"]["tag"] == app
    assert gateway["controller"]["image"]["tag"] == app
    assert gateway["gateway"]["backend"]["image"] == {"name": "statbox/singleuser", "tag": app}
    assert values["statbox"]["images"]["datascience"]["image"] == f"statbox/singleuser:{app}"


def test_dependencies_are_pinned_with_conditions():
    # read the file: rendering with a dependency disabled drops it from the loaded chart
    metadata = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    deps = {d["name"]: d for d in metadata["dependencies"]}
    assert set(deps) == {"jupyterhub", "dask-gateway"}
    for name, dep in deps.items():
        assert dep["condition"] == f"{name}.enabled"
        assert all(part.isdigit() for part in dep["version"].split(".")), dep
    assert deps["dask-gateway"]["version"] == "2026.3.0"  # the dask-gateway our images carry


# ------------------------------------------------------------------------ secrets


def _secret(rendered: dict) -> dict[str, str]:
    data = find(rendered, "Secret", "statbox-secrets")["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def test_secrets_given_explicitly_are_used(render):
    token = "t" * 64
    secret = _secret(render({"secrets": {"gatewayApiToken": token, "userPassword": "class-pass"}}))
    assert secret["gateway-api-token"] == token
    assert secret["user-password"] == "class-pass"


def test_secrets_not_given_are_generated_long_enough_and_differ(render):
    first, second = _secret(render()), _secret(render())
    assert len(first["gateway-api-token"]) == 64
    assert len(first["user-password"]) >= 8
    assert len(first["admin-password"]) >= 32
    assert first["user-password"] != first["admin-password"]
    # offline, `lookup` finds no stored Secret: each render generates anew
    assert first["gateway-api-token"] != second["gateway-api-token"]


def test_secret_and_config_names_match_what_the_subcharts_are_told(render):
    values = values_file("values.yaml")
    hub_env = values["jupyterhub"]["hub"]["extraEnv"]
    keys = set(_secret(render()))
    for variable in ("STATBOX_GATEWAY_TOKEN", "STATBOX_USER_PASSWORD", "STATBOX_ADMIN_PASSWORD"):
        ref = hub_env[variable]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "statbox-secrets" and ref["key"] in keys
    auth = values["dask-gateway"]["gateway"]["auth"]["jupyterhub"]
    assert auth["apiTokenFromSecretName"] == "statbox-secrets"
    assert auth["apiTokenFromSecretKey"] in keys
    config = find(render(), "ConfigMap", "statbox-config")["data"]
    [env] = values["dask-gateway"]["gateway"]["env"]
    assert env["valueFrom"]["configMapKeyRef"]["key"] in config
    items = values["jupyterhub"]["hub"]["extraVolumes"][0]["configMap"]["items"]
    assert {item["key"] for item in items} <= set(config)


def test_passwords_never_reach_the_configmap(render):
    # the schema refuses them in statbox:, and the template drops them even unvalidated
    config = find(render(), "ConfigMap", "statbox-config")["data"]
    assert "password" not in config["statbox.json"]


# ------------------------------------------------------------------------ the pods' configuration


def _hub_config_from_chart(rendered: dict, tmp_path: Path, secrets: dict[str, str]) -> Config:
    """Load the hub's configuration as the hub pod does: hub.extraConfig's snippet runs
    hub_config.py from the ConfigMap, which reads runtime.json and the Secret's variables."""
    data = find(rendered, "ConfigMap", "statbox-config")["data"]
    (tmp_path / "runtime.json").write_text(data["runtime.json"])
    (tmp_path / "hub_config.py").write_text(data["hub_config.py"])
    snippet = values_file("values.yaml")["jupyterhub"]["hub"]["extraConfig"]["statbox"]
    main = tmp_path / "jupyterhub_config.py"
    main.write_text(snippet.replace("/etc/statbox", str(tmp_path)))
    env = {"STATBOX_RUNTIME": str(tmp_path / "runtime.json"), **secrets}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        return PyFileConfigLoader(main.name, path=str(tmp_path)).load_config()


def test_hub_pod_configuration(render, tmp_path):
    secrets = {"STATBOX_GATEWAY_TOKEN": "g" * 64}
    c = _hub_config_from_chart(render(values_file("values-rwanda.yaml")), tmp_path, secrets)
    assert c.JupyterHub.spawner_class == "statbox.spawners.kubernetes.StatboxKubeSpawner"
    # zero-to-jupyterhub owns addresses, database and the authenticator: Statbox leaves them
    for trait in ("db_url", "ip", "port", "hub_ip", "authenticator_class"):
        assert trait not in c.JupyterHub, trait
    assert "command" not in c.ConfigurableHTTPProxy
    assert c.Spawner.cmd == ["python3", "-m", "statbox.singleuser"]
    # zero-to-jupyterhub would set its own command from singleuser.cmd: the chart unsets it
    assert values_file("values.yaml")["jupyterhub"]["singleuser"]["cmd"] is None
    gateway = next(s for s in c.JupyterHub.services if s["name"] == "dask-gateway")
    assert gateway == {
        "name": "dask-gateway",
        "url": "http://traefik-dask-gateway",
        "api_token": "g" * 64,
        "display": False,
    }
    env = c.StatboxKubeSpawner.gateway_environment
    assert env["DASK_GATEWAY__ADDRESS"] == "http://traefik-dask-gateway/services/dask-gateway"
    assert env["DASK_GATEWAY__PROXY_ADDRESS"] == "gateway://traefik-dask-gateway:80"
    # Rwanda's trainees are idle-culled after 45 minutes
    cullers = {s["name"]: s for s in c.JupyterHub.services if s["name"].startswith("idle")}
    assert "--timeout=2700" in cullers["idle-culler-trainee"]["command"]
    # no password in the environment: the chart's OAuth provider is the authenticator
    assert "user_password" not in c.StatboxSharedPasswordAuthenticator


def test_hub_pod_with_the_default_class_password(render, tmp_path):
    secrets = {
        "STATBOX_GATEWAY_TOKEN": "g" * 64,
        "STATBOX_USER_PASSWORD": "class-pass",
        "STATBOX_ADMIN_PASSWORD": "a" * 40,
    }
    c = _hub_config_from_chart(render(), tmp_path, secrets)
    assert c.StatboxSharedPasswordAuthenticator.user_password == "class-pass"
    assert c.StatboxSharedPasswordAuthenticator.admin_password == "a" * 40
    rt = load_runtime(
        {"STATBOX_RUNTIME": str(tmp_path / "runtime.json"), "STATBOX_GATEWAY_TOKEN": "x" * 64}
    )
    again = Config()
    configure_hub(again, rt)
    assert again.JupyterHub.spawner_class == c.JupyterHub.spawner_class


def test_gateway_pod_configuration(render, monkeypatch):
    """gateway.extraConfig's snippet, with $STATBOX_SETTINGS from the ConfigMap."""
    rendered = render(values_file("values-brazil.yaml"))
    settings_json = find(rendered, "ConfigMap", "statbox-config")["data"]["statbox.json"]
    monkeypatch.setenv("STATBOX_SETTINGS", settings_json)
    snippet = values_file("values.yaml")["dask-gateway"]["gateway"]["extraConfig"]["statbox"]
    c = Config()
    exec(compile(snippet, "gateway.extraConfig.statbox", "exec"), {"c": c})
    assert c.DaskGateway.authenticator_class == "statbox.gateway.HubTokenAuthenticator"
    assert c.JupyterHubAuthenticator.jupyterhub_service_name == "dask-gateway"
    assert c.ClusterConfig.scheduler_cmd == ["dask", "scheduler"]
    analyst = SimpleNamespace(name="ana", groups=["statbox-analistas"])
    options = c.Backend.cluster_options(analyst)
    config = options.get_configuration(options.parse_options({"worker_cores": 4}), analyst)
    assert config["cluster_max_workers"] == 16  # Brazil's analysts
    assert config["worker_extra_pod_labels"] == {USER_LABEL: user_label_value("ana")}
    assert config["scheduler_extra_pod_labels"] == {USER_LABEL: user_label_value("ana")}
    trainee = SimpleNamespace(name="tina", groups=["statbox-alunos"])
    with pytest.raises(ValueError, match="worker_cores"):
        c.Backend.cluster_options(trainee).parse_options({"worker_cores": 4})


def test_dask_pods_and_user_pods_are_confined_by_the_values():
    values = values_file("values.yaml")
    backend = values["dask-gateway"]["gateway"]["backend"]
    for component in ("scheduler", "worker"):
        pod = backend[component]["extraPodConfig"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        container = backend[component]["extraContainerConfig"]["securityContext"]
        assert container == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert values["dask-gateway"]["traefik"]["service"]["type"] == "ClusterIP"
    egress = values["jupyterhub"]["singleuser"]["networkPolicy"]["egress"]
    assert egress == [
        {
            "to": [
                {
                    "podSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/name": "dask-gateway",
                            "app.kubernetes.io/component": "traefik",
                        }
                    }
                }
            ]
        }
    ]


def test_dask_cluster_policy_admits_only_the_gateway(render):
    policy = find(render(), "NetworkPolicy", "statbox-dask-clusters")["spec"]
    assert policy["podSelector"]["matchLabels"]["gateway.dask.org/instance"] == "dask-gateway"
    assert policy["policyTypes"] == ["Ingress"]
    [rule] = policy["ingress"]
    [source] = rule["from"]
    assert source["podSelector"]["matchExpressions"] == [
        {
            "key": "app.kubernetes.io/component",
            "operator": "In",
            "values": ["gateway", "controller", "traefik"],
        }
    ]
    assert "ports" not in rule and "namespaceSelector" not in source


def test_hub_may_manage_network_policies_and_nothing_else(render):
    rendered = render()
    role = find(rendered, "Role", "statbox-hub-dask-networkpolicies")
    assert role["rules"] == [
        {
            "apiGroups": ["networking.k8s.io"],
            "resources": ["networkpolicies"],
            "verbs": ["get", "create", "update"],
        }
    ]
    binding = find(rendered, "RoleBinding", "statbox-hub-dask-networkpolicies")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "hub", "namespace": NAMESPACE}
    ]


def test_network_policies_can_be_turned_off(render):
    kinds = {o["kind"] for o in manifests(render({"networkPolicy": {"enabled": False}}))}
    assert kinds == {"ConfigMap", "Secret"}


def test_notes_tell_how_to_reach_the_hub(render):
    notes = render(values_file("values-rwanda.yaml"))["statbox/templates/NOTES.txt"]
    assert "Statbox Kigali" in notes
    assert f"--namespace {NAMESPACE} get secret statbox-secrets" in notes


# ------------------------------------------------------------------------ bad values


INVALID = sorted((Path(__file__).parent.parent / "fixtures" / "chart" / "invalid").glob("*.yaml"))


def _expected(fixture: Path) -> str:
    first = fixture.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{fixture.name} must start with '# expect: ...'"
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("fixture", INVALID, ids=[f.stem for f in INVALID])
def test_bad_values_are_refused_naming_the_key(helm, render, fixture):
    values = yaml.safe_load(fixture.read_text())
    with pytest.raises(helm.HelmError) as refused:
        render(values)
    message = str(refused.value)
    assert _expected(fixture) in message
    assert "Traceback" not in message and "goroutine" not in message


def test_there_is_an_invalid_fixture_per_rule():
    assert len(INVALID) >= 12
