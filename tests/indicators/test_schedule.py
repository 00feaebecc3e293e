"""The scheduler with a fake clock: real journals and locks on disk, a recorder for runs.

What must hold: a slot runs at most once (two schedulers, a restart mid-run), the latest slot
missed while down runs once at start, a run that died is retried once, and cron means local
time in the indicator's zone across daylight-saving changes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from statbox.indicators.schedule import (
    Journal,
    Outcome,
    Scheduled,
    Scheduler,
    check_schedule,
    latest_slot,
    next_slot,
)

LONDON = "Europe/London"
WEEKLY = Scheduled("ais-port-calls", "analyst1", "0 6 * * 1", LONDON, ("2024-W10", "2024-W13"))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class RecordingRuns:
    """Records each run it is asked for; ``published`` once a backfill ran."""

    def __init__(self, *items: Scheduled, fail: bool = False) -> None:
        self.items = list(items)
        self.ran: list[tuple[str, datetime]] = []
        self.backfilled: list[str] = []
        self.fail = fail
        self.lock = threading.Lock()

    def scheduled(self) -> list[Scheduled]:
        return self.items

    def run(self, item: Scheduled, slot: datetime) -> Outcome:
        with self.lock:
            self.ran.append((item.indicator, slot))
        if self.fail:
            raise RuntimeError("kernel died")
        return Outcome(f"run-{len(self.ran)}", "succeeded")

    def backfill(self, item: Scheduled) -> list[Outcome]:
        self.backfilled.append(item.indicator)
        return [Outcome("b1", "succeeded"), Outcome("b2", "failed", "no data")]

    def published(self, item: Scheduled) -> bool:
        return item.indicator in self.backfilled


def events(state: Path, indicator: str = WEEKLY.indicator) -> list[str]:
    return [e["event"] for e in Journal(state / "indicators" / indicator).entries()]


# ----------------------------------------------------------------------------- cron in a zone


def test_weekly_cron_is_local_time_in_its_zone_across_summer_time():
    # 06:00 London is 06:00 UTC in winter, 05:00 UTC in summer (BST from 2024-03-31).
    assert latest_slot("0 6 * * 1", LONDON, utc(2024, 3, 27)) == utc(2024, 3, 25, 6)
    assert next_slot("0 6 * * 1", LONDON, utc(2024, 3, 27)) == utc(2024, 4, 1, 5)


def test_a_time_skipped_in_spring_runs_once_just_after_the_gap():
    # 2024-03-31 01:30 does not exist in London (01:00 GMT -> 02:00 BST): Debian cron runs
    # it at 02:00 BST = 01:00 UTC, once.
    day = [
        s
        for s in _slots("30 1 * * *", LONDON, utc(2024, 3, 30, 12), utc(2024, 4, 1, 12))
        if s.date() == datetime(2024, 3, 31).date()
    ]
    assert day == [utc(2024, 3, 31, 1)]


def test_a_time_that_happens_twice_in_autumn_runs_once():
    # 2024-10-27 01:30 happens at 00:30 UTC (BST) and 01:30 UTC (GMT): one run, the first.
    slots = _slots("30 1 * * *", LONDON, utc(2024, 10, 26, 12), utc(2024, 10, 28, 12))
    assert slots == [utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)]
    # and looking back from between the two, the slot due is the one that ran
    assert latest_slot("30 1 * * *", LONDON, utc(2024, 10, 27, 1, 0)) == utc(2024, 10, 27, 0, 30)


def _slots(cron: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    found, now = [], start
    while (upcoming := next_slot(cron, zone, now)) is not None and upcoming <= end:
        found.append(upcoming)
        now = upcoming
    return found


def test_six_fields_name_seconds():
    assert next_slot("*/5 * * * * *", "UTC", utc(2024, 1, 1, 0, 0, 1)) == utc(2024, 1, 1, 0, 0, 5)


@pytest.mark.parametrize(
    ("cron", "zone", "says"),
    [("0 6 * * 1", "Europe/Lndon", "unknown time zone"), ("0 25 * * 1", LONDON, "not a cron")],
)
def test_a_bad_schedule_is_one_sentence(cron, zone, says):
    assert says in (check_schedule(cron, zone) or "")
    assert check_schedule("0 6 * * 1", LONDON) is None


# ----------------------------------------------------------------------------- journal


def test_first_look_arms_then_the_next_slot_runs_once(tmp_path):
    runs = RecordingRuns(WEEKLY)
    scheduler = Scheduler(runs, tmp_path)
    # Monday 2024-03-04 06:00 GMT has passed when the stack first starts: history, not due.
    assert scheduler.tick(utc(2024, 3, 6)) == []
    assert runs.ran == []
    assert scheduler.tick(utc(2024, 3, 11, 5, 59)) == []
    assert scheduler.tick(utc(2024, 3, 11, 6, 0, 1)) == [Outcome("run-1", "succeeded")]
    assert scheduler.tick(utc(2024, 3, 11, 7)) == []
    assert runs.ran == [(WEEKLY.indicator, utc(2024, 3, 11, 6))]
    assert events(tmp_path) == ["armed", "claimed", "finished"]


def test_only_the_latest_slot_missed_while_down_runs_at_start(tmp_path):
    runs = RecordingRuns(WEEKLY)
    Scheduler(runs, tmp_path).tick(utc(2024, 3, 6))
    # Down for three Mondays; a new scheduler (a restart) comes up on Wednesday.
    Scheduler(runs, tmp_path).tick(utc(2024, 3, 27))
    Scheduler(runs, tmp_path).tick(utc(2024, 3, 27, 1))
    assert runs.ran == [(WEEKLY.indicator, utc(2024, 3, 25, 6))]


def test_two_schedulers_at_once_run_a_slot_once(tmp_path):
    runs = RecordingRuns(WEEKLY)
    Scheduler(runs, tmp_path).tick(utc(2024, 3, 6))
    first, second = Scheduler(runs, tmp_path), Scheduler(runs, tmp_path)
    now = utc(2024, 3, 11, 6, 1)
    claims = first.claim_due(now)  # claimed, run under way (its lock held)
    assert second.claim_due(now) == []  # sees the run under way: nothing to claim
    assert [first.run_claim(c) for c in claims] == [Outcome("run-1", "succeeded")]
    assert second.tick(now) == []  # finished: nothing left either
    assert len(runs.ran) == 1


def test_two_processes_racing_for_one_slot_run_it_once(tmp_path):
    """Real processes, real flock: eight schedulers claim the same slot at once and keep
    their claims (runs under way) until every one has tried."""
    Scheduler(RecordingRuns(WEEKLY), tmp_path).tick(utc(2024, 3, 6))
    go, stop = tmp_path / "go", tmp_path / "stop"
    code = f"""
import sys, time
from datetime import datetime, UTC
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_schedule import RecordingRuns, WEEKLY
from statbox.indicators.schedule import Scheduler
print("ready", flush=True)
while not Path({str(go)!r}).exists():
    time.sleep(0.01)
runs = RecordingRuns(WEEKLY)
claims = Scheduler(runs, Path({str(tmp_path)!r})).claim_due(datetime(2024, 3, 11, 6, 1, tzinfo=UTC))
print(len(claims), flush=True)
while not Path({str(stop)!r}).exists():
    time.sleep(0.01)
"""
    racers = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None and racer.stdout.readline() == "ready\n"
        go.touch()
        claimed = [int(racer.stdout.readline()) for racer in racers if racer.stdout]
    finally:
        stop.touch()
        for racer in racers:
            racer.communicate(timeout=30)
    assert sum(claimed) == 1
    assert events(tmp_path).count("claimed") == 1


def test_a_run_killed_mid_way_is_retried_once_at_start_then_abandoned(tmp_path):
    runs = RecordingRuns(WEEKLY)
    Scheduler(runs, tmp_path).tick(utc(2024, 3, 6))
    now = utc(2024, 3, 11, 6, 1)
    died = Scheduler(runs, tmp_path).claim_due(now)
    assert len(died) == 1
    died[0].release()  # the process holding it was killed: the kernel drops its lock
    assert Scheduler(runs, tmp_path).tick(now + timedelta(minutes=1)) == [
        Outcome("run-1", "succeeded")
    ]
    assert events(tmp_path) == ["armed", "claimed", "claimed", "finished"]
    # and a slot whose retry died too is abandoned, not run a third time
    Scheduler(runs, tmp_path).claim_due(utc(2024, 3, 18, 6, 1))[0].release()
    Scheduler(runs, tmp_path).claim_due(utc(2024, 3, 18, 6, 2))[0].release()
    assert Scheduler(runs, tmp_path).tick(utc(2024, 3, 18, 6, 3)) == []
    assert events(tmp_path)[-1] == "abandoned"
    assert len(runs.ran) == 1


def test_a_failing_run_is_recorded_finished_and_not_repeated(tmp_path):
    runs = RecordingRuns(WEEKLY, fail=True)
    scheduler = Scheduler(runs, tmp_path)
    scheduler.tick(utc(2024, 3, 6))
    [outcome] = scheduler.tick(utc(2024, 3, 11, 6, 1))
    assert (outcome.outcome, outcome.error) == ("failed", "kernel died")
    assert scheduler.tick(utc(2024, 3, 11, 6, 2)) == []
    last = Journal(tmp_path / "indicators" / WEEKLY.indicator).entries()[-1]
    assert (last["event"], last["outcome"]) == ("finished", "failed")


def test_a_torn_last_line_is_ignored(tmp_path):
    runs = RecordingRuns(WEEKLY)
    Scheduler(runs, tmp_path).tick(utc(2024, 3, 6))
    journal = tmp_path / "indicators" / WEEKLY.indicator / "journal.jsonl"
    with journal.open("a") as handle:
        handle.write('{"event": "claimed", "slot": "2024-03-11T06:')
    assert len(Scheduler(runs, tmp_path).tick(utc(2024, 3, 11, 6, 1))) == 1
    lines = journal.read_text().splitlines()
    assert json.loads(lines[-1])["event"] == "finished"


def test_first_start_backfills_once_until_published(tmp_path):
    runs = RecordingRuns(WEEKLY, Scheduled("manual-only", "a", "0 0 1 1 *", "UTC"))
    assert Scheduler(runs, tmp_path).first_backfill() == {WEEKLY.indicator: 1}
    assert Scheduler(runs, tmp_path).first_backfill() == {}
    assert runs.backfilled == [WEEKLY.indicator]
    assert events(tmp_path)[:2] == ["backfill", "backfilled"]


def test_no_slot_of_an_indicator_starts_while_its_sample_period_is_published(tmp_path):
    runs = RecordingRuns(WEEKLY)
    scheduler = Scheduler(runs, tmp_path)
    [backfill] = scheduler.claim_backfills()
    assert scheduler.claim_due(utc(2024, 3, 11, 6, 1)) == []  # its run lock is held
    assert scheduler.run_backfill(backfill) == 1
    scheduler.tick(utc(2024, 3, 11, 6, 2))  # arms now, after the backfill
    assert runs.ran == []
