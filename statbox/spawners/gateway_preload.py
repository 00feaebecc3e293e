"""Dask Gateway's scheduler preload, reporting the scheduler to the gateway as soon as it listens.

Upstream's preload (``dask_gateway.scheduler_preload``) sends the scheduler's first heartbeat,
the message that tells the gateway the scheduler's address and so makes the cluster
``RUNNING``, after a fixed 0.25 s wait; ``Gateway().new_cluster()`` waits those 0.25 s on
every cluster (bench/dask.py). The scheduler is listening when the preload starts, so here the
first heartbeat goes at once; every later one keeps upstream's period and back-off.

With :data:`DEFERRED_DASHBOARD_ENV` set (the scheduler then started with ``--no-dashboard``),
the Bokeh dashboard is imported and served once the cluster is reported: importing Bokeh is
about a third of a scheduler's start, and nobody opens a dashboard in the first second. Until
then the dashboard's address answers every page but the dashboard's own (404 for those).

Set by :meth:`statbox.spawners.local_dask.SandboxedLocalBackend.get_scheduler_command` in
place of upstream's module name; the command-line options are upstream's own.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from typing import Any

from dask_gateway import scheduler_preload as upstream

DEFERRED_DASHBOARD_ENV = "STATBOX_DASK_DASHBOARD_DEFERRED"
DASHBOARD_MODULE = "distributed.dashboard.scheduler"

logger = logging.getLogger("statbox.gateway_preload")

_UpstreamService: Any = upstream.GatewaySchedulerService


class PromptGatewaySchedulerService(_UpstreamService):
    """Upstream's service with no wait before the first heartbeat."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.heartbeat_period:  # 0: heartbeats only on scaling, as upstream
            self.heartbeat_initial = 0
        self.dashboard_task: asyncio.Future[None] | None = None

    def listen(self, address: Any) -> None:
        super().listen(address)  # starts the heartbeats: the first is sent before the import
        if os.environ.get(DEFERRED_DASHBOARD_ENV):
            self.dashboard_task = asyncio.ensure_future(serve_dashboard(self.scheduler))

    def stop(self) -> None:
        super().stop()
        if self.dashboard_task is not None:
            self.dashboard_task.cancel()


def _dashboard_prefix(argv: list[str]) -> str:
    """The scheduler's ``--dashboard-prefix`` (distributed's default: none)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--dashboard-prefix="):
            return arg.partition("=")[2]
        if arg == "--dashboard-prefix" and i + 1 < len(argv):
            return argv[i + 1]
    return ""


async def serve_dashboard(scheduler: Any) -> None:
    """Import the dashboard in a thread (the scheduler keeps serving), then add its pages to
    the scheduler's web server, as ``Scheduler.__init__`` does without ``--no-dashboard``."""
    loop = asyncio.get_running_loop()
    try:
        dashboard = await loop.run_in_executor(None, importlib.import_module, DASHBOARD_MODULE)
    except ImportError:
        logger.warning(
            "No dashboard: %s cannot be imported (is bokeh installed?)", DASHBOARD_MODULE
        )
        return
    dashboard.connect(
        scheduler.http_application,
        scheduler.http_server,
        scheduler,
        prefix=_dashboard_prefix(sys.argv),
    )
    logger.info("Dashboard served")


# upstream's dask_setup (a click command distributed calls with the --dg-* options) builds
# the service by this module-level name.
upstream.GatewaySchedulerService = PromptGatewaySchedulerService
dask_setup = upstream.dask_setup
