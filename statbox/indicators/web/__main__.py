"""Run the indicators service: ``python -m statbox.indicators.web``, as the hub starts it.

One process, two jobs: the pages and API (:mod:`statbox.indicators.web.app`), and the
scheduler (:class:`statbox.indicators.schedule.Scheduler`), which at start publishes each
indicator's sample period once when it has no vintage yet, in the background: the pages answer
meanwhile. Everything comes from the environment the hub gives a managed service
(``JUPYTERHUB_*``, :data:`statbox.contract.INDICATORS_LISTEN_ENV` and ``STATBOX_RUNTIME``);
a missing variable or an unreadable runtime is a one-line message and exit code 2.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys

from statbox.classroom.setup import service_isolation
from statbox.classroom.web.app import listen_as_hub_service, unisolated_grading
from statbox.configure.runtime import load_runtime, runtime_problem
from statbox.contract import INDICATORS_LISTEN_ENV, RUNTIME_ENV
from statbox.contract.service import run_service
from statbox.indicators.library import Indicators
from statbox.indicators.schedule import Scheduler
from statbox.indicators.web.app import ServiceConfig, make_app, template_environment
from statbox.indicators.web.scheduled import LibraryRuns
from statbox.settings.model import LoadedSettings

REQUIRED = ("JUPYTERHUB_SERVICE_PREFIX", INDICATORS_LISTEN_ENV, RUNTIME_ENV)
MAX_BODY_BYTES = 64 * 1024
"""What the server reads of a request body: the forms carry a stage name and a token."""


async def serve() -> None:
    rt = load_runtime()
    # The runtime's settings carry absolute paths (statbox.configure.runtime.write_runtime).
    loaded = LoadedSettings(rt.settings, None, rt.paths)
    isolation = service_isolation(rt.settings)
    indicators = Indicators.from_settings(loaded, isolation=isolation)
    # An indicator's notebook is its owner's code: run beside the hub's secrets with only
    # resource limits, it could read them. Then this service serves pages and runs nothing.
    refused = None
    if unisolated_grading(isolation) is not None:
        refused = (
            "running indicators from the service needs the sandbox (certify.isolation: sandbox "
            "or auto where bubblewrap runs); with rlimits owners' notebooks would run as the "
            "hub's account. Run them on the host: statbox indicator run"
        )
    config = ServiceConfig(
        prefix="/" + os.environ["JUPYTERHUB_SERVICE_PREFIX"].strip("/") + "/",
        indicators=indicators,
        templates=template_environment,
        runs_refused=refused,
        language=rt.settings.hub.language,
    )
    # A new secret per start: a restart only sends browsers through the OAuth dance again.
    app = make_app(config, cookie_secret=secrets.token_bytes(32))
    where = listen_as_hub_service(app, os.environ[INDICATORS_LISTEN_ENV], MAX_BODY_BYTES)
    logging.getLogger("statbox.indicators").info("Indicators on %s", where)
    if refused:
        logging.getLogger("statbox.indicators").error("no scheduled runs: %s", refused)
        await asyncio.Event().wait()
    scheduler = Scheduler(LibraryRuns(indicators), rt.paths.state_dir)
    await scheduler.serve(workers=rt.settings.indicators.workers)


def main() -> int:
    return run_service("statbox.indicators.web", REQUIRED, serve, runtime_problem)


if __name__ == "__main__":
    sys.exit(main())
