"""The chart with the real Helm engine: lint, render, Kubernetes schemas, and what it wires.

Each case renders helm/statbox with the dependencies disabled, for the default values and for
each regional file, and checks the objects and the configuration the hub and gateway pods get.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
import yaml
from traitlets.config import Config, PyFileConfigLoader

from statbox.configure.hub import configure_hub
from statbox.configure.runtime import SECRET_ENV, load_runtime
from statbox.contract import KUBE_PROXY_PEERS
from statbox.contract import KUBE_USER_LABEL as USER_LABEL
from statbox.contract import kube_user_label_value as user_label_value
from statbox.contract.runtime import RuntimeDocument, runtime_schema
from statbox.identity.auth import StatboxOIDCAuthenticator
from statbox.settings.model import parse_settings

from .conftest import (
    CHART_DIR,
    NAMESPACE,
    REGIONS,
    RELEASE,
    MissingSecretKey,
    container_environment,
    find,
    helm_merge,
    manifests,
    values_file,
)

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
    assert kinds == [
        "ConfigMap",
        "NetworkPolicy",
        "NetworkPolicy",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
    ]
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
    jsonschema.validate(runtime, runtime_schema())  # the contract's runtime document
    assert RuntimeDocument.model_validate(runtime).settings == json.loads(config["statbox.json"])
    assert config["hub_config.py"] == (CHART_DIR.parent.parent / "hub_config.py").read_text()
    # every role can start a server with an image its role lists
    for role_name, role in settings.roles.items():
        assert all(image in settings.images for image in role.images), role_name


@pytest.mark.parametrize("region", REGIONS)
def test_regional_file_is_its_own_deployment(render, region):
    """Its own identity provider, language, tiers and data location, not the defaults'."""
    values = values_file(f"values-{region}.yaml")
    assert "config" not in values["jupyterhub"]["hub"]  # sign-in is statbox.auth's alone
    assert "LANG" in values["jupyterhub"]["singleuser"]["extraEnv"]
    config = find(render(values), "ConfigMap", "statbox-config")["data"]
    settings = parse_settings(json.loads(config["statbox.json"]))
    defaults = parse_settings({})
    assert settings.auth.type in ("oidc", "github")  # the provider's groups decide
    assert settings.hub.public_url and settings.hub.public_url.startswith("https://")
    assert settings.hub.region and settings.hub.name != defaults.hub.name
    assert settings.kubernetes.data_claim
    assert settings.roles.analyst.server != defaults.roles.analyst.server


def test_regions_differ_from_each_other():
    tiers = {
        region: json.dumps(values_file(f"values-{region}.yaml")["statbox"]["roles"], sort_keys=True)
        for region in REGIONS
    }
    assert len(set(tiers.values())) == len(REGIONS)


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

OIDC = {
    "hub": {"public_url": "https://statbox.rio.example"},
    "auth": {
        "type": "oidc",
        "issuer": "https://sso.rio.example/realms/estatistica",
        "client_id": "statbox-rio",
        "allowed_groups": ["statbox-alunos"],
    },
}


def _secret(rendered: dict) -> dict[str, str]:
    data = find(rendered, "Secret", "statbox-secrets")["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def test_secrets_given_explicitly_are_used(render):
    token = "t" * 64
    secret = _secret(render({"secrets": {"gatewayApiToken": token, "userPassword": "class-pass"}}))
    assert secret["gateway-api-token"] == token
    assert secret["user-password"] == "class-pass"
    secret = _secret(render({"statbox": OIDC, "secrets": {"oauthClientSecret": "issued"}}))
    assert secret["oauth-client-secret"] == "issued"


def test_secrets_not_given_are_generated_long_enough_and_differ(render):
    first, second = _secret(render()), _secret(render())
    assert len(first["gateway-api-token"]) == 64
    assert len(first["user-password"]) >= 8
    assert len(first["admin-password"]) >= 32
    assert first["user-password"] != first["admin-password"]
    # offline, `lookup` finds no stored Secret: each render generates anew
    assert first["gateway-api-token"] != second["gateway-api-token"]


@pytest.mark.parametrize(
    ("statbox", "secrets", "keys"),
    [
        ({}, {}, {"gateway-api-token", "user-password", "admin-password"}),
        (OIDC, {"oauthClientSecret": "issued"}, {"gateway-api-token", "oauth-client-secret"}),
        (OIDC, {"existingSecret": "statbox-oauth"}, {"gateway-api-token"}),
    ],
    ids=["shared-password", "oidc", "oidc-existing-secret"],
)
def test_the_secret_carries_exactly_what_the_sign_in_needs(render, statbox, secrets, keys):
    values = {"statbox": statbox, "secrets": secrets}
    if "existingSecret" in secrets:
        values["jupyterhub"] = {
            "hub": {"extraEnv": {"STATBOX_OAUTH_CLIENT_SECRET": _from("statbox-oauth")}}
        }
    assert set(_secret(render(values))) == keys


def _from(secret: str, key: str = "oauth-client-secret") -> dict:
    return {"valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": False}}}


def test_secret_and_config_names_match_what_the_subcharts_are_told(render):
    values = values_file("values.yaml")
    hub_env = values["jupyterhub"]["hub"]["extraEnv"]
    oidc = {"statbox": OIDC, "secrets": {"oauthClientSecret": "x"}}
    keys = set(_secret(render())) | set(_secret(render(oidc)))
    refs = {
        variable: entry["valueFrom"]["secretKeyRef"]
        for variable, entry in hub_env.items()
        if isinstance(entry, dict)
    }
    assert {variable: ref["key"] for variable, ref in refs.items()} == {
        "STATBOX_GATEWAY_TOKEN": "gateway-api-token",
        "STATBOX_USER_PASSWORD": "user-password",
        "STATBOX_ADMIN_PASSWORD": "admin-password",
        "STATBOX_OAUTH_CLIENT_SECRET": "oauth-client-secret",
    }
    # not the gateway encryption key (the chart's gateway keeps no database), docker mode's
    # database password, nor the proxy's token (zero-to-jupyterhub makes its own)
    assert set(refs) == set(SECRET_ENV.values()) - {
        "STATBOX_GATEWAY_ENCRYPT_KEY",
        "STATBOX_DB_PASSWORD",
        "STATBOX_PROXY_AUTH_TOKEN",
    }
    for variable, ref in refs.items():
        assert ref["name"] == "statbox-secrets" and ref["key"] in keys
        # only the gateway's token is always there; the sign-in's secrets depend on auth.type
        assert ref.get("optional", False) is (variable != "STATBOX_GATEWAY_TOKEN")
    auth = values["dask-gateway"]["gateway"]["auth"]["jupyterhub"]
    assert auth["apiTokenFromSecretName"] == "statbox-secrets"
    assert auth["apiTokenFromSecretKey"] in keys
    config = find(render(), "ConfigMap", "statbox-config")["data"]
    [env] = values["dask-gateway"]["gateway"]["env"]
    assert env["valueFrom"]["configMapKeyRef"]["key"] in config
    items = values["jupyterhub"]["hub"]["extraVolumes"][0]["configMap"]["items"]
    assert {item["key"] for item in items} <= set(config)


def test_secrets_never_reach_the_configmap(render):
    # the schema refuses them in statbox:, and the template drops them even unvalidated
    config = find(render(), "ConfigMap", "statbox-config")["data"]
    assert "password" not in config["statbox.json"]
    config = find(
        render({"statbox": OIDC, "secrets": {"oauthClientSecret": "issued-by-the-provider"}}),
        "ConfigMap",
        "statbox-config",
    )["data"]
    assert "issued-by-the-provider" not in json.dumps(config)


# ------------------------------------------------------------------------ the pods' configuration

OPERATOR_SECRET = "client-secret-from-the-operators-own-secret"
"""What the regional files' `statbox-oauth` Secret (made with kubectl beforehand) holds."""


def _hub_config_from_chart(
    name: str | dict, render, tmp_path: Path
) -> tuple[Config, dict[str, str]]:
    """Load the hub's configuration as the hub pod does, for values file ``name`` (or these
    values over values.yaml): hub.extraConfig's snippet runs hub_config.py from the ConfigMap,
    which reads runtime.json and the variables Kubernetes sets from hub.extraEnv. Returns the
    config and that environment."""
    values = case_values(name) if isinstance(name, str) else name
    rendered = render(values)
    secrets = {
        "statbox-secrets": _secret(rendered),
        "statbox-oauth": {"oauth-client-secret": OPERATOR_SECRET},
    }
    extra_env = helm_merge(values_file("values.yaml"), values)["jupyterhub"]["hub"]["extraEnv"]
    data = find(rendered, "ConfigMap", "statbox-config")["data"]
    for key in ("runtime.json", "hub_config.py"):
        (tmp_path / key).write_text(data[key])
    env = container_environment(extra_env, secrets)
    env["STATBOX_RUNTIME"] = str(tmp_path / "runtime.json")  # where the ConfigMap is mounted
    snippet = values_file("values.yaml")["jupyterhub"]["hub"]["extraConfig"]["statbox"]
    main = tmp_path / "jupyterhub_config.py"
    main.write_text(snippet.replace("/etc/statbox", str(tmp_path)))
    with pytest.MonkeyPatch.context() as patch:
        for variable in SECRET_ENV.values():
            patch.delenv(variable, raising=False)
        for key, value in env.items():
            patch.setenv(key, value)
        return PyFileConfigLoader(main.name, path=str(tmp_path)).load_config(), env


def test_hub_pod_configuration(render, tmp_path):
    c, _ = _hub_config_from_chart("values-rwanda.yaml", render, tmp_path)
    assert c.JupyterHub.spawner_class == "statbox.spawners.kubernetes.StatboxKubeSpawner"
    # zero-to-jupyterhub owns addresses, database and proxy: Statbox leaves them
    for trait in ("db_url", "ip", "port", "hub_ip", "cookie_secret_file"):
        assert trait not in c.JupyterHub, trait
    assert "command" not in c.ConfigurableHTTPProxy
    # zero-to-jupyterhub sets KubeSpawner.cmd from singleuser.cmd; the subclass's setting wins
    assert c.StatboxKubeSpawner.cmd == ["python3", "-m", "statbox.spawners.singleuser"]
    gateway = next(s for s in c.JupyterHub.services if s["name"] == "dask-gateway")
    token = _secret(render(values_file("values-rwanda.yaml")))["gateway-api-token"]
    # the `dask-gateway` service is the dashboards' front, in the hub's pod, guarding traefik
    assert gateway["url"] == "http://hub:8010" and gateway["display"] is False
    assert gateway["environment"]["STATBOX_DASHBOARDS_GATEWAY"] == "http://traefik-dask-gateway"
    assert len(gateway["api_token"]) == len(token) == 64
    env = c.StatboxKubeSpawner.gateway_environment
    assert env["DASK_GATEWAY__ADDRESS"] == "http://hub:8010/services/dask-gateway"
    assert env["DASK_GATEWAY__PROXY_ADDRESS"] == "gateway://traefik-dask-gateway:8786"
    # Rwanda's trainees are idle-culled after 45 minutes
    cullers = {s["name"]: s for s in c.JupyterHub.services if s["name"].startswith("idle")}
    assert "--timeout=2700" in cullers["idle-culler-trainee"]["command"]


def test_hub_pod_with_the_default_class_password(render, tmp_path):
    c, env = _hub_config_from_chart("values.yaml", render, tmp_path)
    assert (
        c.JupyterHub.authenticator_class
        == "statbox.identity.auth.StatboxSharedPasswordAuthenticator"
    )
    assert c.Authenticator.allow_all is True
    a = c.StatboxSharedPasswordAuthenticator
    # the passwords Kubernetes put in the environment, from the Secret the chart rendered
    assert a.user_password == env["STATBOX_USER_PASSWORD"] and len(a.user_password) >= 8
    assert a.admin_password == env["STATBOX_ADMIN_PASSWORD"] and len(a.admin_password) >= 32
    assert "STATBOX_OAUTH_CLIENT_SECRET" not in env
    rt = load_runtime({"STATBOX_RUNTIME": env["STATBOX_RUNTIME"], **env})
    again = Config()
    configure_hub(again, rt)
    assert again.JupyterHub.spawner_class == c.JupyterHub.spawner_class
    assert again.JupyterHub.authenticator_class == c.JupyterHub.authenticator_class


def test_the_hub_believes_forwarded_for_only_from_the_proxy_pods(render, tmp_path):
    """User pods reach the hub's API directly: X-Forwarded-For is believed only from the
    addresses of a headless Service that selects zero-to-jupyterhub's proxy pods of this
    release (tests/unit/test_hub_limits.py attacks the hub so configured)."""
    c, _ = _hub_config_from_chart("values.yaml", render, tmp_path)
    auth = c.StatboxSharedPasswordAuthenticator
    assert auth.forwarded_for_from == "proxy-host"
    assert auth.proxy_host == KUBE_PROXY_PEERS
    service = find(render(), "Service", KUBE_PROXY_PEERS)["spec"]
    # headless: the name resolves to the pods' own addresses, not to a virtual one
    assert service["clusterIP"] == "None"
    assert service["selector"] == {"app": "jupyterhub", "component": "proxy", "release": RELEASE}
    assert service["publishNotReadyAddresses"] is True


REGIONAL_SIGN_IN = {
    "brazil": ("StatboxOIDCAuthenticator", "statbox-alunos"),
    "china": ("StatboxOIDCAuthenticator", "trainees"),
    "rwanda": ("StatboxGitHubAuthenticator", "statbox-kigali:trainees"),
    "uae": ("StatboxOIDCAuthenticator", "Statbox-Trainees"),
}
"""Per region: the authenticator its statbox.auth chooses, and one group it admits."""


@pytest.mark.parametrize("region", REGIONS)
def test_hub_pod_signs_in_with_the_regions_provider(render, tmp_path, region):
    name = f"values-{region}.yaml"
    c, env = _hub_config_from_chart(name, render, tmp_path)
    auth = values_file(name)["statbox"]["auth"]
    public_url = values_file(name)["statbox"]["hub"]["public_url"]
    authenticator, member_group = REGIONAL_SIGN_IN[region]
    assert c.JupyterHub.authenticator_class == f"statbox.identity.auth.{authenticator}"
    a = c[authenticator]
    assert a.client_id == auth["client_id"]
    assert a.oauth_callback_url == f"{public_url}/hub/oauth_callback"
    # the client secret reached the hub from the operator's Secret, and no password did
    assert a.client_secret == OPERATOR_SECRET == env["STATBOX_OAUTH_CLIENT_SECRET"]
    assert not {"STATBOX_USER_PASSWORD", "STATBOX_ADMIN_PASSWORD"} & set(env)
    assert a.allow_all is False
    if authenticator == "StatboxGitHubAuthenticator":
        assert a.allowed_organizations == set(auth["allowed_organizations"])
        assert member_group in a.allowed_organizations
    else:
        assert a.issuer == auth["issuer"] and a.groups_claim == auth["groups_claim"]
        assert member_group in auth["allowed_groups"]
        # Entra ID's userinfo has no groups: that region reads the ID token instead
        assert a.userdata_from_id_token is (region == "uae")
        # the loaded authenticator admits a member of an allowed group, and no one else
        signed_in = StatboxOIDCAuthenticator(config=c)
        assert asyncio.run(signed_in.check_allowed("ana", {"groups": [member_group]}))
        assert not asyncio.run(signed_in.check_allowed("eve", {"groups": ["elsewhere"]}))


def test_gateway_pod_configuration(render, monkeypatch):
    """gateway.extraConfig's snippet, with $STATBOX_SETTINGS from the ConfigMap."""
    rendered = render(values_file("values-brazil.yaml"))
    settings_json = find(rendered, "ConfigMap", "statbox-config")["data"]["statbox.json"]
    monkeypatch.setenv("STATBOX_SETTINGS", settings_json)
    snippet = values_file("values.yaml")["dask-gateway"]["gateway"]["extraConfig"]["statbox"]
    c = Config()
    exec(compile(snippet, "gateway.extraConfig.statbox", "exec"), {"c": c})
    assert c.DaskGateway.authenticator_class == "statbox.configure.gateway.HubTokenAuthenticator"
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
    # user pods: the gateway's TLS entrypoint, and the dashboards' front in the hub's pod;
    # not the gateway's HTTP side (the API and every cluster's dashboard)
    egress = values["jupyterhub"]["singleuser"]["networkPolicy"]["egress"]
    traefik = {"app.kubernetes.io/name": "dask-gateway", "app.kubernetes.io/component": "traefik"}
    assert egress == [
        {
            "to": [{"podSelector": {"matchLabels": traefik}}],
            "ports": [{"port": 8786, "protocol": "TCP"}],
        },
        {
            "to": [{"podSelector": {"matchLabels": {"component": "hub"}}}],
            "ports": [{"port": 8010, "protocol": "TCP"}],
        },
    ]


@pytest.mark.parametrize("name", ["classroom", "indicators"])
def test_pages_services_are_hub_services_the_proxy_alone_reaches(name, render, tmp_path):
    """The classroom and the indicators run in the hub's pod (hub-managed services) on
    runtime.json's ports, which the hub Service opens and the hub pod admits from the proxy
    only (people come through the proxy; user pods have no business there)."""
    c, _ = _hub_config_from_chart("values-rwanda.yaml", render, tmp_path)
    runtime = json.loads(find(render(), "ConfigMap", "statbox-config")["data"]["runtime.json"])
    port = runtime["ports"][name]
    service = next(s for s in c.JupyterHub.services if s["name"] == name)
    assert service["url"] == f"http://hub:{port}"
    assert service["command"] == ["python3", "-m", f"statbox.{name}.web"]
    assert service["oauth_client_allowed_scopes"] == [f"access:services!service={name}"]
    hub = values_file("values.yaml")["jupyterhub"]["hub"]
    assert {"name": name, "port": port, "targetPort": port} in hub["service"]["extraPorts"]
    rules = [
        r
        for r in hub["networkPolicy"]["ingress"]
        if {"port": port, "protocol": "TCP"} in r["ports"]
    ]
    assert [rule["from"] for rule in rules] == [
        [{"podSelector": {"matchLabels": {"component": "proxy"}}}]
    ]
    # user pods may not reach it directly
    egress = values_file("values.yaml")["jupyterhub"]["singleuser"]["networkPolicy"]["egress"]
    assert all({"port": port, "protocol": "TCP"} not in rule["ports"] for rule in egress)


def test_gateway_http_side_admits_only_the_hub_pod(render):
    """The attack: a user's pod (or a Dask pod running a user's code) opens another user's
    dashboard on traefik's HTTP port, knowing only the cluster's name. Only the hub's pod,
    where the dashboards' front checks ownership, may reach it; user pods reach the TLS port."""
    policy = find(render(), "NetworkPolicy", "statbox-dask-gateway-proxy")["spec"]
    assert policy["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "dask-gateway",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": "traefik",
    }
    assert policy["policyTypes"] == ["Ingress"]
    by_port = {
        rule["ports"][0]["port"]: [src["podSelector"]["matchLabels"] for src in rule["from"]]
        for rule in policy["ingress"]
    }
    hub = {"app": "jupyterhub", "component": "hub"}
    assert by_port == {
        8000: [hub],
        8786: [hub, {"app": "jupyterhub", "component": "singleuser-server"}],
    }
    assert all(len(rule["ports"]) == 1 for rule in policy["ingress"])


def test_dashboards_front_port_is_one_number_everywhere(render):
    """runtime.json's ports.dashboards (where the hub starts the front and sends users),
    the hub Service's extra port, and the hub pod's ingress rule agree."""
    values = values_file("values.yaml")
    runtime = json.loads(find(render(), "ConfigMap", "statbox-config")["data"]["runtime.json"])
    port = runtime["ports"]["dashboards"]
    hub = values["jupyterhub"]["hub"]
    assert hub["service"]["extraPorts"][0] == {
        "name": "dask-dashboards",
        "port": port,
        "targetPort": port,
    }
    ingress = hub["networkPolicy"]["ingress"][0]
    assert ingress["ports"] == [{"port": port, "protocol": "TCP"}]
    assert ingress["from"][0]["podSelector"]["matchExpressions"] == [
        {"key": "component", "operator": "In", "values": ["proxy", "singleuser-server"]}
    ]
    # the schedulers' TLS entrypoint has a port of its own, and the settings point at it
    assert values["dask-gateway"]["traefik"]["service"]["ports"]["tcp"]["port"] == 8786
    assert runtime["ports"]["gateway_tcp"] == 8786
    assert values["statbox"]["kubernetes"]["gateway_proxy_address"].endswith(":8786")


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
    # the proxy peers Service stays: it is how the hub tells the proxy from user pods
    assert kinds == {"ConfigMap", "Secret", "Service"}


def test_notes_tell_how_to_reach_the_hub_and_sign_in(render):
    notes = render(values_file("values-rwanda.yaml"))["statbox/templates/NOTES.txt"]
    assert "Statbox Kigali" in notes
    assert "https://statbox.kigali.example/hub/oauth_callback" in notes
    assert "statbox-oauth Secret" in notes and "user-password" not in notes
    notes = render()["statbox/templates/NOTES.txt"]
    assert f"--namespace {NAMESPACE} get secret statbox-secrets" in notes
    assert "oauth_callback" not in notes


def test_hub_pod_with_a_client_secret_given_in_the_values(render, tmp_path):
    values = {"statbox": OIDC, "secrets": {"oauthClientSecret": "issued-for-statbox-rio"}}
    c, env = _hub_config_from_chart(values, render, tmp_path)
    assert c.JupyterHub.authenticator_class == "statbox.identity.auth.StatboxOIDCAuthenticator"
    assert c.StatboxOIDCAuthenticator.client_secret == "issued-for-statbox-rio"
    assert not {"STATBOX_USER_PASSWORD", "STATBOX_ADMIN_PASSWORD"} & set(env)


def test_hub_pod_without_the_operators_secret_would_not_start(render):
    values = values_file("values-brazil.yaml")
    extra_env = helm_merge(values_file("values.yaml"), values)["jupyterhub"]["hub"]["extraEnv"]
    secrets = {"statbox-secrets": _secret(render(values))}
    with pytest.raises(MissingSecretKey, match="statbox-oauth has no key oauth-client-secret"):
        container_environment(extra_env, secrets)


UPSTREAM_AUTH_DEFAULT = {"hub": {"config": {"JupyterHub": {"authenticator_class": "dummy"}}}}
"""The one zero-to-jupyterhub default that reaches the sign-in checks (its values.yaml)."""


def test_sign_in_checks_let_upstreams_default_through_and_refuse_a_choice(helm, tmp_path):
    """With a stand-in jupyterhub subchart carrying upstream's default authenticator, Helm
    coalesces that default into the values NOTES.txt checks: it must render, and an
    authenticator the operator chose must still be refused."""
    chart_dir = tmp_path / "statbox"
    shutil.copytree(CHART_DIR, chart_dir)  # follows files/hub_config.py's symlink
    subchart = chart_dir / "charts" / "jupyterhub"
    (subchart / "templates").mkdir(parents=True)
    (subchart / "Chart.yaml").write_text("apiVersion: v2\nname: jupyterhub\nversion: 4.2.0\n")
    (subchart / "values.yaml").write_text(yaml.safe_dump(UPSTREAM_AUTH_DEFAULT))
    seen = "{{ toJson .Values.hub.config.JupyterHub | quote }}"
    (subchart / "templates" / "seen.txt").write_text(seen)
    chart = helm.Chart.load(chart_dir)
    rendered = chart.render({"dask-gateway": {"enabled": False}}, name="s", namespace=NAMESPACE)
    assert json.loads(yaml.safe_load(rendered["statbox/charts/jupyterhub/templates/seen.txt"])) == {
        "authenticator_class": "dummy"
    }
    chosen = {"hub": {"config": {"JupyterHub": {"authenticator_class": "github"}}}}
    with pytest.raises(helm.HelmError, match=r"JupyterHub\.authenticator_class: sign-in is chosen"):
        chart.render({"dask-gateway": {"enabled": False}, "jupyterhub": chosen}, name="s")


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
