"""The CLI: what each command prints and the exit codes it returns, without a traceback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from statbox.cli import build_parser, main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "settings"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_config_schema_is_json(capsys):
    code, out, _ = run(capsys, "config", "schema")
    assert code == 0
    assert json.loads(out)["title"] == "Statbox settings"


def test_config_check_valid(capsys):
    code, out, _ = run(capsys, "config", "check", str(FIXTURES / "valid-regional.yaml"))
    assert (code, out.strip().endswith("valid (local mode)")) == (0, True)


def test_config_check_reports_every_problem_without_traceback(capsys, tmp_path):
    bad = tmp_path / "statbox.yaml"
    bad.write_text("mode: cloud\nhub:\n  port: -5\n")
    code, out, err = run(capsys, "config", "check", str(bad))
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"statbox: {bad}:3: hub.port: -5: Input should be greater than or equal to 0",
        f"statbox: {bad}:1: mode: 'cloud': Input should be 'local', 'docker' or 'kubernetes'",
    ]
    assert "Traceback" not in err


def test_config_check_without_a_file_checks_the_settings_in_effect(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STATBOX_CONFIG", raising=False)
    code, out, _ = run(capsys, "config", "check")
    assert (code, out.strip()) == (0, "<built-in defaults>: valid (local mode)")
    (tmp_path / "statbox.yaml").write_text("mode: everywhere\n")
    code, _, err = run(capsys, "config", "check")
    assert code == 2 and "statbox.yaml" in err and "mode" in err


def test_config_check_missing_file(capsys, tmp_path):
    code, _, err = run(capsys, "config", "check", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "no such file" in err


def test_config_show_masks_secrets(capsys, tmp_path):
    f = tmp_path / "statbox.yaml"
    f.write_text("auth:\n  user_password: sup3rs3cret\n")
    code, out, _ = run(capsys, "config", "show", "--config", str(f))
    assert code == 0
    assert "sup3rs3cret" not in out
    assert "memory: 2G" in out


def test_roles_explain(capsys):
    code, out, _ = run(
        capsys,
        "roles",
        "explain",
        "zoe",
        "--groups",
        "analysts",
        "--config",
        str(FIXTURES / "valid-regional.yaml"),
    )
    assert code == 0
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert lines["role"].strip().startswith("analyst (member of group 'analysts'")
    assert "up to 6 workers" in lines["dask"]
    assert lines["sign-in"].strip().startswith("allowed (anyone with the class password")
    assert lines["hub"].strip() == "own server and tokens only (JupyterHub role user: self)"
    assert lines["notebook token"].strip() == (
        "users:activity!user, access:servers!server, access:services!service=dask-gateway"
    )


def test_roles_explain_says_instructors_sign_in_with_the_admin_password(capsys, tmp_path):
    """The hub lets instructors in with the admin password only (staff_users): explain must
    not tell them the class password works."""
    f = tmp_path / "statbox.yaml"
    f.write_text(
        "cohorts: [cohort-a]\ngroups: {cohort-a: [alice, ines]}\n"
        "roles: {instructor: {users: [ines]}}\n"
    )
    code, out, _ = run(capsys, "roles", "explain", "ines", "--config", str(f))
    assert code == 0
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert "admin password (auth.admin_password) only" in lines["sign-in"]
    assert "anyone with the class password" not in lines["sign-in"]
    assert "Instructors of cohort-a" in out


def test_roles_explain_an_instructor_under_oidc(capsys, tmp_path):
    f = tmp_path / "statbox.yaml"
    f.write_text(
        "auth: {type: oidc, issuer: 'https://id.example.org/realms/x', client_id: statbox,"
        " allowed_groups: [staff], blocked_groups: [suspended]}\n"
        "cohorts: [cohort-a, cohort-b]\n"
    )
    code, out, _ = run(
        capsys,
        "roles",
        "explain",
        "ines",
        "--groups",
        "staff",
        "instructors",
        "cohort-a",
        "--config",
        str(f),
    )
    assert code == 0
    assert "groups:         cohort-a, instructors, staff, statbox-role-instructor, " in out
    assert "statbox-teaches-cohort-a" in out
    assert "sign-in:        allowed (member of 'staff' (auth.allowed_groups))" in out
    hub = [line for line in out.splitlines() if line.startswith("hub:")]
    assert len(hub) == 2
    assert "Instructors of cohort-a" in hub[1]
    assert "servers!group=statbox-learns-cohort-a" in hub[1]
    assert "cohort-b" not in hub[1]
    code, out, _ = run(
        capsys, "roles", "explain", "ines", "--groups", "staff", "suspended", "--config", str(f)
    )
    assert "sign-in:        refused (member of blocked group 'suspended'" in out


def test_roles_explain_refuses_bad_groups_briefly(capsys):
    code, _, err = run(capsys, "roles", "explain", "zoe", "--groups", "x\n" * 100_000)
    assert code == 2
    assert len(err) < 300


def test_roles_explain_refuses_bad_usernames_briefly(capsys):
    code, _, err = run(capsys, "roles", "explain", "x" * 100_000)
    assert code == 2
    assert len(err) < 300


def test_every_command_has_help():
    parser = build_parser()
    paths = [[]]
    seen = 0
    while paths:
        path = paths.pop()
        result = subprocess.run(
            [sys.executable, "-m", "statbox.cli", *path, "--help"], capture_output=True, text=True
        )
        assert result.returncode == 0, (path, result.stderr)
        assert "exit codes" in result.stdout
        seen += 1
        sub = parser
        for word in path:
            sub = next(a for a in sub._actions if a.dest.endswith("command")).choices[word]
        for action in sub._actions:
            if action.dest.endswith("command"):
                paths.extend([*path, name] for name in action.choices)
    assert seen >= 8


@pytest.fixture
def tiny_settings(tmp_path):
    (tmp_path / "catalogs").mkdir()
    (tmp_path / "catalogs" / "statbox.yaml").write_text("version: 2\n")
    (tmp_path / "curriculum").mkdir()
    f = tmp_path / "statbox.yaml"
    f.write_text("paths:\n  state_dir: state\n")
    return f


def test_up_refuses_a_busy_port_and_creates_nothing(capsys, tiny_settings, monkeypatch):
    monkeypatch.setenv("STATBOX_PROXY", sys.executable)  # any executable: found
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run(capsys, "up", "--config", str(tiny_settings), "--port", str(port))
    assert code == 3
    assert f"port {port} on 127.0.0.1 is in use" in err
    assert "--port" in err
    assert not (tiny_settings.parent / "state").exists()


def test_up_without_proxy_says_how_to_get_it(capsys, tiny_settings, monkeypatch):
    monkeypatch.setenv("STATBOX_PROXY", "/nonexistent/chp")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "prefix", "/nonexistent")
    code, _, err = run(capsys, "up", "--config", str(tiny_settings), "--port", "0")
    assert code == 3
    assert "configurable-http-proxy was not found" in err
    assert "make up" in err
    assert not (tiny_settings.parent / "state").exists()


def test_up_with_invalid_settings_exits_2(capsys, tmp_path):
    f = tmp_path / "statbox.yaml"
    f.write_text("roles:\n  trainee:\n    dask:\n      max_workers: many\n")
    code, _, err = run(capsys, "up", "--config", str(f))
    assert code == 2
    assert f"{f}:4: roles.trainee.dask.max_workers: 'many'" in err


def test_up_refuses_other_modes_for_now(capsys, tiny_settings):
    tiny_settings.write_text("mode: docker\n")
    code, _, err = run(capsys, "up", "--config", str(tiny_settings))
    assert code == 2
    assert "mode" in err


def test_doctor_does_not_fail_on_the_running_hubs_own_port(capsys, tiny_settings):
    """While this state's hub runs, its public port is in use by it: no failure. The same
    port held by something else is one."""
    import json
    import os
    import socket

    from statbox.ops.doctor import check_port
    from statbox.settings.model import load_settings

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        tiny_settings.write_text(f"paths:\n  state_dir: state\nhub: {{port: {port}}}\n")
        loaded = load_settings(tiny_settings)
        assert not check_port(loaded).ok  # someone else's
        run_dir = loaded.paths.state_dir / "run"
        run_dir.mkdir(parents=True)
        ports = dict.fromkeys(
            ("hub_api", "proxy_api", "gateway_api", "gateway_http", "gateway_tcp"), 1
        )
        (run_dir / "ports.json").write_text(json.dumps({"public": port, **ports}))
        (run_dir / "jupyterhub.pid").write_text(str(os.getpid()))  # a live hub of this state
        finding = check_port(loaded)
        assert finding.ok and "this Statbox's own" in finding.detail


def test_doctor_reports_and_fails_on_missing_proxy(capsys, monkeypatch, tiny_settings):
    monkeypatch.setenv("STATBOX_PROXY", "/nonexistent/chp")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "prefix", "/nonexistent")
    code, out, _ = run(capsys, "doctor", "--config", str(tiny_settings))
    assert code == 3
    assert "[FAIL] proxy: configurable-http-proxy not found" in out
    assert "fix: run `make up`" in out
