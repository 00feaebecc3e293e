"""The hub's configurable-http-proxy, whose pid file can never make the hub signal a stranger.

At start JupyterHub reads the proxy's pid file and, if any process has that pid, sends it
SIGTERM twice and then SIGKILL, taking it for a proxy left by an earlier hub. After a crash
the file outlives the proxy, and the kernel may have given the pid to anything: a root
process was killed that way. Here the pid file has a record beside it
(:class:`~statbox.sandbox.records.ProcessRecord`: pid and start time), and a leftover is
stopped only if the process holding the pid is the one recorded; else the files are removed
and nothing is signalled.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from pathlib import Path

from jupyterhub.proxy import ConfigurableHTTPProxy

from statbox.sandbox.records import ProcessRecord

RECORD_SUFFIX = ".record"


class RecordedProxy(ConfigurableHTTPProxy):
    """configurable-http-proxy, its leftovers known by pid *and* start time."""

    def _record_file(self) -> Path:
        return Path(self.pid_file + RECORD_SUFFIX)

    def _write_pid_file(self) -> None:
        super()._write_pid_file()
        record = ProcessRecord.of(self.proxy_process.pid)
        self._record_file().write_text(json.dumps(record.state()))

    def _remove_process_files(self) -> None:
        super()._remove_process_files()
        if self.pid_file:
            self._record_file().unlink(missing_ok=True)

    def _check_previous_process(self) -> None:
        if not self.pid_file or not Path(self.pid_file).exists():
            return
        record = self._leftover()
        why = record.mismatch() if record is not None else "no record of it"
        if record is None or why is not None:
            self.log.warning(
                "Proxy pid file %s left by an earlier run: %s; nothing signalled",
                self.pid_file,
                why,
            )
            self._remove_process_files()
            return
        self.log.warning("Stopping the proxy left by an earlier run (pid %d)", record.pid)
        for signum in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
            if not record.signal(signum):
                break
            time.sleep(1)  # upstream's pace; the hub is not serving yet
        if record.is_running():
            raise RuntimeError(
                f"Failed to stop the proxy left by an earlier run (pid {record.pid})"
            )
        self._remove_process_files()

    def _leftover(self) -> ProcessRecord | None:
        """The record of the proxy the pid file names, if both agree on its pid."""
        with contextlib.suppress(OSError, ValueError):
            pid = int(Path(self.pid_file).read_text().strip())
            stored = json.loads(self._record_file().read_text())
            record = ProcessRecord.from_state(stored) if isinstance(stored, dict) else None
            if record is not None and record.pid == pid:
                return record
        return None
