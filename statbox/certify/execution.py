"""Executing one prepared notebook with papermill in a fresh, isolated kernel.

:func:`execute` runs the notebook through a papermill engine (:class:`GradingEngine`) whose
client (:class:`GradingClient`, a ``PapermillNotebookClient``) adds what grading needs:

- the kernel comes from :class:`IsolatedKernelManager`: ZeroMQ over IPC sockets in the job's
  directory (never a TCP port: papermill#511's race between kernels picking the same free
  port cannot happen), started through the isolation backend's command, with a clean
  environment, its stdout and stderr in the job's log, and ``message`` interrupts (the
  sandboxed kernel is not in the grader's process group);
- every cell runs even if an earlier one raised (papermill stops at the first error; a
  grader wants each task's answer), and a cell over the per-cell limit is interrupted, its
  stray processes killed, and marked with an error, and the rest go on;
- a watchdog kills the kernel at the whole-notebook limit;
- output beyond the cap is dropped as it arrives, so a flood never reaches memory or disk.

Invariant: :func:`execute` returns (never raises for anything the notebook does) and, when
it returns, the kernel and every process it started are gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import Engine
from papermill.execute import prepare_notebook_metadata
from traitlets import Any as AnyTrait
from traitlets import Integer

from .isolation import IsolationBackend, Job, kill_all, stray_processes

OUTPUT_TYPES = {"stream", "display_data", "execute_result", "error", "update_display_data"}
ROLE_KEY = "statbox"
"""Cell metadata key marking the cells the grader adds (``{"role": "answers"}``)."""


class IsolatedKernelManager(AsyncKernelManager):
    """A kernel manager for one graded kernel of a :class:`Job`."""

    job: Any = AnyTrait()
    backend: Any = AnyTrait()

    def __init__(self, job: Job, backend: IsolationBackend, **kw: Any):
        super().__init__(
            job=job,
            backend=backend,
            transport="ipc",
            ip=str(job.ipc_prefix),
            connection_file=str(job.connection_file),
            cache_ports=False,
            **kw,
        )
        self._kernel_spec = KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="Python 3 (graded)",
            language="python",
            interrupt_mode="message",
            metadata={},
        )

    def write_connection_file(self, **kwargs: Any) -> None:
        super().write_connection_file(**kwargs)
        self.backend.own_for_kernel(self.job, self.job.connection_file, 0o400)
        self.backend.own_for_kernel(self.job, self.job.connection_file.parent, 0o500)

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        argv = super().format_kernel_cmd(extra_arguments)
        return self.backend.kernel_command(self.job, argv)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        kw["env"] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        kw["cwd"] = str(self.job.root)
        kw["stdin"] = open(os.devnull)  # noqa: SIM115 (Popen keeps it; closed with the process)
        log = open(self.job.log_file, "ab")  # noqa: SIM115 (as above)
        kw["stdout"] = kw["stderr"] = log
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        finally:
            kw["stdin"].close()
            log.close()

    @property
    def sandbox_pid(self) -> int | None:
        process = getattr(self.provisioner, "process", None)
        return process.pid if process is not None else None

    def kill_now(self) -> None:
        """Kill the kernel and everything in its sandbox at once (any thread)."""
        pid = self.sandbox_pid
        if pid is None:
            return
        strays = stray_processes(pid, self.backend.uid(self.job))
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        kill_all(strays)


class GradingClient(PapermillNotebookClient):
    """Papermill's client, with the grader's output cap and per-cell timeout handling."""

    output_limit = Integer(1024**2, help="Bytes of cell output kept; the rest is dropped.")
    answers_limit = Integer(1024**2, help="Bytes the answers cell may print.")

    def __init__(self, nb_man: Any, **kw: Any):
        super().__init__(nb_man, **kw)
        self.output_used = 0
        self.answers_used = 0
        self.output_dropped = 0
        self.timed_out_cells: list[int] = []
        self.current_cell = -1

    def process_message(self, msg: dict[str, Any], cell: NotebookNode, cell_index: int) -> Any:
        if msg["msg_type"] in OUTPUT_TYPES:
            size = _message_size(msg["content"])
            if cell.get("metadata", {}).get(ROLE_KEY, {}).get("role") == "answers":
                self.answers_used += size
                if self.answers_used > self.answers_limit:
                    return None
            elif self.output_used + size > self.output_limit:
                if not self.output_dropped:
                    cell.outputs.append(_dropped_notice(self.output_limit))
                self.output_dropped += size
                return None
            else:
                self.output_used += size
        return super().process_message(msg, cell, cell_index)

    async def _async_handle_timeout(
        self, timeout: int, cell: NotebookNode | None = None
    ) -> dict[str, Any] | None:
        km = self.km
        if isinstance(km, IsolatedKernelManager) and km.sandbox_pid is not None:
            kernel = _kernel_process(km.sandbox_pid)
            if kernel is not None:
                kill_all(stray_processes(kernel, None))
        self.timed_out_cells.append(self.current_cell)
        return await super()._async_handle_timeout(timeout, cell)

    async def async_execute_cell(
        self, cell: NotebookNode, cell_index: int, *args: Any, **kwargs: Any
    ) -> NotebookNode:
        self.current_cell = cell_index
        return await super().async_execute_cell(cell, cell_index, *args, **kwargs)

    execute_cell = run_sync(async_execute_cell)


class GradingEngine(Engine):
    """A papermill engine executing with :class:`GradingClient` (``client_ready`` receives
    the client before the kernel starts, so a watchdog can reach it)."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        client_ready = kwargs.pop("client_ready")
        client = GradingClient(nb_man, kernel_name=kernel_name, **kwargs)
        client_ready(client)
        return client.execute()


@dataclass
class Execution:
    """What running a notebook gave: the executed notebook and what went wrong."""

    notebook: NotebookNode
    stopped: str | None = None
    """Why the run ended early (kernel died, whole-notebook limit, did not start), or None."""
    timed_out_cells: list[int] = field(default_factory=list)
    output_dropped: int = 0
    seconds: float = 0.0


def execute(nb: NotebookNode, job: Job, backend: IsolationBackend) -> Execution:
    """Run ``nb`` (already prepared) for ``job`` isolated by ``backend``."""
    limits = job.limits
    nb = prepare_notebook_metadata(nb, "submission.ipynb", "graded.ipynb")
    km = IsolatedKernelManager(job, backend)
    backend.prepare(job)
    holder: dict[str, Any] = {}
    expired = threading.Event()

    def watchdog() -> None:
        expired.set()
        km.kill_now()

    timer = threading.Timer(limits.time, watchdog)
    timer.daemon = True
    started = time.monotonic()
    stopped: str | None = None
    timer.start()
    try:
        GradingEngine.execute_notebook(
            nb,
            "python3",
            output_path=None,
            progress_bar=False,
            log_output=False,
            km=km,
            start_timeout=60,
            execution_timeout=limits.cell_time,
            allow_errors=True,
            interrupt_on_timeout=True,
            error_on_timeout={
                "ename": "CellTimeoutError",
                "evalue": f"the cell ran longer than the cell time limit ({limits.cell_time} s)",
                "traceback": [],
            },
            shutdown_kernel="immediate",
            iopub_timeout=10,
            raise_on_iopub_timeout=False,
            output_limit=limits.output,
            client_ready=lambda client: holder.setdefault("client", client),
        )
    except DeadKernelError:
        stopped = _death_reason(job, limits, expired.is_set())
    except CellTimeoutError as exc:
        stopped = f"stopped: {exc}".splitlines()[0][:200]
    except Exception as exc:  # the kernel did not start, or the connection broke
        if expired.is_set():
            stopped = _death_reason(job, limits, True)
        else:
            sandbox = [
                line for line in job.log_tail(800).splitlines() if "statbox sandbox:" in line
            ]
            detail = sandbox[-1] if sandbox else f"{type(exc).__name__}: {exc}"
            stopped = f"the kernel failed: {detail}"[:300]
    finally:
        timer.cancel()
        km.kill_now()
    client = holder.get("client")
    return Execution(
        notebook=nb,
        stopped=stopped,
        timed_out_cells=list(client.timed_out_cells) if client else [],
        output_dropped=client.output_dropped if client else 0,
        seconds=time.monotonic() - started,
    )


def _death_reason(job: Job, limits: Any, expired: bool) -> str:
    if expired:
        return f"stopped at the whole-notebook time limit ({limits.time} s)"
    tail = job.log_tail(400)
    if "MemoryError" in tail or "Cannot allocate memory" in tail:
        return f"the kernel died: out of memory (the cap is {limits.memory // 1024**2} MiB)"
    return "the kernel died while running the notebook (killed, crashed or exited)"


def _kernel_process(sandbox_pid: int) -> int | None:
    """The kernel itself: the sandbox launcher's only child (or the launcher, unsandboxed)."""
    import psutil

    try:
        process = psutil.Process(sandbox_pid)
        children = process.children()
    except psutil.Error:
        return None
    if os.path.basename(process.name()) == "unshare" and children:
        return children[0].pid
    return sandbox_pid


def _message_size(content: dict[str, Any]) -> int:
    size = len(content.get("text", ""))
    for value in (content.get("data") or {}).values():
        size += len(value) if isinstance(value, str) else len(str(value))
    size += sum(len(line) for line in content.get("traceback") or [])
    return size + 64


def _dropped_notice(limit: int) -> NotebookNode:
    return NotebookNode(
        output_type="stream",
        name="stderr",
        text=f"[statbox: output beyond {limit // 1024} KiB was dropped by the grader]\n",
    )
