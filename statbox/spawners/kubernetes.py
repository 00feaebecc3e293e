"""Kubernetes mode: each user's server is a pod, started by KubeSpawner under zero-to-jupyterhub.

Invariants, whatever the chart's ``singleuser`` values or a user's request say:

* The role decides the pod's size (limits = the role's server; requests = a share of it) and
  the images on offer: the profiles are the role's images, less those kept to groups the user
  is not in. A profile not on the user's list is refused before any pod is made.
* Every container runs as a non-root user with no privilege escalation and no capability;
  the pod gets no service-account token.
* The shared data volume is mounted read-only, one ``subPath`` per dataset directory the user
  is entitled to; nothing else of it is mounted.
* Each pod carries the user's label (:data:`statbox.contract.KUBE_USER_LABEL`), and before it
  starts the hub ensures the user's NetworkPolicy that lets only that user's pods (and the
  gateway) reach the user's Dask schedulers and workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kubespawner import KubeSpawner
from kubespawner.clients import shared_client
from traitlets import Dict, Unicode, default

from statbox.catalog.access import entitled_data_paths
from statbox.contract import KUBE_USER_ANNOTATION, KUBE_USER_LABEL, kube_user_label_value
from statbox.settings.model import DATASET_DIR_PATTERN
from statbox.spawners.base import StatboxSpawnerMixin

DATA_VOLUME = "statbox-data"

NON_ROOT_CONTAINER: dict[str, Any] = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
"""The security context every container of a user pod ends up with (upstream leaves most unset)."""


def _is_dataset_dir(path: str) -> bool:
    import re

    return bool(re.fullmatch(DATASET_DIR_PATTERN, path))


GATEWAY_COMPONENTS = ("gateway", "controller", "traefik")
"""The dask-gateway chart's own pods (``app.kubernetes.io/component``): they may always reach
cluster pods (the proxy forwards users' traffic, the API and controller manage clusters)."""


def dask_network_policy(username: str, namespace: str, gateway_instance: str) -> dict[str, Any]:
    """The NetworkPolicy that lets a user's own pods reach that user's Dask pods.

    NetworkPolicies add up: the chart's ``statbox-dask-clusters`` policy admits the gateway's
    pods to every cluster pod and nothing else; this one adds the pods carrying the user's
    label (their notebook server, their schedulers and workers) for that user's cluster pods.
    """
    label = kube_user_label_value(username)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"statbox-dask-{label[:20]}",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "statbox", KUBE_USER_LABEL: label},
            "annotations": {KUBE_USER_ANNOTATION: username},
        },
        "spec": {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "dask-gateway",
                    "gateway.dask.org/instance": gateway_instance,
                    KUBE_USER_LABEL: label,
                }
            },
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {KUBE_USER_LABEL: label}}}]}],
        },
    }


# --------------------------------------------------------------------------- the gateway


class StatboxKubeSpawner(StatboxSpawnerMixin, KubeSpawner):
    """KubeSpawner sized, offered images, equipped and confined by the user's role."""

    gateway_environment = Dict(
        config=True, help="DASK_GATEWAY__* variables every user pod gets (set by hub_config.py)."
    )
    network_policy_namespace = Unicode(
        "", config=True, help="Namespace of the users' Dask NetworkPolicies (default: the pods')."
    )
    gateway_instance = Unicode(
        "dask-gateway",
        config=True,
        help="The Dask Gateway instance whose cluster pods the users' NetworkPolicies select.",
    )

    # ------------------------------------------------------------------ profiles

    def user_group_names(self) -> list[str]:
        return [group.name for group in self.user.groups]

    def statbox_profiles(self) -> list[dict[str, Any]]:
        """The profiles this user may choose: their role's images, filtered by image groups.

        The first is the default. Upstream offers every profile to everyone; this list is the
        only one Statbox's spawner reads (``singleuser.profileList`` is refused by the chart).
        """
        _, role = self.statbox_role
        groups = set(self.user_group_names())
        profiles: list[dict[str, Any]] = []
        for name in role.images:
            choice = self.settings.images[name]
            if choice.groups and not groups.intersection(choice.groups):
                continue
            profiles.append(
                {
                    "slug": name,
                    "display_name": name,
                    "description": choice.description,
                    "kubespawner_override": {"image": choice.image},
                }
            )
        if profiles:
            profiles[0]["default"] = True
        return profiles

    @default("options_form")
    def _statbox_options_form(self) -> Any:
        async def render(spawner: StatboxKubeSpawner) -> str:
            profiles = spawner.statbox_profiles()
            # A single choice needs no form.
            return spawner._render_options_form(profiles) if len(profiles) > 1 else ""

        return render

    async def load_user_options(self) -> None:
        """Apply the chosen profile; a profile not on this user's list raises ValueError."""
        profiles = self._get_initialized_profile_list(self.statbox_profiles())
        if not profiles:
            raise ValueError(
                f"No image is open to {self.user.name}: their role lists none they may use"
            )
        self._validate_user_options(profiles)
        self._load_profile(self.user_options.get("profile"), profiles)

    # ------------------------------------------------------------------ the pod

    def statbox_data_paths(self, role_name: str) -> list[str]:
        """Dataset directories (``<domain>/<dataset>``) this user gets mounted."""
        entitled = entitled_data_paths(
            self.settings, role_name, self.user_group_names(), Path(self.catalog_path)
        )
        safe = []
        for path in entitled:
            if _is_dataset_dir(path):
                safe.append(path)
            else:
                self.log.error("Not mounting %r: not a <domain>/<dataset> directory", path)
        return sorted(set(safe))

    def statbox_data_volumes(self, role_name: str) -> tuple[list[dict], list[dict]]:
        """The read-only data volume and one mount per entitled dataset (none without a claim)."""
        claim = self.settings.kubernetes.data_claim
        paths = self.statbox_data_paths(role_name) if claim else []
        if not paths:
            return [], []
        volume = {
            "name": DATA_VOLUME,
            "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
        }
        mounts = [
            {
                "name": DATA_VOLUME,
                "mountPath": os.path.join(self.data_root, path),
                "subPath": path,
                "readOnly": True,
            }
            for path in paths
        ]
        return [volume], mounts

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        env.update(self.gateway_environment)
        env.update(self.statbox_environment(self._statbox_role_name))
        return env

    @property
    def _statbox_role_name(self) -> str:
        return self.statbox_role[0]

    async def get_pod_manifest(self) -> Any:
        """Upstream's pod, with the role's size, the user's data and Statbox's confinement."""
        role_name, role = self.statbox_role
        self.apply_role()
        share = self.settings.kubernetes.request_fraction
        self.cpu_guarantee = role.server.cpu * share
        self.mem_guarantee = int(role.server.memory * share)
        labels: dict[str, str] = dict(self.extra_labels)  # type: ignore[has-type]
        self.extra_labels = {**labels, KUBE_USER_LABEL: kube_user_label_value(self.user.name)}
        pod = await super().get_pod_manifest()
        volumes, mounts = self.statbox_data_volumes(role_name)
        spec = pod.spec
        spec.volumes = [v for v in spec.volumes or [] if _name(v) != DATA_VOLUME] + volumes
        spec.automount_service_account_token = False
        spec.security_context = {**_as_dict(spec.security_context), "runAsNonRoot": True}
        for container in [*spec.containers, *(spec.init_containers or [])]:
            container.security_context = {
                **_as_dict(container.security_context),
                **NON_ROOT_CONTAINER,
            }
        notebook = spec.containers[0]
        notebook.volume_mounts = [
            m for m in notebook.volume_mounts or [] if _name(m) != DATA_VOLUME
        ] + mounts
        return pod

    # ------------------------------------------------------------------ network policy

    async def ensure_dask_network_policy(self) -> None:
        """Create or replace this user's NetworkPolicy for their Dask clusters."""
        from kubernetes_asyncio.client.rest import ApiException

        namespace = self.network_policy_namespace or self.namespace
        policy = dask_network_policy(self.user.name, namespace, self.gateway_instance)
        name = policy["metadata"]["name"]
        api = shared_client("NetworkingV1Api")
        try:
            await api.create_namespaced_network_policy(namespace, policy)
        except ApiException as exc:
            if exc.status != 409:
                raise
            await api.replace_namespaced_network_policy(name, namespace, policy)

    async def _start(self) -> Any:
        await self.ensure_dask_network_policy()
        return await super()._start()


def _name(item: Any) -> str | None:
    return item.get("name") if isinstance(item, dict) else getattr(item, "name", None)


def _as_dict(context: Any) -> dict[str, Any]:
    """A security context as upstream leaves it (None, a camelCase dict or an API model)."""
    if context is None:
        return {}
    if isinstance(context, dict):
        return dict(context)
    # An API model: its own attribute map gives the camelCase names
    return {
        context.attribute_map[key]: value
        for key, value in context.to_dict().items()
        if value is not None
    }
