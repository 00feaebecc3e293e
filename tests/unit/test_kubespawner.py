"""Kubernetes mode without a cluster: configure_hub on a bare Config, and StatboxKubeSpawner.

KubeSpawner builds an API client when created; ``spawner_for`` patches the loader and the
shared client and creates it with ``_mock=True``. Profiles, options, the
pod manifest and the users' NetworkPolicies are then real KubeSpawner and Statbox code.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from unittest.mock import AsyncMock

import pytest
from traitlets.config import Config

from statbox.configure.hub import configure_hub
from statbox.contract import KUBE_USER_LABEL as USER_LABEL
from statbox.contract import kube_user_label_value as user_label_value
from statbox.settings.model import parse_settings
from statbox.spawners.kubernetes import dask_network_policy
from tests.conftest import REPO
from tests.unit.test_hub_config import plain

kubespawner = pytest.importorskip("kubespawner")

# async tests run on asyncio through anyio's pytest plugin (installed with jupyterhub)
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


SETTINGS = {
    "mode": "kubernetes",
    "images": {
        "datascience": {"image": "statbox/singleuser:0.1.0"},
        "geo": {"image": "statbox/singleuser-geo:0.1.0", "groups": ["remote-sensing"]},
        "gpu": {"image": "statbox/singleuser-gpu:0.1.0"},
    },
    "roles": {
        "trainee": {"groups": ["trainees"], "server": {"cpu": 1, "memory": "2G"}},
        "analyst": {
            "groups": ["analysts"],
            "server": {"cpu": 4, "memory": "16G"},
            "images": ["datascience", "geo"],
        },
    },
    "paths": {
        "catalog": str(REPO / "catalogs" / "statbox.yaml"),
        "curriculum": "/opt/statbox/curriculum",
        "data_root": "/srv/statbox/data",
        "state_dir": "/srv/jupyterhub",
    },
    "kubernetes": {"data_claim": "statbox-data"},
}


@pytest.fixture
def kube_runtime(runtime):
    settings = parse_settings(SETTINGS)
    return dataclasses.replace(
        runtime,
        settings=settings,
        paths=settings.resolved_paths(runtime.paths.state_dir),
        python="python3",
        secrets={
            "gateway_token": "g" * 64,
            "user_password": "class-pw",
            "admin_password": "a" * 40,
        },
    )


@pytest.fixture
def kube_config(kube_runtime):
    c = Config()
    configure_hub(c, kube_runtime)
    return c


@pytest.fixture
def networking(monkeypatch):
    api = AsyncMock()
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kwargs: None)
    monkeypatch.setattr("kubespawner.spawner.shared_client", lambda name: AsyncMock())
    monkeypatch.setattr("statbox.spawners.kubernetes.shared_client", lambda name: api)
    return api


@pytest.fixture
def spawner_for(kube_config, networking):
    from statbox.spawners.kubernetes import StatboxKubeSpawner

    def make(name, groups=(), user_options=None):
        user = SimpleNamespace(
            name=name,
            id=7,
            url=f"/user/{name}/",
            groups=[SimpleNamespace(name=g) for g in groups],
        )
        spawner = StatboxKubeSpawner(config=kube_config, user=user, _mock=True)
        spawner.user_options = user_options or {}
        return spawner

    return make


# ------------------------------------------------------------------- configure_hub


def test_kubernetes_mode_leaves_the_network_to_the_chart(kube_config):
    c = kube_config
    assert c.JupyterHub.spawner_class == "statbox.spawners.kubernetes.StatboxKubeSpawner"
    for trait in ("ip", "port", "hub_ip", "hub_port", "db_url", "cookie_secret_file"):
        assert trait not in c.JupyterHub
    # Sign-in is the settings' in every mode: here the default class password, from the
    # chart's Secret.
    assert (
        c.JupyterHub.authenticator_class
        == "statbox.identity.auth.StatboxSharedPasswordAuthenticator"
    )
    assert c.StatboxSharedPasswordAuthenticator.user_password == "class-pw"
    assert c.Authenticator.manage_groups is True


def test_kubernetes_mode_signs_in_with_the_settings_provider(kube_runtime):
    settings = parse_settings(
        {
            **SETTINGS,
            "hub": {"public_url": "https://statbox.example.org"},
            "auth": {
                "type": "oidc",
                "issuer": "https://sso.example.org/realms/stats",
                "client_id": "statbox",
                "authorize_url": "https://sso.example.org/realms/stats/auth",
                "token_url": "https://sso.example.org/realms/stats/token",
                "userdata_url": "https://sso.example.org/realms/stats/userinfo",
                "allowed_groups": ["trainees", "analysts"],
            },
        }
    )
    rt = dataclasses.replace(
        kube_runtime,
        settings=settings,
        secrets={"gateway_token": "g" * 64, "oauth_client_secret": "s"},
    )
    c = Config()
    configure_hub(c, rt)
    assert c.JupyterHub.authenticator_class == "statbox.identity.auth.StatboxOIDCAuthenticator"
    assert c.StatboxOIDCAuthenticator.oauth_callback_url == (
        "https://statbox.example.org/hub/oauth_callback"
    )
    assert "ip" not in c.JupyterHub


def test_kubernetes_gateway_addresses_are_the_charts_services(kube_config):
    gateway = next(s for s in kube_config.JupyterHub.services if s["name"] == "dask-gateway")
    # the dashboards' front runs in the hub's pod, on a port the chart adds to the hub Service
    assert gateway["url"] == "http://hub:9006"
    assert gateway["environment"]["STATBOX_DASHBOARDS_GATEWAY"] == "http://traefik-dask-gateway"
    env = kube_config.StatboxKubeSpawner.gateway_environment
    assert env == {
        "DASK_GATEWAY__ADDRESS": "http://hub:9006/services/dask-gateway",
        "DASK_GATEWAY__PROXY_ADDRESS": "gateway://traefik-dask-gateway:8786",
        "DASK_GATEWAY__PUBLIC_ADDRESS": "/services/dask-gateway/",
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
    }
    assert kube_config.Spawner.cmd == ["python3", "-m", "statbox.spawners.singleuser"]


def test_kubernetes_configuration_is_pure(kube_runtime):
    once, twice = Config(), Config()
    configure_hub(once, kube_runtime)
    configure_hub(twice, kube_runtime)
    configure_hub(twice, kube_runtime)
    for section in once:
        a, b = plain(once[section]), plain(twice[section])
        a.pop("post_auth_hook", None), b.pop("post_auth_hook", None)
        assert a == b, section


# ------------------------------------------------------------------- profiles


def slugs(spawner):
    return [p["slug"] for p in spawner.statbox_profiles()]


def test_profiles_are_the_roles_images_filtered_by_group(spawner_for):
    assert slugs(spawner_for("tina", ["trainees"])) == ["datascience"]
    assert slugs(spawner_for("ana", ["analysts"])) == ["datascience"]  # geo is kept to a group
    assert slugs(spawner_for("rita", ["analysts", "remote-sensing"])) == ["datascience", "geo"]
    # an image no role lists is offered to no one, whatever the groups
    assert "gpu" not in slugs(spawner_for("rita", ["analysts", "remote-sensing", "gpu"]))
    first = spawner_for("rita", ["analysts", "remote-sensing"]).statbox_profiles()[0]
    assert first["default"] is True
    assert first["kubespawner_override"] == {"image": "statbox/singleuser:0.1.0"}


async def test_options_form_only_when_there_is_a_choice(spawner_for):
    trainee = spawner_for("tina", ["trainees"])
    assert await trainee.options_form(trainee) == ""
    rita = spawner_for("rita", ["analysts", "remote-sensing"])
    form = await rita.options_form(rita)
    assert 'value="geo"' in form and "gpu" not in form


async def test_chosen_profile_sets_the_image(spawner_for):
    rita = spawner_for("rita", ["analysts", "remote-sensing"])
    rita.user_options = rita.options_from_form({"profile": ["geo"]})
    await rita.load_user_options()
    assert rita.image == "statbox/singleuser-geo:0.1.0"


@pytest.mark.parametrize(
    "name, groups, profile",
    [
        ("ana", ["analysts"], "geo"),  # listed by the role, but kept to a group
        ("tina", ["trainees"], "gpu"),  # listed by no role
        ("tina", ["trainees"], "../../etc"),
    ],
)
async def test_unlisted_profile_is_refused(spawner_for, name, groups, profile):
    spawner = spawner_for(name, groups)
    spawner.user_options = spawner.options_from_form({"profile": [profile]})
    with pytest.raises(ValueError, match="No such profile"):
        await spawner.load_user_options()


async def test_configured_profile_list_is_ignored(spawner_for, kube_config):
    # zero-to-jupyterhub passes singleuser.profileList to KubeSpawner.profile_list
    kube_config.KubeSpawner.profile_list = [
        {"display_name": "miner", "slug": "miner", "kubespawner_override": {"image": "x/miner"}}
    ]
    spawner = spawner_for("tina", ["trainees"], {"profile": "miner"})
    with pytest.raises(ValueError, match="No such profile"):
        await spawner.load_user_options()


async def test_unlisted_image_choice_is_ignored(spawner_for):
    spawner = spawner_for(
        "tina", ["trainees"], {"profile": "datascience", "image--unlisted-choice": "x/miner"}
    )
    await spawner.load_user_options()
    assert spawner.image == "statbox/singleuser:0.1.0"


# ------------------------------------------------------------------- the pod


async def manifest(spawner):
    from kubernetes_asyncio.client import ApiClient

    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    async with ApiClient() as client:
        return client.sanitize_for_serialization(pod)


async def test_pod_is_sized_by_role(spawner_for):
    pod = await manifest(spawner_for("ana", ["analysts"]))
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": 4.0, "memory": 16 * 1024**3}
    # requests: the kubernetes.request_fraction (0.5 by default) of the role's size
    assert resources["requests"] == {"cpu": 2.0, "memory": 8 * 1024**3}


async def test_pod_is_non_root_without_service_account_token(spawner_for, kube_config):
    # even when the chart's values ask for the opposite
    kube_config.KubeSpawner.allow_privilege_escalation = True
    kube_config.KubeSpawner.automount_service_account_token = True
    kube_config.KubeSpawner.init_containers = [
        {
            "name": "setup",
            "image": "busybox",
            "securityContext": {"runAsUser": 0, "privileged": True},
        }
    ]
    pod = await manifest(spawner_for("tina", ["trainees"]))
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    for container in spec["containers"] + spec["initContainers"]:
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["privileged"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}


def data_mounts(pod: dict) -> list[dict]:
    return [m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["name"] == "statbox-data"]


async def test_pod_mounts_only_entitled_datasets_read_only(spawner_for):
    pod = await manifest(spawner_for("tina", ["trainees"]))
    [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == "statbox-data"]
    assert volume["persistentVolumeClaim"] == {"claimName": "statbox-data", "readOnly": True}
    mounts = data_mounts(pod)
    for mount in mounts:
        assert mount["readOnly"] is True
        assert mount["mountPath"] == f"/srv/statbox/data/{mount['subPath']}"
    trainee = {m["subPath"] for m in mounts}
    assert {"sdg/indicators", "ais/positions"} <= trainee
    # The restricted network events (analysts only) are not mounted at all for a trainee.
    assert "mobile_phone/events" not in trainee
    analyst = {m["subPath"] for m in data_mounts(await manifest(spawner_for("ana", ["analysts"])))}
    assert analyst == trainee | {"mobile_phone/events"}


async def test_unsafe_entitlement_is_not_mounted(spawner_for, monkeypatch):
    import statbox.spawners.kubernetes as module

    monkeypatch.setattr(
        module, "entitled_data_paths", lambda *args: ["sdg/indicators", "../../etc", "/"]
    )
    pod = await manifest(spawner_for("tina", ["trainees"]))
    paths = [
        m["subPath"]
        for m in pod["spec"]["containers"][0]["volumeMounts"]
        if m["name"] == "statbox-data"
    ]
    assert paths == ["sdg/indicators"]


async def test_no_claim_no_data_volume(spawner_for, kube_config):
    spawner = spawner_for("tina", ["trainees"])
    spawner.settings = spawner.settings.model_copy(
        update={"kubernetes": spawner.settings.kubernetes.model_copy(update={"data_claim": ""})}
    )
    pod = await manifest(spawner)
    assert all(v["name"] != "statbox-data" for v in pod["spec"].get("volumes") or [])


async def test_pod_environment_and_user_label(spawner_for):
    pod = await manifest(spawner_for("ana", ["analysts"]))
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["STATBOX_ROLE"] == "analyst"
    assert env["STATBOX_CATALOG"] == str(REPO / "catalogs" / "statbox.yaml")
    assert env["DASK_GATEWAY__PROXY_ADDRESS"] == "gateway://traefik-dask-gateway:8786"
    assert pod["metadata"]["labels"][USER_LABEL] == user_label_value("ana")


async def test_pod_manifest_validates_against_kubernetes_schemas(spawner_for):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    pod = await manifest(spawner_for("rita", ["analysts", "remote-sensing"]))
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)


# ------------------------------------------------------------------- network policies


def test_user_label_cannot_be_chosen_by_another_user():
    victim = user_label_value("bob-")
    assert len(victim) == 40 and victim.isalnum()
    # choosing the victim's label as a username gives a different label
    assert user_label_value(victim) != victim
    assert user_label_value("bob") != victim


def test_dask_network_policy_admits_only_the_users_pods():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    policy = dask_network_policy("ana", "statbox", "dask-gateway")
    kubernetes_validate.validate(policy, kubernetes_validate.latest_version(), strict=True)
    label = user_label_value("ana")
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "dask-gateway",
        "gateway.dask.org/instance": "dask-gateway",
        USER_LABEL: label,
    }
    assert policy["spec"]["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": {USER_LABEL: label}}}]}
    ]
    assert policy["metadata"]["annotations"] == {"statbox.org/username": "ana"}


async def test_start_ensures_the_users_policy_first(spawner_for, networking):
    from kubernetes_asyncio.client.rest import ApiException

    spawner = spawner_for("ana", ["analysts"])
    await spawner.ensure_dask_network_policy()
    namespace, body = networking.create_namespaced_network_policy.call_args.args
    assert namespace == spawner.namespace
    assert body == dask_network_policy("ana", spawner.namespace, "dask-gateway")
    networking.create_namespaced_network_policy.side_effect = ApiException(status=409)
    await spawner.ensure_dask_network_policy()
    name, _, body = networking.replace_namespaced_network_policy.call_args.args
    assert name == body["metadata"]["name"]
    networking.create_namespaced_network_policy.side_effect = ApiException(status=403)
    with pytest.raises(ApiException):
        await spawner.ensure_dask_network_policy()


async def test_policy_exists_before_upstream_starts_the_pod(spawner_for, networking, monkeypatch):
    seen = []

    async def upstream_start(self):
        seen.append(networking.create_namespaced_network_policy.await_count)
        return "http://pod:8888"

    monkeypatch.setattr(kubespawner.KubeSpawner, "_start", upstream_start)
    assert await spawner_for("ana", ["analysts"])._start() == "http://pod:8888"
    assert seen == [1]
