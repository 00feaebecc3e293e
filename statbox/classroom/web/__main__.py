"""Run the classroom service: ``python -m statbox.classroom.web``, as the hub starts it.

Everything comes from the environment the hub gives a managed service (``JUPYTERHUB_*``,
:data:`statbox.contract.CLASSROOM_LISTEN_ENV` and ``STATBOX_RUNTIME``). A missing variable or
an unreadable runtime is a one-line message and exit code 2.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys

from statbox.classroom.setup import classroom_from_settings, service_isolation
from statbox.classroom.web.app import (
    MAX_BODY_BYTES,
    ServiceConfig,
    listen_as_hub_service,
    make_app,
    template_environment,
    unisolated_grading,
)
from statbox.classroom.web.public import PublicDocuments
from statbox.configure.hub import hub_public_url
from statbox.configure.runtime import load_runtime, runtime_problem
from statbox.contract import CLASSROOM_LISTEN_ENV, RUNTIME_ENV
from statbox.contract.service import run_service
from statbox.settings.model import LoadedSettings

REQUIRED = ("JUPYTERHUB_SERVICE_PREFIX", CLASSROOM_LISTEN_ENV, RUNTIME_ENV)


async def serve() -> None:
    rt = load_runtime()
    # The runtime's settings carry absolute paths (statbox.configure.runtime.write_runtime).
    loaded = LoadedSettings(rt.settings, None, rt.paths)
    isolation = service_isolation(rt.settings)
    classroom = classroom_from_settings(loaded, isolation=isolation)
    classroom.base_url = hub_public_url(rt)
    config = ServiceConfig(
        prefix="/" + os.environ["JUPYTERHUB_SERVICE_PREFIX"].strip("/") + "/",
        classroom=classroom,
        public=PublicDocuments.of(
            rt.settings, rt.paths.state_dir, classroom.issuer, classroom.base_url
        ),
        templates=template_environment,
        grading_refused=unisolated_grading(isolation),
        language=rt.settings.hub.language,
    )
    # A new secret per start: a restart only sends browsers through the OAuth dance again.
    app = make_app(config, cookie_secret=secrets.token_bytes(32))
    where = listen_as_hub_service(app, os.environ[CLASSROOM_LISTEN_ENV], MAX_BODY_BYTES)
    logging.getLogger("statbox.classroom").info("Classroom on %s", where)
    await asyncio.Event().wait()


def main() -> int:
    return run_service("statbox.classroom.web", REQUIRED, serve, runtime_problem)


if __name__ == "__main__":
    sys.exit(main())
