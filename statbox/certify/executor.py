"""Executing prepared notebooks in isolated kernels on this machine, a worker slot each.

Used by the cohort runner (:mod:`statbox.certify.runner`) and, on a Dask worker, by
:func:`statbox.certify.dask.execute_on_worker`: one executor for both, so a kernel is isolated
the same way wherever it runs.
"""

from __future__ import annotations

import queue
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

from nbformat import NotebookNode

from statbox.certify.execution import Execution, execute
from statbox.certify.isolation import IsolationBackend, Job, Limits, kill_all, stray_processes
from statbox.certify.pipeline import Submission
from statbox.contract import CATALOG_ENV, DATA_ROOT_ENV


class LocalExecutor:
    """Executes prepared notebooks in isolated kernels, one per worker slot at a time."""

    def __init__(
        self,
        backend: IsolationBackend,
        limits: Limits,
        *,
        slots: int,
        hidden: Iterable[Path],
        data_root: Path,
        catalog: Path | None,
        inputs: Iterable[Path] = (),
        datasets: Iterable[Path] = (),
        catalog_text: str | None = None,
    ):
        """``datasets``: the dataset folders a kernel may read; ``catalog_text``: the
        catalog listing only those, written into each job (``catalog`` is then ignored;
        without it the kernel gets ``catalog`` as is: the rlimits backend, a Dask worker)."""
        self.backend = backend
        self.limits = limits
        self.hidden = _hideable(hidden, data_root)
        self.data_root = data_root
        self.catalog = catalog
        self.inputs = list(inputs)
        self.datasets = list(datasets)
        self.catalog_text = catalog_text
        self.slots: queue.Queue[int] = queue.Queue()
        for slot in range(slots):
            self.slots.put(slot)

    def close(self) -> None:
        self.backend.close()

    def environment(self, job: Job) -> dict[str, str]:
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(job.workdir),
            "LANG": "C.UTF-8",
            "TMPDIR": "/tmp",
            "IPYTHONDIR": str(job.workdir / ".ipython"),
            "MPLBACKEND": "Agg",
            "PYTHONNOUSERSITE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            DATA_ROOT_ENV: str(self.data_root),
        }
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = "1"  # each kernel is one of N: thread pools would oversubscribe
        if self.catalog_text is not None:
            env[CATALOG_ENV] = str(job.catalog)
        elif self.catalog is not None:
            env[CATALOG_ENV] = str(self.catalog)
        return env

    def __call__(self, nb: NotebookNode, submission: Submission, snapshot: str = "") -> Execution:
        slot = self.slots.get()
        job: Job | None = None
        try:
            job = Job.create(
                slot,
                self.limits,
                hidden=self.hidden,
                data_root=self.data_root,
                datasets=self.datasets,
            )
            job.env = self.environment(job)
            if self.catalog_text is not None:
                job.catalog.write_text(self.catalog_text)
                job.catalog.chmod(0o644)
            for path in self.inputs:
                shutil.copyfile(path, job.root / "inputs" / path.name)
            kill_all(stray_processes(None, self.backend.uid(job)))  # a crashed run's leftovers
            return execute(nb, job, self.backend, snapshot)
        finally:
            # The slot goes back whatever happened: a lost slot hangs the run.
            try:
                if job is not None:
                    kill_all(stray_processes(None, self.backend.uid(job)))
                    self.backend.release(job)
                    job.remove()
            finally:
                self.slots.put(slot)


def _hideable(paths: Iterable[Path], data_root: Path) -> list[Path]:
    """Paths to hide, minus any that would hide the Python the kernel runs on."""
    needed = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()]
    kept: list[Path] = []
    for path in paths:
        resolved = path.resolve()
        if any(resolved == n or resolved in n.parents for n in needed):
            continue
        if resolved not in kept:
            kept.append(resolved)
    return kept
