"""The Docker engine, as every part of docker mode reaches it: one client, one way to run a
short-lived helper container.

A helper container does one job (publish into home volumes, collect from them, dump the
hub's database, copy a volume) with no network and small limits, and is removed by id
whatever happens; an engine problem is an EnvironmentProblem with a sentence to act on.

The Docker SDK is imported when a function needs it: the helper containers import this
module too (through :mod:`statbox.modes.docker.volumes`), and their image lacks the SDK.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from statbox.errors import EnvironmentProblem


def docker_client() -> Any:
    """A Docker API client from the environment (``DOCKER_HOST``); raises when none answers."""
    import docker

    try:
        client = docker.from_env(version="auto", timeout=600)
        client.ping()
    except Exception as exc:
        raise EnvironmentProblem(
            f"no Docker engine answers ({exc.__class__.__name__}): start dockerd, "
            "or point DOCKER_HOST at a running engine"
        ) from None
    return client


@dataclass
class HelperRun:
    """How a helper container ended: its exit code, output and (if asked) a folder of it."""

    code: int
    stdout: str
    stderr: str
    fetched: bytes = b""


def run_helper(
    client: Any, config: dict[str, Any], archive: bytes, timeout: float = 300, fetch: str = ""
) -> HelperRun:
    """Create the helper, give it ``archive`` in /tmp, run it to the end and, with
    ``fetch``, take that folder of it back as a tar archive. The container is removed (by
    id) whatever happens; an engine problem raises EnvironmentProblem."""
    import docker
    import requests

    try:
        container = client.containers.create(**config)
    except docker.errors.ImageNotFound:
        raise EnvironmentProblem(
            f"image {config['image']} is not in the engine: run `statbox images build`"
        ) from None
    try:
        if archive and not container.put_archive("/tmp", archive):
            raise EnvironmentProblem("could not copy the plan into the helper container")
        container.start()
        try:
            status = container.wait(timeout=timeout)
        except requests.exceptions.RequestException:
            raise EnvironmentProblem(
                f"the helper container did not finish within {timeout:.0f} s"
            ) from None
        run = HelperRun(
            int(status.get("StatusCode", 1)),
            container.logs(stdout=True, stderr=False).decode(errors="replace"),
            container.logs(stdout=False, stderr=True).decode(errors="replace"),
        )
        if fetch and run.code == 0:
            stream, _ = container.get_archive(fetch)
            run.fetched = b"".join(stream)
        return run
    except docker.errors.APIError as exc:
        raise EnvironmentProblem(f"the Docker engine refused the helper container: {exc}") from None
    finally:
        with contextlib.suppress(Exception):
            client.api.remove_container(container.id, force=True)


def stderr_tail(stderr: str, lines: int = 5) -> str:
    return " | ".join(stderr.strip().splitlines()[-lines:]) or "no output"
