"""What the service's scheduler runs: the indicators of the library, each as its owner.

Apart from :mod:`statbox.indicators.schedule` (pure: cron, journals, locks), so that the
scheduler and its tests import nothing of the library, the runner or the notebooks.
"""

from __future__ import annotations

from datetime import datetime

from statbox.classroom.people import Actor
from statbox.indicators.library import Indicators
from statbox.indicators.periods import latest_complete
from statbox.indicators.schedule import Outcome, Scheduled
from statbox.indicators.store import IndicatorStore


class LibraryRuns:
    """What the service's scheduler runs: the indicators of
    :class:`~statbox.indicators.library.Indicators`, each as its owner."""

    def __init__(self, indicators: Indicators) -> None:
        self.indicators = indicators

    def scheduled(self) -> list[Scheduled]:
        items = []
        for view in self.indicators.list(Actor.operator()):
            spec = view.spec
            backfill = spec.period.backfill
            items.append(
                Scheduled(
                    view.id,
                    spec.owner,
                    spec.schedule.cron if spec.schedule else "",
                    spec.schedule.timezone if spec.schedule else "UTC",
                    (backfill.first, backfill.last) if backfill else None,
                )
            )
        return items

    def run(self, item: Scheduled, slot: datetime) -> Outcome:
        """The period complete at the slot's instant: a slot run late (the stack was down)
        still runs the period it was for."""
        view = self.indicators.get(Actor.operator(), item.indicator)
        period = latest_complete(view.spec.period.frequency, slot, item.timezone)
        record = self.indicators.run(
            Actor.user(item.owner), item.indicator, period.label, trigger="schedule"
        )
        return Outcome(record.run_id, record.outcome, record.error or "")

    def backfill(self, item: Scheduled) -> list[Outcome]:
        assert item.backfill is not None
        first, last = item.backfill
        workers = self.indicators.settings.indicators.workers
        records = self.indicators.backfill(
            Actor.user(item.owner), item.indicator, first, last, workers=workers
        )
        return [Outcome(r.run_id, r.outcome, r.error or "") for r in records]

    def published(self, item: Scheduled) -> bool:
        return bool(IndicatorStore(self.indicators.state_dir, item.indicator).periods())
