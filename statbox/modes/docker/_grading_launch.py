"""Run one graded kernel's container in the foreground, for the kernel manager.

Run by the grader as ``python -I _grading_launch.py DOCKER_HOST CONTAINER_ID`` (the
``docker`` isolation backend made the container, not started). It starts the container,
copies its output to its own stdout (the job's kernel log) until the container ends, and
exits with the container's status, so the kernel manager sees the kernel end when the
container does. SIGTERM or SIGINT kill the container first. A SIGKILL cannot be caught: the
backend kills and removes the container by id itself (``stop_kernel``, ``release``).
"""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import Any

import docker


def main(base_url: str, container_id: str) -> int:
    api = docker.APIClient(base_url=base_url, version="auto", timeout=None)

    def stop(signum: int, frame: Any) -> None:
        with contextlib.suppress(Exception):
            api.kill(container_id)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    api.start(container_id)
    out = sys.stdout.buffer
    for chunk in api.logs(container_id, stream=True, follow=True):
        out.write(chunk)
        out.flush()
    status = int(api.wait(container_id).get("StatusCode", 1))
    return status if 0 <= status < 256 else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1], sys.argv[2]))
    except docker.errors.DockerException as exc:
        print(f"statbox sandbox: the kernel's container: {exc}", file=sys.stderr)
        sys.exit(70)
