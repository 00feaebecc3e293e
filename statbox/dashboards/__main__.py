"""Run the dashboards' front: ``python -m statbox.dashboards``, as the hub starts it.

Everything comes from the environment the hub gives a managed service (``JUPYTERHUB_*``,
:data:`statbox.contract.DASHBOARDS_GATEWAY_ENV` and ``DASHBOARDS_LISTEN_ENV``). A missing
variable is a one-line message and exit code 2.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubOAuth

from statbox.contract import DASHBOARDS_GATEWAY_ENV, DASHBOARDS_LISTEN_ENV
from statbox.contract.service import run_service
from statbox.dashboards.front import FrontConfig, make_app

REQUIRED = ("JUPYTERHUB_SERVICE_PREFIX", DASHBOARDS_GATEWAY_ENV, DASHBOARDS_LISTEN_ENV)


async def serve() -> None:
    front = FrontConfig(
        gateway_url=os.environ[DASHBOARDS_GATEWAY_ENV].rstrip("/"),
        prefix="/" + os.environ["JUPYTERHUB_SERVICE_PREFIX"].strip("/") + "/",
    )
    listen = urlsplit(os.environ[DASHBOARDS_LISTEN_ENV])
    HubOAuth.instance()  # configured from JUPYTERHUB_* before any handler asks for it
    # A new secret per start: a restart only sends browsers through the OAuth dance again.
    app = make_app(front, cookie_secret=secrets.token_bytes(32))
    app.listen(listen.port or 80, listen.hostname or "127.0.0.1", xheaders=True)
    logging.getLogger("statbox.dashboards").info(
        "Dashboards' front on %s, guarding %s", listen.netloc, front.gateway_url
    )
    await asyncio.Event().wait()


def main() -> int:
    return run_service("statbox.dashboards", REQUIRED, serve)


if __name__ == "__main__":
    sys.exit(main())
