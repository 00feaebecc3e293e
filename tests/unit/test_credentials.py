"""Secrets: explicit -> stored -> generated, stored privately, generated once."""

from __future__ import annotations

import stat
import sys

from statbox.cli import main
from statbox.configure.credentials import resolve_credentials
from statbox.settings.model import parse_settings


def test_generated_once_then_reused(tmp_path):
    settings = parse_settings({})
    first = resolve_credentials(settings, tmp_path, environ={})
    assert sorted(first.generated) == sorted(first.values)
    assert len(first.values["user_password"]) >= 8
    assert len(first.values["admin_password"]) >= 32
    second = resolve_credentials(settings, tmp_path, environ={})
    assert second.generated == []
    assert second.values == first.values
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    for name in first.values:
        assert stat.S_IMODE((tmp_path / "secrets" / name).stat().st_mode) == 0o600


def test_environment_wins_over_settings_and_files(tmp_path):
    settings = parse_settings({"auth": {"user_password": "from-settings"}})
    env = {"STATBOX_USER_PASSWORD": "from-environment"}
    creds = resolve_credentials(settings, tmp_path, environ=env)
    assert creds.values["user_password"] == "from-environment"
    assert "user_password" not in creds.generated
    assert not (tmp_path / "secrets" / "user_password").exists()
    creds = resolve_credentials(settings, tmp_path, environ={})
    assert creds.values["user_password"] == "from-settings"
    assert creds.environment()["STATBOX_USER_PASSWORD"] == "from-settings"


def test_bad_explicit_passwords_are_reported_before_anything_is_written(
    tmp_path, capsys, monkeypatch
):
    (tmp_path / "catalogs").mkdir()
    (tmp_path / "catalogs" / "statbox.yaml").write_text("version: 2\n")
    (tmp_path / "curriculum").mkdir()
    settings = tmp_path / "statbox.yaml"
    settings.write_text("paths:\n  state_dir: state\n")
    monkeypatch.setenv("STATBOX_PROXY", sys.executable)  # any executable: found
    monkeypatch.setenv("STATBOX_USER_PASSWORD", "short")
    monkeypatch.setenv("STATBOX_ADMIN_PASSWORD", "short")
    code = main(["up", "--config", str(settings), "--port", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "STATBOX_USER_PASSWORD (or auth.user_password) must have at least 8" in err
    assert "STATBOX_ADMIN_PASSWORD (or auth.admin_password) must have at least 32" in err
    assert "must differ" in err
    assert not (tmp_path / "state").exists()
