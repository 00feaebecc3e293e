"""When indicators run on their own: each indicator's cron, in its time zone, and a journal.

The invariant: a slot (an instant the cron names) runs at most once, and the latest slot that
fell due runs even when nothing was up at that instant (a stack down over the weekend runs
Monday's slot once when it comes back; earlier missed slots are not caught up: a period's
latest vintage is what a reader needs, and ``statbox indicator backfill`` fills history).

How it holds with two schedulers, restarts and crashes, per indicator:

* ``<id>/journal.jsonl`` records every decision as one JSON line, appended and fsynced under
  an exclusive ``flock`` of the journal itself: ``armed`` (the first time a scheduler saw the
  indicator: slots before it are history, not missed runs), ``claimed`` (a slot about to run,
  written *before* the run starts), ``finished`` (its run's id and outcome) and ``abandoned``.
* ``<id>/schedule.lock`` is ``flock``-ed for the whole of a run by whoever runs it, and taken
  before the journal is read. The kernel drops it when its holder dies (kill -9 included), so
  a ``claimed`` slot without ``finished`` whose lock is free is a run that died: it is claimed
  again (attempt 2) and run once more; a slot claimed twice that never finished is abandoned.
  While a run holds the lock, every other scheduler leaves that indicator alone.

Cron expressions are evaluated by `cronsim <https://github.com/cuu508/cronsim>`_ (Healthchecks'
maintained evaluator): pure, no threads of its own, iterates backwards as well as forwards
(the latest slot due is one step back from now, not a scan from the last run) and reproduces
Debian cron around daylight-saving changes: a time skipped in spring runs at the first
minute after the gap, a time that happens twice in autumn runs once. APScheduler's
``CronTrigger`` evaluates forwards only and comes with a scheduler we do not need. Six
fields (seconds first) are accepted too, for schedules seconds apart in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from statbox.errors import BadInput

log = logging.getLogger("statbox.indicators.schedule")

JOURNAL = "journal.jsonl"
RUN_LOCK = "schedule.lock"
ATTEMPTS = 2
"""How many times a slot is started in all: once, and once more if its first run died."""
LONGEST_NAP = 30.0
"""Seconds a scheduler sleeps at most between looks: it notices a changed clock soon."""


def check_schedule(cron: str, timezone: str) -> str | None:
    """Why ``cron`` in ``timezone`` is no schedule, in one sentence; None when it is one."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {timezone!r}: use an IANA name such as Europe/London"
    try:
        next(CronSim(cron, datetime.now(zone)))
    except (CronSimError, StopIteration) as exc:
        return f"{cron!r} is not a cron expression (5 fields: minute hour day month weekday): {exc}"
    return None


def _zone(timezone: str) -> ZoneInfo:
    problem = check_schedule("* * * * *", timezone)
    if problem:
        raise BadInput(problem)
    return ZoneInfo(timezone)


def _step(cron: str, zone: ZoneInfo, moment: datetime, reverse: bool = False) -> datetime | None:
    try:
        return next(CronSim(cron, moment.astimezone(zone), reverse=reverse)).astimezone(UTC)
    except StopIteration:
        return None


def latest_slot(cron: str, timezone: str, now: datetime) -> datetime | None:
    """The latest instant at or before ``now`` (to the second) that ``cron`` names in
    ``timezone``, in UTC; None if there is none in the last 50 years."""
    zone = _zone(timezone)
    # Reverse iteration yields instants strictly before its start: start one second later.
    found = _step(cron, zone, now.replace(microsecond=0) + timedelta(seconds=1), reverse=True)
    # Debian cron's rules make cronsim walk in wall-clock time: in the hour an autumn change
    # repeats, the step back can land a day early. Walk forwards from there to the latest
    # instant that is not after now (a step or two).
    while found is not None:
        later = _step(cron, zone, found)
        if later is None or later > now or later <= found:
            break
        found = later
    return found


def next_slot(cron: str, timezone: str, now: datetime) -> datetime | None:
    """The first instant after ``now`` that ``cron`` names in ``timezone``, in UTC."""
    zone = _zone(timezone)
    found = _step(cron, zone, now)
    # In the repeated autumn hour, a wall-clock step can name an instant already past.
    while found is not None and found <= now:
        later = _step(cron, zone, found)
        if later is None or later <= found:
            return None
        found = later
    return found


# ----------------------------------------------------------------------------- journal


def _stamp(moment: datetime) -> str:
    """A slot (cron names whole seconds)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _when(moment: datetime) -> str:
    """When a decision was taken: to the millisecond, so that a catch-up shows its lateness."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


class Journal:
    """One indicator's ``journal.jsonl``: read and appended only under its lock."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / JOURNAL

    @contextlib.contextmanager
    def locked(self) -> Iterator[JournalWriter]:
        """The journal, exclusively: no other scheduler reads or writes it meanwhile."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield JournalWriter(handle)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def entries(self) -> list[dict[str, Any]]:
        """Every entry (a reader that only looks, like the pages, needs no lock: lines are
        appended whole)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return _parse(text)


def _parse(text: str) -> list[dict[str, Any]]:
    entries = []
    for line in text.splitlines():
        # A line cut short by a crash mid-write is no decision: skip it.
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


class JournalWriter:
    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle

    def entries(self) -> list[dict[str, Any]]:
        self.handle.seek(0)
        return _parse(self.handle.read())

    def append(self, entry: dict[str, Any]) -> None:
        """Write one line and make it durable before anything acts on it."""
        self.handle.seek(0, os.SEEK_END)
        self.handle.write(json.dumps(entry, sort_keys=True) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())


# ----------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Decision:
    """What the journal and the clock say to do for one indicator now."""

    event: str
    """``armed``, ``claimed`` or ``abandoned``."""
    slot: datetime | None = None
    attempt: int = 1

    @property
    def runs(self) -> bool:
        return self.event == "claimed"


def decide(
    entries: Sequence[dict[str, Any]], cron: str, timezone: str, now: datetime
) -> Decision | None:
    """The next step for one indicator whose run lock the caller holds (so no run of it is
    under way anywhere), from its journal ``entries``; None when there is nothing to do."""
    if not any(entry.get("event") == "armed" for entry in entries):
        return Decision("armed")
    claims: dict[str, int] = {}
    closed: set[str] = set()
    for entry in entries:
        slot = str(entry.get("slot", ""))
        if entry.get("event") == "claimed":
            claims[slot] = claims.get(slot, 0) + 1
        elif entry.get("event") in ("finished", "abandoned"):
            closed.add(slot)
    for slot, count in claims.items():
        if slot not in closed:
            # Claimed, never finished, and nobody holds the run lock: that run died.
            moment = datetime.fromisoformat(slot)
            if count < ATTEMPTS:
                return Decision("claimed", moment, count + 1)
            return Decision("abandoned", moment, count)
    horizon = max(
        datetime.fromisoformat(str(entry.get("slot") or entry.get("at")))
        for entry in entries
        if entry.get("event") in ("armed", "claimed")
    )
    slot_due = latest_slot(cron, timezone, now)
    if slot_due is None or slot_due <= horizon:
        return None
    return Decision("claimed", slot_due, 1)


# ----------------------------------------------------------------------------- scheduler


@dataclass(frozen=True)
class Scheduled:
    """An indicator as the scheduler sees it."""

    indicator: str
    owner: str
    cron: str
    timezone: str
    backfill: tuple[str, str] | None = None
    """The sample period (first, last) a new stack publishes at first start."""


@dataclass(frozen=True)
class Outcome:
    run_id: str
    outcome: str
    error: str = ""


class ScheduledRuns(Protocol):
    """What the scheduler runs: :class:`statbox.indicators.library.Indicators` behind the
    service's adapter, or a test's recorder."""

    def scheduled(self) -> Sequence[Scheduled]: ...

    def run(self, item: Scheduled, slot: datetime) -> Outcome:
        """Run ``item`` as its owner (``trigger="schedule"``) for the slot's period."""
        ...

    def backfill(self, item: Scheduled) -> list[Outcome]:
        """Backfill ``item``'s sample period as its owner."""
        ...

    def published(self, item: Scheduled) -> bool:
        """Whether ``item`` has a vintage of any period."""
        ...


@dataclass
class Claim:
    """A slot this scheduler claimed: the run lock stays held until :meth:`release`."""

    item: Scheduled
    slot: datetime
    attempt: int
    lock: IO[bytes]

    def release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self.lock, fcntl.LOCK_UN)
        self.lock.close()


class Scheduler:
    """Claims due slots in the journals under ``state_dir/indicators`` and runs them."""

    def __init__(
        self,
        runs: ScheduledRuns,
        state_dir: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.runs = runs
        self.root = state_dir / "indicators"
        self.clock = clock
        self.me = f"{socket.gethostname()}:{os.getpid()}"

    def journal(self, indicator: str) -> Journal:
        return Journal(self.root / indicator)

    def claim_due(self, now: datetime | None = None) -> list[Claim]:
        """Claim, in the journals, every slot that is due now; the caller runs each claim
        (:meth:`run_claim`). An indicator whose run is under way anywhere is left alone."""
        claims: list[Claim] = []
        for item in self.runs.scheduled():
            if not item.cron:
                continue  # run by hand only
            claim = self._claim(item, now)
            if claim is not None:
                claims.append(claim)
        return claims

    def _run_lock(self, indicator: str) -> IO[bytes] | None:
        """The indicator's run lock, held; None when a run of it is under way (here or in
        another scheduler). Not inherited by children: a notebook's kernel outliving a
        killed service does not keep it."""
        folder = self.root / indicator
        folder.mkdir(parents=True, exist_ok=True)
        lock = (folder / RUN_LOCK).open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return None
        return lock

    def _claim(self, item: Scheduled, now: datetime | None) -> Claim | None:
        lock = self._run_lock(item.indicator)
        if lock is None:
            return None
        try:
            with self.journal(item.indicator).locked() as journal:
                # The clock is read once the journal is ours: waiting for it must not make
                # the decision about an earlier instant than the one it is taken at.
                now = now or self.clock()
                decision = decide(journal.entries(), item.cron, item.timezone, now)
                if decision is None:
                    lock.close()
                    return None
                entry: dict[str, Any] = {"event": decision.event, "at": _when(now), "by": self.me}
                if decision.slot is not None:
                    entry |= {"slot": _stamp(decision.slot), "attempt": decision.attempt}
                journal.append(entry)
                log.info("%s: %s", item.indicator, entry)
                if not decision.runs:
                    lock.close()
                    return None
                assert decision.slot is not None
                return Claim(item, decision.slot, decision.attempt, lock)
        except BaseException:
            lock.close()
            raise

    def run_claim(self, claim: Claim) -> Outcome:
        """Run a claimed slot, record how it ended, release its run lock."""
        try:
            try:
                outcome = self.runs.run(claim.item, claim.slot)
            except Exception as exc:  # the run's own failures are in its record; this is ours
                log.exception("%s: scheduled run of %s failed", claim.item.indicator, claim.slot)
                outcome = Outcome("", "failed", str(exc)[:300])
            with self.journal(claim.item.indicator).locked() as journal:
                journal.append(
                    {
                        "event": "finished",
                        "slot": _stamp(claim.slot),
                        "at": _when(self.clock()),
                        "run_id": outcome.run_id,
                        "outcome": outcome.outcome,
                        "error": outcome.error,
                    }
                )
            return outcome
        finally:
            claim.release()

    def claim_backfills(self) -> list[Claim]:
        """Claim the first-start backfill of each indicator that has a sample period
        (``period.backfill``) and no vintage yet: a new stack shows series at once. Two
        attempts at most, like a slot; an indicator being run elsewhere is left to that run.
        Quick (locks and a journal line): the runs are :meth:`run_backfill`'s."""
        claims: list[Claim] = []
        now = self.clock()
        for item in self.runs.scheduled():
            if item.backfill is None:
                continue
            lock = self._run_lock(item.indicator)
            if lock is None:
                continue
            with self.journal(item.indicator).locked() as journal:
                tries = sum(1 for e in journal.entries() if e.get("event") == "backfill")
                if tries >= ATTEMPTS or self.runs.published(item):
                    lock.close()
                    continue
                first, last = item.backfill
                journal.append(
                    {"event": "backfill", "first": first, "last": last, "at": _when(now),
                     "by": self.me}
                )  # fmt: skip
            claims.append(Claim(item, now, tries + 1, lock))
        return claims

    def run_backfill(self, claim: Claim) -> int:
        """Run a claimed backfill, record how it ended, release the run lock; the number
        of periods published."""
        try:
            try:
                outcomes = self.runs.backfill(claim.item)
            except Exception as exc:
                log.exception("%s: first backfill failed", claim.item.indicator)
                outcomes = [Outcome("", "failed", str(exc)[:300])]
            good = sum(1 for outcome in outcomes if outcome.outcome == "succeeded")
            with self.journal(claim.item.indicator).locked() as journal:
                journal.append(
                    {"event": "backfilled", "at": _when(self.clock()), "runs": len(outcomes),
                     "succeeded": good}
                )  # fmt: skip
            return good
        finally:
            claim.release()

    def first_backfill(self) -> dict[str, int]:
        """Claim and run the first-start backfills one after another (tests, the CLI)."""
        return {c.item.indicator: self.run_backfill(c) for c in self.claim_backfills()}

    def tick(self, now: datetime | None = None) -> list[Outcome]:
        """Claim and run what is due, one after another (tests, and the CLI)."""
        return [self.run_claim(claim) for claim in self.claim_due(now)]

    def nap(self, now: datetime | None = None) -> float:
        """Seconds until the next slot of any indicator (at most :data:`LONGEST_NAP`)."""
        now = now or self.clock()
        wait = LONGEST_NAP
        for item in self.runs.scheduled():
            if not item.cron:
                continue
            upcoming = next_slot(item.cron, item.timezone, now)
            if upcoming is not None:
                wait = min(wait, (upcoming - now).total_seconds())
        return max(0.2, wait)

    async def serve(self, workers: int = 2) -> None:
        """Run forever: claim what is due, run it in threads (a run is a papermill
        notebook: minutes of waiting on a kernel), sleep until the next slot."""
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="indicator-run")
        # Claimed before any slot (a slot's run would publish a vintage first), run in the
        # background: the pages answer meanwhile, and the indicators being backfilled hold
        # their run locks, so no slot of theirs starts until the sample period is out.
        backfills = await loop.run_in_executor(None, self.claim_backfills)
        backfilling = [loop.run_in_executor(None, self.run_backfill, c) for c in backfills]
        try:
            while True:
                try:
                    for claim in await loop.run_in_executor(None, self.claim_due):
                        loop.run_in_executor(pool, self.run_claim, claim)
                    await asyncio.sleep(self.nap())
                except Exception:
                    # A broken indicator folder or a full disk must not stop the others' runs.
                    log.exception("scheduler: looking for due runs failed; trying again")
                    await asyncio.sleep(LONGEST_NAP)
        finally:
            # Runs under way are not waited for: their claims stay open in the journal, and
            # the next start runs them once more.
            pool.shutdown(wait=False, cancel_futures=True)
            for future in backfilling:
                future.cancel()
