"""``--dask``: the execute step on a Dask Gateway cluster, for cohorts too big for one machine.

Only execution moves: the grader prepares each notebook here (protected cells restored, the
trainee's parameters injected, the answers cell added) and a worker runs it in an isolated
kernel and sends the executed notebook back; the checks, the references and the cohort
secret never leave this process. On a worker the isolation backend is chosen as locally
(``auto``): the sandbox when the worker runs as root, else resource limits only, which is
what Dask Gateway's local backend gives (workers run as an unprivileged account); on
Kubernetes the worker's pod is the outer wall.

The cluster comes from ``dask_gateway.Gateway()`` configured by the environment, as for any
analyst (``DASK_GATEWAY__ADDRESS`` ...); ``STATBOX_CERTIFY_DASK_WORKERS`` (default 2) is how
many workers to ask for; the gateway caps it at the role's limit.
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from statbox.certify.execution import Execution
from statbox.certify.executor import LocalExecutor
from statbox.certify.isolation import Limits, backend_class
from statbox.certify.pipeline import Submission
from statbox.errors import EnvironmentProblem

WORKERS_ENV = "STATBOX_CERTIFY_DASK_WORKERS"
_executors: dict[tuple, Any] = {}
_lock = threading.Lock()


def execute_on_worker(
    notebook_json: str,
    trainee: str,
    snapshot: str,
    limits: dict[str, int],
    data_root: str,
    catalog: str | None,
    datasets: list[str] | None = None,
    catalog_text: str | None = None,
) -> dict[str, Any]:
    """Run one prepared notebook on this worker; plain data in and out (no pickled classes
    of the grader's, so the worker needs only Statbox installed). ``datasets`` and
    ``catalog_text``: what the kernel may read (:mod:`statbox.certify.data`)."""
    key = (tuple(sorted(limits.items())), data_root, catalog, tuple(datasets or ()), catalog_text)
    with _lock:
        executor = _executors.get(key)
        if executor is None:
            backend = backend_class("auto")()
            executor = LocalExecutor(
                backend,
                Limits(**limits),
                slots=64,
                hidden=[],
                data_root=Path(data_root),
                catalog=Path(catalog) if catalog else None,
                datasets=[Path(d) for d in datasets or ()],
                # the declared entries only; without file isolation a guide, not a wall
                catalog_text=catalog_text,
            )
            _executors[key] = executor
    nb = nbformat.reads(notebook_json, as_version=4)
    execution = executor(nb, Submission(trainee, b""), snapshot)
    return {
        "notebook": nbformat.writes(execution.notebook),
        "stopped": execution.stopped,
        "timed_out_cells": execution.timed_out_cells,
        "output_dropped": execution.output_dropped,
        "seconds": execution.seconds,
        "snapshot": execution.snapshot,
        "snapshot_cell": execution.snapshot_cell,
        "backend": executor.backend.name,
    }


class DaskExecutor:
    """Executes prepared notebooks on a Dask Gateway cluster it starts and stops."""

    def __init__(
        self,
        limits: Limits,
        *,
        data_root: Path,
        catalog: Path | None,
        gateway: Any = None,
        workers: int | None = None,
        datasets: list[Path] | None = None,
        catalog_text: str | None = None,
    ):
        from dask_gateway import Gateway

        self.limits = limits
        self.data_root = data_root
        self.catalog = catalog
        self.datasets = [str(d) for d in datasets or ()]
        self.catalog_text = catalog_text
        hint = "(is DASK_GATEWAY__ADDRESS set, as in a Statbox notebook?)"
        try:
            # Without an address dask-gateway raises ValueError here: a message, not a traceback.
            self.gateway = gateway or Gateway()
        except Exception as exc:
            raise EnvironmentProblem(
                f"--dask: no Dask Gateway to grade on: {type(exc).__name__}: {exc} {hint}; "
                "or grade on this machine without --dask"
            ) from None
        try:
            self.cluster = self.gateway.new_cluster()
        except Exception as exc:
            self.gateway.close()
            raise EnvironmentProblem(
                f"--dask: cannot start a Dask Gateway cluster: {type(exc).__name__}: {exc} {hint}"
            ) from None
        try:
            self.cluster.scale(workers or int(os.environ.get(WORKERS_ENV, "2")))
            self.client = self.cluster.get_client()
        except Exception as exc:
            self.cluster.shutdown()
            self.gateway.close()
            raise EnvironmentProblem(
                f"--dask: the Dask Gateway cluster did not start its workers: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        self.backends: set[str] = set()

    def __call__(self, nb: NotebookNode, submission: Submission, snapshot: str = "") -> Execution:
        future = self.client.submit(
            execute_on_worker,
            nbformat.writes(nb),
            submission.trainee,
            snapshot,
            asdict(self.limits),
            str(self.data_root),
            str(self.catalog) if self.catalog else None,
            self.datasets,
            self.catalog_text,
            key=f"grade-{submission.trainee}-{submission.sha256[:12]}",
            pure=False,
            retries=1,
        )
        try:
            result = future.result()
        except Exception as exc:  # a lost worker is the grader's problem, not the trainee's
            return Execution(nb, stopped=f"grader error: the Dask worker failed: {exc}"[:300])
        self.backends.add(result["backend"])
        return Execution(
            notebook=nbformat.reads(result["notebook"], as_version=4),
            stopped=result["stopped"],
            timed_out_cells=result["timed_out_cells"],
            output_dropped=result["output_dropped"],
            seconds=result["seconds"],
            snapshot=result["snapshot"],
            snapshot_cell=result["snapshot_cell"],
        )

    def close(self) -> None:
        try:
            self.client.close()
            self.cluster.shutdown()  # closes the cluster's own Gateway too
        finally:
            self.gateway.close()
            # Gateway.__del__ closes again, and a second close raises now that its loop has
            # stopped (dask-gateway 2026.3): mark both as done with.
            for gateway in (self.gateway, getattr(self.cluster, "gateway", None)):
                if gateway is not None and hasattr(gateway, "_loop_runner"):
                    del gateway._loop_runner
