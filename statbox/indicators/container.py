"""Indicator runs in docker mode: certify's container per kernel, plus the run's output folder.

Kept apart from :mod:`statbox.indicators.runner` so that the Docker client is imported only
when the docker backend is chosen (as certify resolves its backends by name).
"""

from __future__ import annotations

from statbox.certify.isolation import Job, unmount
from statbox.indicators.runner import output_dir, prepare_output
from statbox.modes.docker.grading import DockerIsolation


class IndicatorDocker(DockerIsolation):
    """The grading container plus one writable folder, ``out/``, for the output CSV."""

    def prepare(self, job: Job) -> None:
        super().prepare(job)
        prepare_output(self, job)

    def extra_volumes(self, job: Job) -> dict[str, dict[str, str]]:
        out = str(output_dir(job))
        return {out: {"bind": out, "mode": "rw"}}

    def release_output(self, job: Job) -> None:
        unmount(output_dir(job))
