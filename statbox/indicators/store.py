"""The indicators' state: stage history, run records, published vintages, revisions.

Layout (``<state_dir>/indicators/``, written only by this library)::

    <id>/stage.json                  [{"stage", "by", "at"}, ...]: promotions, oldest first
    <id>/runs/<run_id>/run.json      a RunRecord; executed.ipynb; series.csv (if it passed)
    <id>/vintages/<period>/<n>.csv   the observations one successful run published (n = 1, 2...)
    <id>/journal.jsonl               the scheduler's fired slots (the scheduler's own file)

Invariants: every file is written whole (a temporary file renamed into place), so a reader
never sees half a record or half a vintage; vintage numbers of a period are 1, 2, ... with no
gap or repeat, even with several processes publishing at once (a lock file per indicator);
only a succeeded run has a vintage, and nothing else ever writes under ``vintages/``.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import itertools
import json
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from statbox.indicators.periods import LABEL_PATTERN

Trigger = Literal["schedule", "manual", "backfill"]
Outcome = Literal["succeeded", "failed"]
RUN_ID = re.compile(r"^[0-9]{8}T[0-9]{6}[0-9]{6}Z-[0-9A-Za-z-]{1,20}-[0-9a-f]{6}$")


class SourceRecord(BaseModel):
    """A catalog entry a run read, and the version of its data: each file's SHA-256."""

    entry: str
    files: dict[str, str] = Field(default_factory=dict)
    """Path relative to the data root -> SHA-256 of its bytes."""


class RunRecord(BaseModel):
    """What one run did (``runs/<run_id>/run.json``)."""

    model_config = ConfigDict(extra="ignore")

    run_id: str
    indicator: str
    period: str
    trigger: Trigger
    requested_by: str
    parameters: dict[str, Any]
    code_sha256: str
    """SHA-256 of the notebook's bytes as run."""
    sources: list[SourceRecord] = Field(default_factory=list)
    started_at: str
    finished_at: str | None = None
    seconds: float = 0.0
    attempts: int = 0
    outcome: Outcome = "failed"
    error: str | None = None
    vintage: int | None = None


class Revision(BaseModel):
    """An observation whose value changed between two consecutive vintages of a period."""

    period: str
    key: dict[str, str]
    """The observation's dimensions (TIME_PERIOD included)."""
    from_vintage: int
    to_vintage: int
    old: float | None
    """None: the observation was not in the earlier vintage."""
    new: float | None
    """None: the later vintage dropped it."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id(period: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{period}-{os.urandom(3).hex()}"


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """``path`` holds ``data`` whole, or what it held before (never a part)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


class IndicatorStore:
    """The state of one indicator under ``<state_dir>/indicators/<id>``."""

    def __init__(self, state_dir: Path, indicator: str):
        self.root = state_dir / "indicators" / indicator
        self.indicator = indicator

    # ----------------------------------------------------------------- stages
    def stage_history(self) -> list[dict[str, str]]:
        try:
            history = json.loads((self.root / "stage.json").read_text())
        except (FileNotFoundError, ValueError):
            return []
        return [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []

    def record_stage(self, stage: str, by: str) -> None:
        with self.lock():
            history = [*self.stage_history(), {"stage": stage, "by": by, "at": now_iso()}]
            write_atomic(self.root / "stage.json", json.dumps(history, indent=1).encode())

    # ----------------------------------------------------------------- runs
    def run_dir(self, run_id: str) -> Path:
        if not RUN_ID.match(run_id):
            raise ValueError(f"not a run id: {run_id!r}")
        return self.root / "runs" / run_id

    def save_run(self, record: RunRecord) -> None:
        data = record.model_dump_json(indent=1).encode()
        write_atomic(self.run_dir(record.run_id) / "run.json", data)

    def runs(self) -> list[RunRecord]:
        """Every run, newest first (a record that cannot be read is skipped)."""
        found = []
        directory = self.root / "runs"
        if not directory.is_dir():
            return []
        for path in directory.glob("*/run.json"):
            with contextlib.suppress(OSError, ValueError):
                found.append(RunRecord.model_validate_json(path.read_bytes()))
        return sorted(found, key=lambda r: r.run_id, reverse=True)

    # ----------------------------------------------------------------- vintages
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """This indicator's state, for one writer at a time (any process)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def vintages(self, period: str) -> list[int]:
        """The vintage numbers of ``period``, oldest first."""
        if not re.match(LABEL_PATTERN, period):
            return []
        directory = self.root / "vintages" / period
        if not directory.is_dir():
            return []
        return sorted(int(p.stem) for p in directory.glob("*.csv") if p.stem.isdigit())

    def periods(self) -> list[str]:
        directory = self.root / "vintages"
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir() if self.vintages(p.name))

    def publish(self, period: str, data: bytes) -> int:
        """Publish a succeeded run's observations as the period's next vintage; its number."""
        with self.lock():
            number = (self.vintages(period) or [0])[-1] + 1
            write_atomic(self.root / "vintages" / period / f"{number}.csv", data)
            return number

    def vintage_rows(self, period: str, number: int) -> list[dict[str, str]]:
        path = self.root / "vintages" / period / f"{number}.csv"
        return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))

    def revisions(self, dimensions: list[str], measure: str) -> list[Revision]:
        """Every observation that changed between consecutive vintages, oldest period first."""
        found: list[Revision] = []
        key_columns = [*dimensions, "TIME_PERIOD"]
        for period in self.periods():
            numbers = self.vintages(period)
            for before, after in itertools.pairwise(numbers):
                old = _values(self.vintage_rows(period, before), key_columns, measure)
                new = _values(self.vintage_rows(period, after), key_columns, measure)
                for key in sorted(old.keys() | new.keys()):
                    if old.get(key) != new.get(key):
                        found.append(
                            Revision(
                                period=period,
                                key=dict(zip(key_columns, key, strict=True)),
                                from_vintage=before,
                                to_vintage=after,
                                old=old.get(key),
                                new=new.get(key),
                            )
                        )
        return found


def _values(
    rows: list[dict[str, str]], key_columns: list[str], measure: str
) -> dict[tuple[str, ...], float | None]:
    values: dict[tuple[str, ...], float | None] = {}
    for row in rows:
        text = row.get(measure, "")
        values[tuple(row.get(c, "") for c in key_columns)] = float(text) if text else None
    return values
