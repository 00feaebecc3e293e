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

import ast
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from queue import Empty
from typing import Any

import zmq
import zmq.asyncio
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellExecutionComplete, CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async
from nbformat import NotebookNode
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import Engine
from papermill.execute import prepare_notebook_metadata
from traitlets import Any as AnyTrait
from traitlets import Integer, Unicode

from statbox.certify import bounded
from statbox.certify.isolation import IsolationBackend, Job, kill_all, stray_processes

UNCOUNTED_TYPES = {"status", "execute_input", "clear_output"}
"""iopub messages that carry nothing of the kernel's choosing beyond a few bytes (``status``
must always reach nbclient: it ends each cell). Every other kind (streams, display data and
its metadata, results, errors, comm and widget messages, anything new) counts against the
output cap."""
MESSAGE_LIMIT = 16 * 1024**2
"""Largest ZeroMQ message the grader accepts from a kernel: a bigger one is refused by
ZeroMQ itself (``ZMQ_MAXMSGSIZE``) before it is read into memory."""
ROLE_KEY = "statbox"
SNAPSHOT_VARIABLE = "__statbox_snapshot__"
SNAPSHOT_TIMEOUT = 5.0
"""Cell metadata key marking the cells the grader adds (``{"role": "answers"}``)."""


SANDBOX_PROGRAMS = {"sh", "bwrap", "setpriv", "unshare"}
"""Programs between the grader and a graded kernel (the cgroup's shell, bubblewrap and its
init), which :func:`_kernel_process` walks through to find the kernel."""


class KernelStopped(Exception):
    """The kernel no longer answers: the run ends here (the message is the reason)."""


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
        self._client_contexts: list[zmq.asyncio.Context] = []
        self._kernel_spec = KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="Python 3 (graded)",
            language="python",
            interrupt_mode="message",
            metadata={},
        )

    def client(self, **kwargs: Any) -> Any:
        # A context of the client's own, so that the message size cap applies to its
        # sockets only; destroyed with the job (:meth:`close_client_context`).
        context = zmq.asyncio.Context()
        context.setsockopt(zmq.MAXMSGSIZE, MESSAGE_LIMIT)
        self._client_contexts.append(context)
        return super().client(context=context, **kwargs)

    def close_client_context(self) -> None:
        for context in self._client_contexts:
            context.destroy(linger=0)
        self._client_contexts.clear()

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

    def reap(self) -> None:
        process = getattr(self.provisioner, "process", None)
        if process is not None:
            # still there 10 s after SIGKILL: leave it to the sweep
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)

    def kill_now(self) -> None:
        """Kill the kernel and everything in its sandbox at once (any thread)."""
        pid = self.sandbox_pid
        if pid is not None:
            strays = stray_processes(pid, self.backend.uid(self.job))
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            kill_all(strays)
        self.backend.stop_kernel(self.job)


class GradingClient(PapermillNotebookClient):
    """Papermill's client, with the grader's output cap and per-cell timeout handling."""

    output_limit = Integer(1024**2, help="Bytes of cell output kept; the rest is dropped.")
    answers_limit = Integer(1024**2, help="Bytes the answers cell may print.")
    snapshot_code = Unicode("", help="Code storing the answers' JSON in __statbox_snapshot__.")

    def __init__(self, nb_man: Any, **kw: Any):
        # Widget state is for a front end: the grader keeps none of it (nbclient would keep
        # every comm's state and buffers in memory and write them into the graded notebook).
        kw.setdefault("store_widget_state", False)
        super().__init__(nb_man, **kw)
        # no widget is emulated: an Output widget would reroute a cell's output
        self.comm_open_handlers: dict[str, Any] = {}
        self.output_used = 0
        self.answers_used = 0
        self.output_dropped = 0
        self.timed_out_cells: list[int] = []
        self.current_cell = -1
        self.invalid_messages = 0
        self.snapshot: dict[str, Any] | None = None
        self.snapshot_cell = -1

    def process_message(self, msg: dict[str, Any], cell: NotebookNode, cell_index: int) -> Any:
        if msg["msg_type"] not in UNCOUNTED_TYPES:
            size, depth = bounded.measure([msg.get("content"), msg.get("metadata")])
            # binary frames (a widget's buffers) ride beside the content: they count too
            size += sum(len(b) for b in msg.get("buffers") or () if hasattr(b, "__len__"))
            if depth > bounded.MAX_DEPTH:  # could not be written into the graded notebook
                size = self.output_limit + self.answers_limit + 1
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
        self._kill_strays()
        self.timed_out_cells.append(self.current_cell)
        return await super()._async_handle_timeout(timeout, cell)

    async def async_execute_cell(
        self, cell: NotebookNode, cell_index: int, *args: Any, **kwargs: Any
    ) -> NotebookNode:
        self.current_cell = cell_index
        result = await super().async_execute_cell(cell, cell_index, *args, **kwargs)
        if cell.get("cell_type") != "code" or cell.get("metadata", {}).get(ROLE_KEY):
            return result
        timed_out = cell_index in self.timed_out_cells
        if timed_out:
            self._kill_strays()  # what it started while it was being interrupted
        wanted = self.snapshot_code and (timed_out or cell.get("source", "").strip())
        if wanted and not await self._snapshot(cell_index) and timed_out:
            raise KernelStopped(
                f"the kernel stopped responding after cell {cell_index + 1} was "
                "interrupted at the cell time limit"
            )
        return result

    async def _snapshot(self, cell_index: int) -> bool:
        """Read the answers as they stand (a silent request, like a front end's variable
        inspector), so a kernel that dies later keeps the credit already earned; False if
        the kernel did not answer in time."""
        assert self.kc is not None
        msg_id = self.kc.execute(
            self.snapshot_code,
            silent=True,
            store_history=False,
            user_expressions={"answers": SNAPSHOT_VARIABLE},
            stop_on_error=False,
        )
        deadline = time.monotonic() + SNAPSHOT_TIMEOUT
        while time.monotonic() < deadline:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=0.5))
            except Empty:
                continue
            except (ValueError, RecursionError):  # see _async_poll_output_msg
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            value = msg["content"].get("user_expressions", {}).get("answers", {})
            text = value.get("data", {}).get("text/plain", "") if isinstance(value, dict) else ""
            if isinstance(text, str) and len(text) <= self.answers_limit:
                try:
                    literal = ast.literal_eval(text)
                    # the repr of JSON text; anything else (a kernel's json.dumps replaced) is not
                    answers = (
                        bounded.loads(literal, self.answers_limit)
                        if isinstance(literal, str)
                        else None
                    )
                except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
                    answers = None
                if isinstance(answers, dict) and not bounded.problem(answers, self.answers_limit):
                    self.snapshot = answers
                    self.snapshot_cell = cell_index
            return True
        return False

    def _kill_strays(self) -> None:
        km = self.km
        if isinstance(km, IsolatedKernelManager) and km.sandbox_pid is not None:
            kill_all(km.backend.cell_strays(km.job, _kernel_process(km.sandbox_pid)))

    async def _async_poll_output_msg(
        self, parent_msg_id: str, cell: NotebookNode, cell_index: int
    ) -> None:
        # nbclient's loop, except that a message the session cannot verify (a kernel that
        # ran out of memory while sending, or worse) is dropped instead of ending the run.
        assert self.kc is not None
        while True:
            try:
                msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=None))
            except (ValueError, RecursionError):  # e.g. JSON nested too deep to unpack
                self.invalid_messages += 1
                continue
            if msg["parent_header"].get("msg_id") == parent_msg_id:
                try:
                    self.process_message(msg, cell, cell_index)
                except CellExecutionComplete:
                    return

    execute_cell = run_sync(async_execute_cell)


_QUIET = logging.getLogger("statbox.certify.nbclient")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False  # a dying kernel is the trainee's reason, not the operator's log


class GradingEngine(Engine):
    """A papermill engine executing with :class:`GradingClient` (``client_ready`` receives
    the client before the kernel starts, so a watchdog can reach it)."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        client_ready = kwargs.pop("client_ready")
        # papermill's names for nbclient's (as its NBClientEngine maps them)
        kwargs["timeout"] = kwargs.pop("execution_timeout", None)
        kwargs["startup_timeout"] = kwargs.pop("start_timeout", 60)
        kwargs.pop("input_path", None)
        client = GradingClient(nb_man, kernel_name=kernel_name, log=_QUIET, **kwargs)
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
    snapshot: dict[str, Any] | None = None
    """The answers as read after the last cell that completed (None: never read)."""
    snapshot_cell: int = -1


def execute(
    nb: NotebookNode, job: Job, backend: IsolationBackend, snapshot_code: str = ""
) -> Execution:
    """Run ``nb`` (already prepared) for ``job`` isolated by ``backend``; with
    ``snapshot_code`` (see :func:`statbox.certify.notebook.answers_code`), the answers are
    also read after every cell."""
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
            iopub_timeout=4,
            raise_on_iopub_timeout=False,
            output_limit=limits.output,
            snapshot_code=snapshot_code,
            client_ready=lambda client: holder.setdefault("client", client),
        )
    except DeadKernelError:
        stopped = _death_reason(job, limits, expired.is_set(), backend.memory_killed(job))
    except KernelStopped as exc:
        stopped = str(exc)
    except CellTimeoutError as exc:
        stopped = f"stopped: {exc}".splitlines()[0][:200]
    except Exception as exc:  # the kernel did not start, or the connection broke
        if expired.is_set():
            stopped = _death_reason(job, limits, True, False)
        else:
            sandbox = [
                line for line in job.log_tail(800).splitlines() if "statbox sandbox:" in line
            ]
            detail = sandbox[-1] if sandbox else f"{type(exc).__name__}: {exc}"
            stopped = f"the kernel failed: {detail}"[:300]
    finally:
        timer.cancel()
        km.kill_now()
        # Given its kernel manager, nbclient leaves the cleaning up to its owner: reap the
        # sandbox process, close the channels and the control socket.
        client = holder.get("client")
        km.reap()
        if client is not None and client.kc is not None:
            client.kc.stop_channels()
        km.close_client_context()
        try:
            run_sync(km.cleanup_resources)()
        finally:
            backend.release(job)
            _close_thread_loop()
    return Execution(
        notebook=nb,
        stopped=stopped,
        timed_out_cells=list(client.timed_out_cells) if client else [],
        output_dropped=client.output_dropped if client else 0,
        seconds=time.monotonic() - started,
        snapshot=client.snapshot if client else None,
        snapshot_cell=client.snapshot_cell if client else -1,
    )


def _close_thread_loop() -> None:
    """Close the event loop jupyter_core's ``run_sync`` made for this thread: it would
    outlive a grading thread unclosed (a new one is made on the next call)."""
    import jupyter_core.utils

    holder = getattr(jupyter_core.utils, "_loop", None)
    loop = holder.get() if holder is not None else None
    if loop is not None and not loop.is_running() and not loop.is_closed():
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _death_reason(job: Job, limits: Any, expired: bool, memory_killed: bool) -> str:
    if expired:
        return f"stopped at the whole-notebook time limit ({limits.time} s)"
    tail = job.log_tail(400)
    if memory_killed or "MemoryError" in tail or "Cannot allocate memory" in tail:
        return f"the kernel died: out of memory (the cap is {limits.memory // 1024**2} MiB)"
    return "the kernel died while running the notebook (killed, crashed or exited)"


def _kernel_process(sandbox_pid: int) -> int | None:
    """The kernel itself: the sandbox launcher's only child (or the launcher, unsandboxed)."""
    import psutil

    try:
        process = psutil.Process(sandbox_pid)
    except psutil.Error:
        return None
    # down through the sandbox's own processes (the cgroup's shell execs bubblewrap, whose
    # PID namespace has a bubblewrap of its own as init) to the launcher, which is the kernel
    for _ in range(4):
        try:
            if os.path.basename(process.name()) not in SANDBOX_PROGRAMS:
                return process.pid
            children = process.children()
        except psutil.Error:
            return None
        if len(children) != 1:
            return process.pid
        process = children[0]
    return process.pid


def _dropped_notice(limit: int) -> NotebookNode:
    return NotebookNode(
        output_type="stream",
        name="stderr",
        text=f"[statbox: output beyond {limit // 1024} KiB was dropped by the grader]\n",
    )
