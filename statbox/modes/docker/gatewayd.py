"""The gateway container's main process: Dask Gateway's server, started again in place when
it dies, so that users' clusters outlive it.

Every user's schedulers and workers run in this container as children of the gateway's
server; were the server the container's main process, its death would end the container and
every cluster with it. Here tini (PID 1, the image's entry point) runs this loop, and the loop
runs the server. A server that dies (killed, crashed) is started again after a back-off
(:class:`statbox.sandbox.restarts.RestartPolicy`); its clusters, reparented to tini, keep
running, and the new server takes them back from its database (on the gateway's volume,
encrypted with a kept key; ``stop_clusters_on_shutdown`` is off). Too many deaths in a short
time and the loop ends with the server's exit code: then Docker's restart policy and
``statbox up``'s supervisor start the container again (and its clusters are lost, as they
are with ``docker kill``). SIGTERM and SIGINT (``docker stop``, Ctrl-C) are passed on to the
server and end the loop when it exits.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import FrameType

from statbox.resources import resource
from statbox.sandbox.restarts import RestartPolicy


def gateway_command() -> list[str]:
    return [sys.executable, "-m", "dask_gateway_server", "-f", str(resource("gateway_config.py"))]


def supervise(command: list[str], policy: RestartPolicy) -> int:
    """Run ``command`` until it exits on a stop signal passed on to it (its code), or dies
    more often than ``policy`` allows (its last code, or 1)."""
    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def pass_on(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, pass_on)
    while True:
        child = subprocess.Popen(command)
        code = child.wait()
        if stopping:
            return code
        delay = policy.death()
        if delay is None:
            print(
                f"statbox: the gateway died {policy.limit + 1} times within "
                f"{policy.window:.0f} s; this container stops (its last lines say why)",
                file=sys.stderr,
                flush=True,
            )
            return code or 1
        print(
            f"statbox: the gateway exited with code {code}; starting it again in {delay:.1f} s "
            "(its clusters keep running)",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(delay)
        if stopping:
            return code


def exit_status(code: int) -> int:
    """A child's return code as an exit status: killed by signal N is 128 + N (as tini and
    shells say it), so Docker reports a killed gateway as 137, not as a negative number."""
    return 128 - code if code < 0 else code


def main() -> None:
    sys.exit(exit_status(supervise(gateway_command(), RestartPolicy())))


if __name__ == "__main__":
    main()
