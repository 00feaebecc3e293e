"""Unit-test fixtures: a runtime built from settings, with no process and no file behind it.

- ``settings``: the test settings (tests/fixtures/settings/valid-regional.yaml).
- ``runtime``: a :class:`statbox.configure.runtime.Runtime` for local mode with fixed ports and
  secrets.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from statbox.configure.runtime import Ports, Runtime
from statbox.settings.model import load_settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "settings"

SECRETS = {
    "user_password": "class-password",
    "admin_password": "a" * 40,
    "gateway_token": "f" * 64,
    "gateway_encrypt_key": "k" * 44,
    "proxy_auth_token": "t" * 64,
}


@pytest.fixture
def loaded():
    return load_settings(FIXTURES / "valid-regional.yaml")


@pytest.fixture
def settings(loaded):
    return loaded.settings


@pytest.fixture
def runtime(loaded):
    return Runtime(
        settings=loaded.settings,
        paths=loaded.paths,
        ports=Ports(
            public=8080,
            hub_api=9001,
            proxy_api=9002,
            gateway_api=9003,
            gateway_http=9004,
            gateway_tcp=9005,
            dashboards=9006,
        ),
        proxy_command=["/opt/chp"],
        python="/opt/venv/bin/python",
        run_as="nobody",
        secrets=dict(SECRETS),
    )
