"""The Helm chart's values schema, generated from the settings model.

Invariant: the ``statbox:`` key of ``helm/statbox/values.schema.json`` is generated from the
settings model (:func:`helm_values_schema`); a test checks the committed file equals a fresh
one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from statbox.settings.model import settings_schema

SCHEMA_FILE = Path("helm/statbox/values.schema.json")
"""Where the chart's values schema lives in a checkout (`statbox helm schema --write` it)."""


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
