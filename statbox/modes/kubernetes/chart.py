"""Kubernetes mode's shared pieces: the user label, the users' Dask NetworkPolicies, the
gateway's configuration under the dask-gateway chart, and the Helm chart's values schema.

Invariants:

* A user's notebook pods and Dask pods carry one label,
  :data:`statbox.contract.KUBE_USER_LABEL`, whose value is a hash of the username
  (:func:`statbox.contract.kube_user_label_value`): never a name another user could choose,
  so no one can wear someone else's label by picking a username.
* The ``statbox:`` key of ``helm/statbox/values.schema.json`` is generated from the settings
  model (:func:`helm_values_schema`); a test checks the committed file equals a fresh one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from statbox.contract import KUBE_USER_LABEL, SETTINGS_ENV, kube_user_label_value
from statbox.settings.model import parse_settings, settings_schema

SCHEMA_FILE = Path("helm/statbox/values.schema.json")
"""Where the chart's values schema lives in a checkout (`statbox helm schema --write` it)."""


def settings_from_environment(environ: Mapping[str, str] | None = None) -> Any:
    """The settings the chart put in ``$STATBOX_SETTINGS`` (gateway pods), validated."""
    from statbox.configure.runtime import MissingEnvironment

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
    from statbox.configure.gateway import cluster_options_for
    from statbox.configure.hub import GATEWAY_SERVICE

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


# --------------------------------------------------------------------------- the chart schema


CHART_KEYS: dict[str, Any] = {
    "secrets": {
        "type": "object",
        "additionalProperties": False,
        "description": "Values for the statbox-secrets Secret. Each is taken from here when "
        "set, else kept from the Secret already in the cluster, else generated once.",
        "properties": {
            name: {"type": ["string", "null"], "minLength": minimum, "description": text}
            for name, minimum, text in (
                ("gatewayApiToken", 32, "Token Dask Gateway uses with the hub's API."),
                ("userPassword", 8, "Class password (the shared-password authenticator)."),
                ("adminPassword", 32, "Staff password (the shared-password authenticator)."),
                (
                    "oauthClientSecret",
                    1,
                    "Client secret the identity provider issued for statbox.auth.client_id "
                    "(auth.type oidc or github). Never generated: without it or "
                    "existingSecret the chart refuses to render.",
                ),
            )
        }
        | {
            "existingSecret": {
                "type": ["string", "null"],
                "pattern": r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
                "description": "Name of a Secret you manage that holds the OAuth client "
                "secret; jupyterhub.hub.extraEnv.STATBOX_OAUTH_CLIENT_SECRET must then take "
                "it from that Secret, and statbox-secrets does not carry it.",
            }
        },
    },
    "networkPolicy": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "enabled": {
                "type": "boolean",
                "description": "Admit only the gateway's pods, and each user's own pods, to "
                "that user's Dask schedulers and workers.",
            }
        },
    },
    "jupyterhub": {
        "type": "object",
        "description": "Values of the zero-to-jupyterhub chart (its own schema applies).",
    },
    "dask-gateway": {
        "type": "object",
        "description": "Values of the dask-gateway chart (its own schema applies).",
    },
    "global": {"type": "object"},
}
"""The chart's own top-level keys beside ``statbox:``."""


SECRETS_KEPT_OUT_OF_SETTINGS = (
    ("SharedPasswordAuth", "user_password"),  # secrets.userPassword
    ("SharedPasswordAuth", "admin_password"),  # secrets.adminPassword
    ("OIDCAuth", "client_secret"),  # secrets.oauthClientSecret or secrets.existingSecret
    ("GitHubAuth", "client_secret"),
)
"""Settings keys the chart refuses under ``statbox.identity.auth``: (model, key)."""


def helm_values_schema() -> dict[str, Any]:
    """``values.schema.json`` of the chart: ``statbox:`` is the settings model's schema."""
    settings = settings_schema()
    definitions = settings.pop("$defs")
    settings.pop("$schema")
    properties = settings["properties"]
    properties["mode"] = {
        "const": "kubernetes",
        "description": "The chart deploys kubernetes mode; no other mode can be chosen here.",
    }
    # Values end up in a ConfigMap: secrets belong in the chart's `secrets:` key.
    for model, key in SECRETS_KEPT_OUT_OF_SETTINGS:
        definitions[model]["properties"].pop(key)
    settings["title"] = "Statbox settings (statbox.yaml) for this hub"
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Values of the Statbox Helm chart",
        "type": "object",
        "additionalProperties": False,
        "properties": {"statbox": settings, **CHART_KEYS},
        "$defs": definitions,
    }


def render_schema() -> str:
    """The schema as the committed file spells it."""
    return json.dumps(helm_values_schema(), indent=2, sort_keys=True) + "\n"
