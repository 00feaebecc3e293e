"""Fast indicators: what the command line (``statbox indicator``), the scheduler and the
indicator pages all call.

Who may do what (decided here, once, for every caller):

- see: anonymous visitors only ``production`` indicators, and only when ``indicators.public``;
  any signed-in user ``pilot`` and ``production``; ``poc`` only its owner, admins (the
  operator is one) and promoters. An indicator someone may not see does not exist for them
  (:class:`NotFound`, never a hint that it does).
- run and backfill: its owner and admins;
- promote: admins and members of a group in ``indicators.promoters`` (else :class:`NotAllowed`).

Invariants: a run that fails (after its retries) writes its record and its executed
notebook, never a vintage; a succeeded run's observations are checked against the declared
series before they are published; a promotion is recorded with who and when, and overrides
the stage the folder declares.
"""

from __future__ import annotations

import builtins
import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import nbformat

from statbox.catalog.access import RoleAccess, entitlement
from statbox.catalog.build import dump
from statbox.catalog.loader import read_catalog
from statbox.certify.data import _subset as catalog_subset
from statbox.classroom.errors import NotAllowed, NotFound
from statbox.classroom.people import Actor, standing
from statbox.classroom.setup import grading_setup
from statbox.errors import BadInput
from statbox.indicators import sdmx
from statbox.indicators.periods import Period, between, latest_complete
from statbox.indicators.runner import Runner
from statbox.indicators.series import OutputProblem, check_output, to_csv
from statbox.indicators.spec import STAGES, Indicator, LoadedIndicator, load_indicators
from statbox.indicators.store import (
    IndicatorStore,
    Revision,
    RunRecord,
    SourceRecord,
    Trigger,
    new_run_id,
    now_iso,
)
from statbox.settings.model import LoadedSettings, Settings

Format = Literal["csv", "sdmx-csv", "sdmx-json"]
FORMATS: tuple[str, ...] = ("csv", "sdmx-csv", "sdmx-json")
TRIGGERS: tuple[str, ...] = ("schedule", "manual", "backfill")
Forbidden = NotAllowed
"""What refusing an action is called in this package's documents (a 403 on the pages)."""


@dataclass(frozen=True)
class IndicatorView:
    """An indicator as one actor sees it: its definition, its stage, what they may do."""

    loaded: LoadedIndicator
    stage: str
    stage_history: list[dict[str, str]]
    can_run: bool
    can_promote: bool

    @property
    def id(self) -> str:
        return self.loaded.id

    @property
    def spec(self) -> Indicator:
        return self.loaded.spec

    def to_json(self) -> dict[str, Any]:
        """The definition as the JSON API shows it (no file paths of the host)."""
        data = self.loaded.spec.model_dump(mode="json")
        data.update(stage=self.stage, stage_history=self.stage_history)
        return data


@dataclass
class RunData:
    """What a run of an indicator may read, and the version of it."""

    datasets: list[Path] = field(default_factory=list)
    catalog_text: str | None = None
    sources: list[SourceRecord] = field(default_factory=list)


class Indicators:
    """The indicators under ``root``, their state under ``state_dir``, run by ``runner``."""

    def __init__(self, settings: Settings, root: Path, state_dir: Path, runner: Runner):
        self.settings = settings
        self.root = root
        self.state_dir = state_dir
        self.runner = runner
        self.sleep: Callable[[float], None] = time.sleep
        self._digests: dict[tuple[str, int, int], str] = {}
        self._digest_lock = threading.Lock()

    @classmethod
    def from_settings(cls, loaded: LoadedSettings, isolation: str | None = None) -> Indicators:
        """The indicators these settings describe, run in certify's isolation (``isolation``,
        else ``certify.isolation``) with certify's limits."""
        setup = grading_setup(loaded, isolation)
        paths = loaded.paths
        runner = Runner(
            setup.isolation,
            setup.limits,
            data_root=Path(setup.data_root),
            catalog=setup.catalog,
            uid_base=setup.uid_base,
            hidden=[paths.state_dir, paths.curriculum, paths.indicators, *setup.hidden],
            options=setup.isolation_options,
        )
        return cls(loaded.settings, paths.indicators, paths.state_dir, runner)

    def close(self) -> None:
        self.runner.close()

    # ------------------------------------------------------------------ who sees what
    def _all(self) -> dict[str, LoadedIndicator]:
        return load_indicators(self.root)

    def _view(self, actor: Actor | None, loaded: LoadedIndicator) -> IndicatorView | None:
        store = IndicatorStore(self.state_dir, loaded.id)
        history = store.stage_history()
        stage = history[-1]["stage"] if history else loaded.spec.stage
        if actor is None:
            public = self.settings.indicators.public and stage == "production"
            return IndicatorView(loaded, stage, history, False, False) if public else None
        who = standing(self.settings, actor)
        promoter = who.is_admin or bool(who.groups & set(self.settings.indicators.promoters))
        owner = not actor.is_operator and actor.name == loaded.spec.owner
        if stage == "poc" and not (owner or promoter):
            return None
        return IndicatorView(loaded, stage, history, owner or who.is_admin, promoter)

    def list(self, actor: Actor | None) -> builtins.list[IndicatorView]:
        """The indicators ``actor`` may see (None: an anonymous visitor), by id."""
        views = (self._view(actor, loaded) for loaded in self._all().values())
        return [v for v in views if v is not None]

    def get(self, actor: Actor | None, indicator_id: str) -> IndicatorView:
        """One indicator; NotFound when there is none or ``actor`` may not see it."""
        loaded = self._all().get(indicator_id)
        view = self._view(actor, loaded) if loaded is not None else None
        if view is None:
            raise NotFound(f"no indicator {indicator_id!r} (see `statbox indicator list`)")
        return view

    def _runnable(self, actor: Actor, indicator_id: str) -> IndicatorView:
        view = self.get(actor, indicator_id)
        if not view.can_run:
            raise NotAllowed(
                f"only {view.spec.owner} (its owner) and admins may run {indicator_id}"
            )
        return view

    # ------------------------------------------------------------------ stages
    def promote(self, actor: Actor, indicator_id: str, stage: str) -> str:
        """Set the stage (poc, pilot, production); the stage it now has."""
        if stage not in STAGES:
            raise BadInput(f"{stage!r} is not a stage: one of {', '.join(STAGES)}")
        view = self.get(actor, indicator_id)
        if not view.can_promote:
            groups = ", ".join(self.settings.indicators.promoters) or "none"
            raise NotAllowed(
                f"only admins and members of indicators.promoters ({groups}) may promote "
                f"{indicator_id}"
            )
        IndicatorStore(self.state_dir, indicator_id).record_stage(stage, actor.name)
        return stage

    # ------------------------------------------------------------------ runs
    def run(
        self,
        actor: Actor,
        indicator_id: str,
        period: str | None = None,
        trigger: str = "manual",
    ) -> RunRecord:
        """Run one period (None: the latest complete one in the schedule's time zone)."""
        if trigger not in TRIGGERS:
            raise BadInput(f"{trigger!r} is not a trigger: one of {', '.join(TRIGGERS)}")
        loaded = self._runnable(actor, indicator_id).loaded
        spec = loaded.spec
        latest = _latest(loaded)
        chosen = latest if period is None else Period.parse(period, spec.period.frequency)
        _refuse_unfinished(chosen, latest)
        return self._run(loaded, chosen, trigger, actor.name, self._data(loaded))  # type: ignore[arg-type]

    def backfill(
        self, actor: Actor, indicator_id: str, first: str, last: str, workers: int = 1
    ) -> builtins.list[RunRecord]:
        """Run every period from ``first`` to ``last``, ``workers`` at once; the records in
        period order."""
        if not 1 <= workers <= 16:
            raise BadInput(f"--workers {workers}: from 1 to 16")
        loaded = self._runnable(actor, indicator_id).loaded
        periods = between(first, last, loaded.spec.period.frequency)
        _refuse_unfinished(periods[-1], _latest(loaded))
        data = self._data(loaded)  # one version of the data for the whole range

        def one(period: Period) -> RunRecord:
            return self._run(loaded, period, "backfill", actor.name, data)

        if workers == 1:
            return [one(p) for p in periods]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backfill") as pool:
            return list(pool.map(one, periods))

    def _run(
        self, loaded: LoadedIndicator, period: Period, trigger: Trigger, by: str, data: RunData
    ) -> RunRecord:
        spec = loaded.spec
        store = IndicatorStore(self.state_dir, loaded.id)
        code = loaded.notebook.read_bytes()
        record = RunRecord(
            run_id=new_run_id(period.label),
            indicator=loaded.id,
            period=period.label,
            trigger=trigger,
            requested_by=by,
            parameters=loaded.parameters(period),
            code_sha256=hashlib.sha256(code).hexdigest(),
            sources=data.sources,
            started_at=now_iso(),
        )
        started = time.monotonic()
        directory = store.run_dir(record.run_id)
        tries = 1 + self.settings.indicators.retries
        rows: builtins.list[dict[str, str]] | None = None
        error: str | None = None
        for attempt_number in range(1, tries + 1):
            if attempt_number > 1:
                self.sleep(self.settings.indicators.retry_delay_seconds)
            record.attempts = attempt_number
            attempt = self.runner.attempt(
                loaded.notebook,
                record.parameters,
                spec.series.output,
                data.datasets,
                data.catalog_text,
            )
            if attempt.notebook is not None:
                directory.mkdir(parents=True, exist_ok=True)
                nbformat.write(attempt.notebook, directory / "executed.ipynb")
            error = attempt.error
            if error is None and attempt.output is not None:
                try:
                    rows = check_output(attempt.output, spec.series, period.label)
                except OutputProblem as exc:
                    # the notebook's own code broke the series: another try writes the same
                    error = str(exc)
                    break
                break
        record.seconds = round(time.monotonic() - started, 3)
        record.finished_at = now_iso()
        if rows is not None:
            published = to_csv(rows, spec.series.columns)
            (directory / "series.csv").write_bytes(published)
            record.vintage = store.publish(period.label, published)
            record.outcome = "succeeded"
            record.error = None
        else:
            record.outcome = "failed"
            record.error = error or "the run gave no output"
        store.save_run(record)
        return record

    def _data(self, loaded: LoadedIndicator) -> RunData:
        """The declared sources the owner's role may read (folders, catalog, digests)."""
        catalog = self.runner.catalog
        sources = loaded.spec.sources
        result = RunData()
        if not sources:
            return result
        if catalog is None or not catalog.is_file():
            raise BadInput(f"{loaded.id}: sources need a catalog, and {catalog} is not one")
        info, document = read_catalog(catalog)
        role = standing(self.settings, Actor.user(loaded.spec.owner)).role
        rules = RoleAccess.of(self.settings, role)
        for name in sources:
            entry = info.entries.get(name)
            if entry is None:
                raise BadInput(f"{loaded.id}: source {name!r} is not in the catalog {catalog}")
            if not entitlement(rules, [], entry):
                raise BadInput(
                    f"{loaded.id}: source {name!r} is not readable by its owner's role ({role})"
                )
            folder = self.runner.data_root / entry.data_path
            if folder.exists():
                result.datasets.append(folder)
            result.sources.append(SourceRecord(entry=name, files=self._digest_folder(folder)))
        result.catalog_text = dump(catalog_subset(document, info, list(sources)))
        return result

    def _digest_folder(self, folder: Path) -> dict[str, str]:
        """SHA-256 of each file under ``folder`` by path relative to the data root (cached by
        size and modification time: a backfill or a schedule hashes unchanged data once)."""
        digests: dict[str, str] = {}
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        for path in files:
            info = path.stat()
            key = (str(path), info.st_size, info.st_mtime_ns)
            with self._digest_lock:
                digest = self._digests.get(key)
            if digest is None:
                with open(path, "rb") as handle:
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
                with self._digest_lock:
                    self._digests[key] = digest
            digests[str(path.relative_to(self.runner.data_root))] = digest
        return digests

    # ------------------------------------------------------------------ reading
    def runs(self, actor: Actor | None, indicator_id: str) -> builtins.list[RunRecord]:
        """Every run, newest first."""
        self.get(actor, indicator_id)
        return IndicatorStore(self.state_dir, indicator_id).runs()

    def observations(
        self, actor: Actor | None, indicator_id: str, vintage: str = "latest"
    ) -> builtins.list[dict[str, str]]:
        """The published observations, period by period: each period's ``latest`` vintage
        (or ``first``: as first published)."""
        self.get(actor, indicator_id)
        if vintage not in ("latest", "first"):
            raise BadInput(f"vintage {vintage!r}: latest or first")
        store = IndicatorStore(self.state_dir, indicator_id)
        rows: builtins.list[dict[str, str]] = []
        for period in store.periods():
            numbers = store.vintages(period)
            rows.extend(store.vintage_rows(period, numbers[-1 if vintage == "latest" else 0]))
        return rows

    def revisions(self, actor: Actor | None, indicator_id: str) -> builtins.list[Revision]:
        """Every observation that changed between consecutive vintages of its period."""
        series = self.get(actor, indicator_id).spec.series
        store = IndicatorStore(self.state_dir, indicator_id)
        return store.revisions(list(series.dimensions), series.measure)

    def download(self, actor: Actor | None, indicator_id: str, fmt: str) -> bytes:
        """The latest observations as ``csv``, ``sdmx-csv`` or ``sdmx-json``."""
        if fmt not in FORMATS:
            raise BadInput(f"{fmt!r} is not a format: one of {', '.join(FORMATS)}")
        view = self.get(actor, indicator_id)
        rows = self.observations(actor, indicator_id)
        series = view.spec.series
        if fmt == "csv":
            return to_csv(rows, series.columns)
        if fmt == "sdmx-csv":
            return sdmx.sdmx_csv(view.id, series, rows)
        return sdmx.sdmx_json(view.id, view.spec.title, series, rows)


def _latest(loaded: LoadedIndicator) -> Period:
    """The indicator's latest complete period now, in its schedule's time zone."""
    spec = loaded.spec
    tz = spec.schedule.timezone if spec.schedule else "UTC"
    return latest_complete(spec.period.frequency, datetime.now(UTC), tz)


def _refuse_unfinished(period: Period, latest: Period) -> None:
    # a period not over yet has incomplete data: a run would publish a partial figure
    if latest < period:
        raise BadInput(f"{period} is not over yet (the latest complete period is {latest})")
