"""Running an indicator's notebook for one period, in the grading sandbox.

The notebook is parameterised the papermill way (:func:`papermill.parameterize.
parameterize_notebook`: an ``injected-parameters`` cell after the ``parameters`` cell, the
parameters recorded in the notebook's metadata) and executed by certify's engine
(:func:`statbox.certify.execution.execute`) in a kernel isolated by certify's backends:
with ``sandbox``, a bubblewrap allow-list under a grading uid of its own, no network, the
declared sources' folders read-only and a catalog listing only them; nothing of the state
directory (no secrets, no other indicator's runs or vintages), not the checkout.

What crosses back is the output CSV only, and only through an allow-list: the notebook
writes it into ``out/``, a folder of its job (as root a size-capped memory file system of its
own, mounted on the host and bound into the sandbox); the runner opens exactly
``out/<output>`` without following a link, takes it only if it is a regular file no larger
than :data:`OUTPUT_LIMIT`, and reads at most that many bytes. A link to ``/etc/shadow`` or a
2 GiB file is refused, never read.

Invariant: :meth:`Runner.attempt` returns (never raises for anything the notebook does), and
when it returns the kernel, its processes and its job directory are gone.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbformat import NotebookNode
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from statbox.certify.execution import execute
from statbox.certify.executor import LocalExecutor
from statbox.certify.isolation import (
    IsolationBackend,
    Job,
    Limits,
    RlimitsIsolation,
    SandboxIsolation,
    kill_all,
    mount_tmpfs,
    stray_processes,
    unmount,
)
from statbox.contract import CATALOG_ENV
from statbox.errors import EnvironmentProblem
from statbox.sandbox import Sandbox

OUTPUT_LIMIT = 16 * 1024**2
"""Largest output CSV a run may hand back (bytes); its folder holds no more, as root."""
OUT_DIR = "out"
MAX_SLOTS = 16
"""Kernels at once, at most (a backfill's workers are fewer)."""


@dataclass
class Attempt:
    """One execution of the notebook: the executed notebook, the output or why none."""

    notebook: NotebookNode | None
    output: bytes | None
    error: str | None
    seconds: float


def output_dir(job: Job) -> Path:
    return job.root / OUT_DIR


def prepare_output(backend: IsolationBackend, job: Job) -> None:
    """Give the job's ``out/`` folder to the kernel's uid: as root a memory file system of
    its own, capped a little above :data:`OUTPUT_LIMIT`, so a notebook cannot fill the disk
    through its output; otherwise the folder as it is (the read is capped all the same)."""
    out = output_dir(job)
    uid = backend.uid(job)
    if uid is not None:
        mount_tmpfs(out, OUTPUT_LIMIT + 1024**2, uid)
    else:
        out.chmod(0o700)


class IndicatorSandbox(SandboxIsolation):
    """The grading sandbox plus one writable folder, ``out/``, for the output CSV."""

    def prepare(self, job: Job) -> None:
        super().prepare(job)
        prepare_output(self, job)

    def sandbox(self, job: Job, argv: list[str]) -> Sandbox:
        return super().sandbox(job, argv).bind_read_write(output_dir(job))

    def release_output(self, job: Job) -> None:
        unmount(output_dir(job))


class IndicatorRlimits(RlimitsIsolation):
    """Resource limits only (no bubblewrap here): the notebook sees every file its user
    can read and the network. For a laptop; :meth:`describe` says so."""

    def prepare(self, job: Job) -> None:
        super().prepare(job)
        prepare_output(self, job)

    def release_output(self, job: Job) -> None:
        pass


BACKENDS: dict[str, str] = {
    "sandbox": "statbox.indicators.runner:IndicatorSandbox",
    "rlimits": "statbox.indicators.runner:IndicatorRlimits",
    "docker": "statbox.indicators.container:IndicatorDocker",
}
"""Certify's isolation backends with the output folder, by name: ``module:Class``, imported
only when chosen (the docker one needs the Docker client)."""


def indicator_backend(name: str, uid_base: int, **options: Any) -> IsolationBackend:
    """The backend called ``name`` (auto, sandbox, rlimits or docker) with the output folder;
    ``options``: the backend's own (docker: the image and the project)."""
    if name == "auto":
        name = "sandbox" if SandboxIsolation.unavailable() is None else "rlimits"
    if name not in BACKENDS:
        raise EnvironmentProblem(f"isolation {name!r} is not a backend ({', '.join(BACKENDS)})")
    module_name, class_name = BACKENDS[name].split(":")
    backend: IsolationBackend = getattr(importlib.import_module(module_name), class_name)(
        uid_base, **options
    )
    return backend


class Runner:
    """Executes indicator notebooks, one isolated kernel per worker slot at a time. The
    backend is made on the first run (listing indicators needs neither root nor cgroups)."""

    def __init__(
        self,
        isolation: str,
        limits: Limits,
        *,
        data_root: Path,
        catalog: Path | None,
        uid_base: int = 200000,
        slots: int = MAX_SLOTS,
        hidden: list[Path] | None = None,
        options: dict[str, Any] | None = None,
    ):
        self.isolation = isolation
        self.limits = limits
        self.data_root = data_root
        self.catalog = catalog
        """The catalog the sources are looked up in (kernels get a subset, never this file)."""
        self.uid_base = uid_base
        self.slots = slots
        self.hidden = hidden or []
        self.options = options or {}
        """The isolation backend's own keyword arguments (docker: the image, the project)."""
        self._executor: LocalExecutor | None = None
        self._lock = threading.Lock()

    @property
    def executor(self) -> LocalExecutor:
        with self._lock:
            if self._executor is None:
                backend = indicator_backend(self.isolation, self.uid_base, **self.options)
                self._executor = LocalExecutor(
                    backend,
                    self.limits,
                    slots=self.slots,
                    hidden=self.hidden,
                    data_root=self.data_root,
                    catalog=None,
                )
            return self._executor

    def describe(self) -> str:
        return self.executor.backend.describe()

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.close()
                self._executor = None

    def attempt(
        self,
        notebook: Path,
        parameters: dict[str, Any],
        output: str,
        datasets: list[Path],
        catalog_text: str | None,
    ) -> Attempt:
        """Run ``notebook`` once with ``parameters`` (plus ``output``, the CSV's path),
        reading ``datasets`` and a catalog ``catalog_text``; see the module docstring."""
        executor = self.executor
        backend = executor.backend
        started = time.monotonic()
        slot = executor.slots.get()
        job: Job | None = None
        try:
            job = Job.create(
                slot,
                self.limits,
                hidden=executor.hidden,
                data_root=self.data_root,
                datasets=datasets,
            )
            output_dir(job).mkdir(mode=0o700)
            job.env = executor.environment(job)
            if catalog_text is not None:
                job.catalog.write_text(catalog_text)
                job.catalog.chmod(0o644)
                job.env[CATALOG_ENV] = str(job.catalog)
            target = output_dir(job) / output
            nb = load_notebook_node(str(notebook))  # papermill's metadata and tags
            nb = parameterize_notebook(nb, {**parameters, "output": str(target)})
            kill_all(stray_processes(None, backend.uid(job)))  # a crashed run's leftovers
            execution = execute(nb, job, backend)
            error = execution.stopped or first_error(execution.notebook)
            data = None
            if error is None:
                data, error = read_output(target)
            return Attempt(execution.notebook, data, error, time.monotonic() - started)
        except EnvironmentProblem:
            raise
        except Exception as exc:  # the notebook cannot be read or parameterised
            return Attempt(None, None, f"{type(exc).__name__}: {exc}"[:300], 0.0)
        finally:
            try:
                if job is not None:
                    kill_all(stray_processes(None, backend.uid(job)))
                    backend.release(job)
                    release = getattr(backend, "release_output", None)
                    if release is not None:
                        release(job)
                    job.remove()
            finally:
                executor.slots.put(slot)


def first_error(nb: NotebookNode) -> str | None:
    """The first error a cell raised, as ``cell N: Name: value`` (None: no cell raised)."""
    for index, cell in enumerate(nb.get("cells", [])):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if output.get("output_type") == "error":
                value = str(output.get("evalue", "")).splitlines()
                reason = f"{output.get('ename', 'Error')}: {value[0] if value else ''}"
                return f"cell {index + 1} raised {reason}"[:300]
    return None


def read_output(path: Path) -> tuple[bytes | None, str | None]:
    """The output CSV at ``path``: (bytes, None), or (None, why it is refused). Only a
    regular file, not a link, no larger than :data:`OUTPUT_LIMIT`."""
    name = path.name
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, f"the notebook wrote no {name} (write it to the path in `output`)"
    except OSError as exc:  # ELOOP: a symbolic link
        return None, f"{name} is not a regular file the runner may read ({exc.strerror})"
    with contextlib.closing(os.fdopen(descriptor, "rb")) as handle:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            return None, f"{name} is not a regular file"
        if info.st_size > OUTPUT_LIMIT:
            return None, f"{name} is larger than {OUTPUT_LIMIT // 1024**2} MiB"
        data = handle.read(OUTPUT_LIMIT + 1)
    if len(data) > OUTPUT_LIMIT:
        return None, f"{name} is larger than {OUTPUT_LIMIT // 1024**2} MiB"
    return data, None
