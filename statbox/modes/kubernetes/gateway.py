"""Dask Gateway under the dask-gateway chart (kubernetes mode), configured by Statbox.

The chart runs this from the gateway's ``extraConfig`` (helm/statbox/values.yaml). Every pod
that acts for a user, the Dask pods included, carries one label,
:data:`statbox.contract.KUBE_USER_LABEL`, whose value is a hash of the username
(:func:`statbox.contract.kube_user_label_value`): never a name another user could choose, so
no one can wear someone else's label by picking a username.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from statbox.configure.gateway import cluster_options_for
from statbox.configure.hub import GATEWAY_SERVICE
from statbox.configure.runtime import MissingEnvironment
from statbox.contract import KUBE_USER_LABEL, SETTINGS_ENV, kube_user_label_value
from statbox.settings.model import parse_settings


def settings_from_environment(environ: Mapping[str, str] | None = None) -> Any:
    """The settings the chart put in ``$STATBOX_SETTINGS`` (gateway pods), validated."""

    env = os.environ if environ is None else environ
    text = env.get(SETTINGS_ENV)
    if not text:
        raise MissingEnvironment(f"{SETTINGS_ENV} is not set (the chart sets it from a ConfigMap)")
    return parse_settings(json.loads(text), source=f"${SETTINGS_ENV}")


def configure_kubernetes_gateway(c: Any, settings: Any) -> None:
    """Statbox's part of Dask Gateway's configuration under the dask-gateway chart.

    The chart's own configuration (run first) sets the Kubernetes backend, addresses and the
    hub's API token; this adds what upstream leaves out: the hub checks that a token may use
    this service, the role decides options, limits and idle timeout, and every cluster pod
    carries its user's label for the NetworkPolicies.
    """

    c.DaskGateway.authenticator_class = "statbox.configure.gateway.HubTokenAuthenticator"
    # Without the service name, JupyterHubAuthenticator accepts any hub token.
    c.JupyterHubAuthenticator.jupyterhub_service_name = GATEWAY_SERVICE
    # distributed 2026 ships no dask-scheduler / dask-worker scripts, the gateway's defaults.
    c.ClusterConfig.scheduler_cmd = ["dask", "scheduler"]
    c.ClusterConfig.worker_cmd = ["dask", "worker"]
    c.ClusterConfig.idle_timeout = float(settings.role(settings.default_role).dask.idle_timeout)
    c.Backend.cluster_options = cluster_options_for(settings, per_user=_cluster_pod_labels)


def _cluster_pod_labels(user: Any) -> dict[str, Any]:
    labels = {KUBE_USER_LABEL: kube_user_label_value(user.name)}
    return {"scheduler_extra_pod_labels": labels, "worker_extra_pod_labels": labels}
