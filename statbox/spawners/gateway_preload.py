"""Dask Gateway's scheduler preload, reporting the scheduler to the gateway as soon as it listens.

Upstream's preload (``dask_gateway.scheduler_preload``) sends the scheduler's first heartbeat,
the message that tells the gateway the scheduler's address and so makes the cluster
``RUNNING``, after a fixed 0.25 s wait; ``Gateway().new_cluster()`` waits those 0.25 s on
every cluster (bench/dask.py). The scheduler is listening when the preload starts, so here the
first heartbeat goes at once; every later one keeps upstream's period and back-off.

Set by :meth:`statbox.spawners.local_dask.SandboxedLocalBackend.get_scheduler_command` in
place of upstream's module name; the command-line options are upstream's own.
"""

from __future__ import annotations

from typing import Any

from dask_gateway import scheduler_preload as upstream

_UpstreamService: Any = upstream.GatewaySchedulerService


class PromptGatewaySchedulerService(_UpstreamService):
    """Upstream's service with no wait before the first heartbeat."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.heartbeat_period:  # 0: heartbeats only on scaling, as upstream
            self.heartbeat_initial = 0


# upstream's dask_setup (a click command distributed calls with the --dg-* options) builds
# the service by this module-level name.
upstream.GatewaySchedulerService = PromptGatewaySchedulerService
dask_setup = upstream.dask_setup
