"""The dashboards' pieces that need no stack: the scheduler's dashboard port and the front's
start-up checks. The front itself is attacked for real in tests/integration/test_dashboards.py."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from statbox.dashboards import __main__ as front_main
from statbox.dashboards import firewall as firewall_module
from statbox.dashboards.firewall import dashboards_firewall, gateway_container_firewall
from statbox.dashboards.scheduler import free_port_in_range, with_dashboard_port
from statbox.errors import EnvironmentProblem


def taken_port_before_a_free_one() -> socket.socket:
    """A socket bound to a port whose next port is free now (on a busy machine another
    process may hold the next one: try again elsewhere)."""
    for _ in range(50):
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", taken.getsockname()[1] + 1))
            except OSError:
                taken.close()
                continue
        return taken
    raise AssertionError("no two adjacent free ports on this machine")


def test_the_dashboard_moves_onto_a_free_port_of_the_range():
    with taken_port_before_a_free_one() as taken:
        port = taken.getsockname()[1]
        args = ["--protocol", "tls", "--dashboard-address", "127.0.0.1:0", "--port", "0"]
        # the range holds the taken port and the next: the free one is chosen
        moved = with_dashboard_port(args, port, port + 1)
        assert moved == [*args[:3], f"127.0.0.1:{port + 1}", *args[4:]]
        with pytest.raises(OSError, match=f"no free port in {port}-{port}"):
            free_port_in_range("127.0.0.1", port, port)


def test_a_scheduler_without_a_dashboard_address_gets_one_in_the_range():
    moved = with_dashboard_port(["--port", "0"], 29000, 29999)
    assert moved[:2] == ["--port", "0"] and moved[2] == "--dashboard-address"
    assert 29000 <= int(moved[3].rpartition(":")[2]) <= 29999


def test_the_front_started_by_hand_says_what_is_missing(monkeypatch, capsys):
    for name in front_main.REQUIRED:
        monkeypatch.delenv(name, raising=False)
    assert front_main.main() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "STATBOX_DASHBOARDS_GATEWAY" in err and "the hub starts this service" in err


def test_without_iptables_local_mode_as_root_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no iptables on it
    monkeypatch.setattr(firewall_module, "SYSTEM_BIN", str(tmp_path))  # nor there
    firewall = dashboards_firewall(tmp_path, 8000)
    with pytest.raises(EnvironmentProblem, match=r"iptables was not found.*apt-get install"):
        firewall.install()
    firewall.remove()  # nothing to remove, and no error


def test_each_stack_has_a_chain_of_its_own(tmp_path):
    one = dashboards_firewall(tmp_path / "a", 8000)
    other = dashboards_firewall(tmp_path / "b", 8000)
    assert one.chain != other.chain and len(one.chain) <= 28  # iptables' limit on names
    assert one.rule()[one.rule().index("--dports") + 1] == "8000,29000:29999"


def test_the_gateway_containers_rule_covers_every_interface():
    """Its HTTP side listens on the private network's address: a rule on loopback alone
    would leave it open to the users' workers beside it."""
    local = dashboards_firewall(Path("/srv/statbox"), 8000)
    container = gateway_container_firewall(20000, 8000)
    assert local.jump() == ["OUTPUT", "-o", "lo", "-j", local.chain]
    assert container.jump() == ["OUTPUT", "-j", "STATBOX-DASH"]
    rule = container.rule()
    assert rule[rule.index("--uid-owner") + 1] == "20000-4294967294"
    assert rule[rule.index("--dports") + 1] == "8000,29000:29999"
