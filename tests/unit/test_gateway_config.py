"""configure_gateway on a bare Config, and the per-role cluster options."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from traitlets.config import Config

from statbox.configure.gateway import GIB, cluster_options_for, configure_gateway


def configured(runtime) -> Config:
    c = Config()
    configure_gateway(c, runtime)
    return c


def test_addresses_auth_and_backend(runtime):
    c = configured(runtime)
    assert c.DaskGateway.address == "127.0.0.1:9003"
    assert c.Proxy.address == "127.0.0.1:9004"
    assert c.Proxy.tcp_address == "127.0.0.1:9005"
    assert c.Proxy.prefix == "/services/dask-gateway"
    assert c.JupyterHubAuthenticator.jupyterhub_service_name == "dask-gateway"
    assert c.JupyterHubAuthenticator.jupyterhub_api_url == "http://127.0.0.1:9001/hub/api"
    assert c.JupyterHubAuthenticator.jupyterhub_api_token == "f" * 64
    # local mode: dashboards on the reserved ports, heartbeats to the internal API (users'
    # uids, which clusters may run under, are kept off the HTTP proxy)
    assert c.ClusterConfig.scheduler_cmd == [
        "/opt/venv/bin/python",
        "-m",
        "statbox.dashboards.scheduler",
    ]
    assert c.DBBackendBase.api_url == "http://127.0.0.1:9003/api"
    # workers serve no dashboard (nothing would ask for it but a stranger)
    assert c.ClusterConfig.worker_cmd == ["/opt/venv/bin/dask", "worker", "--no-dashboard"]
    # the default role's idle timeout applies to any cluster by default
    assert c.ClusterConfig.idle_timeout == 20 * 60
    state = runtime.paths.state_dir / "gateway"
    assert c.DBBackendBase.db_url == f"sqlite:///{state}/gateway.sqlite"


def options_for(settings, name, groups=()):
    return cluster_options_for(settings)(SimpleNamespace(name=name, groups=list(groups)))


def test_trainee_options_are_bounded_by_the_role(settings):
    options = options_for(settings, "alice", ["cohort-2026a", "statbox-role-trainee"])
    fields = {f.field: f for f in options.fields}
    assert fields["worker_cores"].max == 1
    assert fields["worker_memory"].max == pytest.approx(1.0)  # the fixture's trainee: 1G
    with pytest.raises(ValueError, match="worker_cores"):
        options.parse_options({"worker_cores": 4})
    with pytest.raises(ValueError, match="worker_memory"):
        options.parse_options({"worker_memory": 8})


def test_handler_applies_role_caps(settings):
    options = options_for(settings, "alice")
    requested = options.parse_options({})
    config = options.get_configuration(requested, SimpleNamespace(name="alice", groups=[]))
    assert config == {
        "worker_cores": 1,
        "worker_memory": 1 * GIB,
        "cluster_max_workers": 2,
        "idle_timeout": 1200.0,
    }


def test_analyst_may_ask_for_more(settings):
    options = options_for(settings, "ana", ["analysts"])
    requested = options.parse_options({"worker_cores": 4, "worker_memory": 16})
    config = options.get_configuration(requested, SimpleNamespace(name="ana", groups=["analysts"]))
    assert config["worker_cores"] == 4
    assert config["worker_memory"] == 16 * GIB
    assert config["cluster_max_workers"] == 6
    assert config["idle_timeout"] == 3600.0


def test_forged_role_group_gets_trainee_limits(settings):
    options = options_for(settings, "mallory", ["statbox-role-admin"])
    with pytest.raises(ValueError):
        options.parse_options({"worker_cores": 2})


def test_forked_workers_get_what_the_nanny_gives_spawned_ones():
    """A forked worker keeps its nanny's environment: everything distributed sets before it
    spawns a worker must be in the worker's environment from the start."""
    import dask.config
    import distributed  # noqa: F401 (loads distributed's configuration)

    from statbox.spawners.local_dask import FORKED_WORKER_ENV

    before_spawn = dask.config.get("distributed.nanny.pre-spawn-environ")
    assert {k: str(v) for k, v in before_spawn.items()}.items() <= FORKED_WORKER_ENV.items()


def test_the_scheduler_defers_its_dashboard_to_the_preload_that_serves_it():
    from statbox.spawners import gateway_preload, local_dask

    assert local_dask.DEFERRED_DASHBOARD_ENV == gateway_preload.DEFERRED_DASHBOARD_ENV
    assert gateway_preload.__name__ == local_dask.PROMPT_PRELOAD
