"""How a service the hub starts (the dashboards' front, the classroom) runs: one entry point.

JupyterHub gives a managed service its environment; a service started by hand without it says
which variables are missing in one line and exits 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Iterable
from typing import Any


def run_service(
    name: str,
    required: Iterable[str],
    serve: Callable[[], Coroutine[Any, Any, None]],
    check: Callable[[], str | None] = lambda: None,
) -> int:
    """Serve ``serve()`` until interrupted; exit code 2 with one line naming what is missing
    (a variable of ``required``, or what ``check`` returns) when the hub did not start it."""
    missing = [variable for variable in required if not os.environ.get(variable)]
    if missing:
        print(
            f"{name}: {', '.join(missing)} not set: the hub starts this service "
            "and sets them (JupyterHub.services in statbox.configure.hub)",
            file=sys.stderr,
        )
        return 2
    problem = check()
    if problem is not None:
        print(f"{name}: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(name)s] %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0
