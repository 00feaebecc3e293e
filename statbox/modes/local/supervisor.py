"""What local mode's supervisor needs beyond starting processes: records and restart policy.

Invariants:

* A process is Statbox's own only if its pid, its start time, its command line and its
  control groups all match what was recorded when it started
  (:class:`statbox.sandbox.records.ProcessRecord`): a pid
  alone is reused by the system after a crash or a reboot, and whatever has it now is never
  signalled.
* The record of a run (``<state>/run/processes.json``) is written when each part is up and
  removed only by a clean stop: when it is still there at the next start, the previous run
  crashed, and what of it still runs is recognised by the record.
* A part that dies is restarted after a back-off that grows with each death; too many deaths
  in a short time (:class:`statbox.sandbox.restarts.RestartPolicy`) and the supervisor gives
  up on the run.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from statbox.sandbox.records import ProcessRecord

RECORD_FILE = "processes.json"
"""In ``<state>/run``: the record of the running stack's own processes."""


@dataclass
class RecordBook:
    """``<state>/run/processes.json``: name -> the part's :class:`ProcessRecord` (root's
    only), pid, start time, command line and control groups."""

    path: Path
    records: dict[str, ProcessRecord] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RecordBook:
        """The book at ``path``; empty when there is none or it cannot be read (a record
        that cannot be read names nothing, so nothing is signalled on its account)."""
        book = cls(path)
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            for name, entry in json.loads(path.read_text()).items():
                record = ProcessRecord.from_state(entry)
                if record is not None:
                    book.records[str(name)] = record
        return book

    def add(self, name: str, pid: int) -> None:
        """Record ``pid`` as the part ``name``; nothing if it is gone already."""
        record = ProcessRecord.of(pid, command=True)
        if record.started is not None:
            self.records[name] = record
            self.save()

    def save(self) -> None:
        partial = self.path.with_suffix(".partial")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump({name: r.state() for name, r in self.records.items()}, handle, indent=2)
        partial.replace(self.path)

    def living(self) -> dict[str, psutil.Process]:
        """The recorded processes that still run and are still the ones recorded."""
        found = {name: record.find() for name, record in self.records.items()}
        return {name: proc for name, proc in found.items() if proc is not None}

    def clear(self) -> None:
        self.records.clear()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
