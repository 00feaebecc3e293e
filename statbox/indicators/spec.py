"""The typed model of ``indicators/<id>/indicator.yaml``, and loading every indicator.

An indicator folder::

    indicators/<id>/
      indicator.yaml     this model
      indicator.ipynb    the notebook (papermill conventions: a cell tagged ``parameters``)

Invariants: a loaded :class:`Indicator` is complete and valid; its id is its folder's name;
its notebook lies inside its folder and has a ``parameters`` cell naming every parameter the
period gives (and ``output``); every backfill label is a period of its frequency. Problems are
reported all at once, one line each, ``file:line: key: message`` (see
:mod:`statbox.settings.yamlfile`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from statbox.courses.notebooks import NotebookProblem, notebook_parameters
from statbox.errors import BadInput
from statbox.indicators.periods import Frequency, Period, between
from statbox.settings.yamlfile import (
    IDENTIFIER,
    FileProblems,
    Lines,
    Problem,
    line_of,
    validate_file,
)

INDICATOR_FILE = "indicator.yaml"
ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
SDMX_ID = r"^[A-Z][A-Z0-9_]{0,49}$"
"""An SDMX component id: what a dimension, measure or attribute may be called."""
CODE = r"^[A-Za-z0-9_@$\-]{1,50}$"
"""An SDMX code (``IDType``)."""
Stage = Literal["poc", "pilot", "production"]
STAGES: tuple[str, ...] = ("poc", "pilot", "production")
OUTPUT_PARAMETER = "output"
"""The notebook parameter the runner always sets: the path of the CSV to write."""
CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-]+$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Schedule(_Model):
    cron: str
    """Five fields (minute hour day-of-month month day-of-week), e.g. "0 6 * * 1"; six with
    seconds first (statbox.indicators.schedule) for schedules seconds apart."""
    timezone: str = "UTC"
    """IANA time zone the cron is read in, e.g. Europe/London."""

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        fields = value.split()
        if len(fields) not in (5, 6) or not all(CRON_FIELD.match(f) for f in fields):
            raise ValueError("must be five cron fields: minute hour day month weekday")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not an IANA time zone (e.g. Europe/London, UTC)") from None
        return value


class Backfill(_Model):
    first: str
    last: str


class PeriodSpec(_Model):
    frequency: Frequency
    """weekly (ISO weeks, labels like 2024-W10) or monthly (labels like 2024-03)."""
    parameters: dict[str, Literal["label", "start", "end"]] = Field(default_factory=dict)
    """Notebook parameter -> field of the period: label, start or end (ISO dates)."""
    backfill: Backfill | None = None
    """The sample range of periods `make up` backfills on first start."""

    @field_validator("parameters")
    @classmethod
    def _identifiers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not IDENTIFIER.fullmatch(name) or name == OUTPUT_PARAMETER:
                raise ValueError(f"{name!r}: a Python identifier other than {OUTPUT_PARAMETER!r}")
        return value

    @model_validator(mode="after")
    def _labels(self) -> PeriodSpec:
        if self.backfill is not None:
            try:
                first = Period.parse(self.backfill.first, self.frequency)
                last = Period.parse(self.backfill.last, self.frequency)
            except BadInput as exc:
                raise ValueError(f"backfill: {exc}") from None
            if last < first:
                raise ValueError("backfill: last is before first")
            try:  # a sample period `make up` runs on first start: bounded like any backfill
                between(self.backfill.first, self.backfill.last, self.frequency)
            except BadInput as exc:
                raise ValueError(f"backfill: {exc}") from None
        return self


class Component(_Model):
    codes: list[str] | None = None
    """The codes allowed (a code list); none: free text."""

    @field_validator("codes")
    @classmethod
    def _codes(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            bad = [c for c in value if not re.match(CODE, str(c))]
            if bad or not value:
                raise ValueError("codes are 1 to 50 letters, digits, _ @ $ or -")
        return value


class Series(_Model):
    output: str = "series.csv"
    """The CSV the notebook writes in its working directory."""
    dimensions: dict[str, Component] = Field(min_length=1)
    """SDMX key order; TIME_PERIOD is last and implied."""
    measure: str = Field("OBS_VALUE", pattern=SDMX_ID)
    attributes: dict[str, Component] = Field(default_factory=dict)

    @field_validator("output")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if PurePosixPath(value).name != value or value in (".", "..") or not value.endswith(".csv"):
            raise ValueError("a file name ending .csv, no folder")
        return value

    @field_validator("dimensions", "attributes")
    @classmethod
    def _ids(cls, value: dict[str, Component]) -> dict[str, Component]:
        for name in value:
            if not re.match(SDMX_ID, name) or name == "TIME_PERIOD":
                raise ValueError(f"{name!r}: an SDMX id in capitals (A-Z, 0-9, _), not TIME_PERIOD")
        return value

    @property
    def columns(self) -> list[str]:
        """The output CSV's columns, in order."""
        return [*self.dimensions, "TIME_PERIOD", self.measure, *self.attributes]


class Indicator(_Model):
    """An indicator's definition (indicator.yaml)."""

    id: str = Field(pattern=ID_PATTERN)
    """Equal to the folder's name."""
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=4000)
    method: str = Field("", max_length=40000)
    owner: str = Field(min_length=1, max_length=64)
    """The username who may run and backfill it (admins may too)."""
    stage: Stage = "poc"
    """The stage it ships at; promotions (recorded in the state) override it."""
    notebook: str = Field("indicator.ipynb", pattern=r"\.ipynb$")
    sources: list[str] = Field(default_factory=list)
    """Catalog entries (<domain>.<dataset>) it reads."""
    schedule: Schedule | None = None
    period: PeriodSpec
    series: Series

    @field_validator("notebook")
    @classmethod
    def _inside(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or "\\" in value:
            raise ValueError("must be a path inside the indicator's folder (no leading /, no ..)")
        return str(path)

    @field_validator("sources")
    @classmethod
    def _entries(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not re.match(r"^[a-z0-9_]+\.[a-z0-9_]+$", s)]
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))}: catalog entries are <domain>.<dataset>")
        return value


@dataclass(frozen=True)
class LoadedIndicator:
    """A valid indicator and its folder."""

    spec: Indicator
    directory: Path

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def notebook(self) -> Path:
        return self.directory / self.spec.notebook

    def parameters(self, period: Period) -> dict[str, str]:
        """The notebook parameters of a run of ``period`` (``output`` is the runner's)."""
        return {name: period.field(f) for name, f in self.spec.period.parameters.items()}


class IndicatorError(FileProblems, BadInput):
    """Indicator files that cannot be used; ``problems`` lists each, one line each."""

    def __init__(self, problems: list[Problem]):
        FileProblems.__init__(self, problems)
        BadInput.__init__(self, *(str(p) for p in problems))


def load_indicator(directory: Path) -> LoadedIndicator:
    """Load and check the indicator in ``directory``; raise IndicatorError listing every
    problem (the model's, then the folder's: id, notebook and its parameters)."""
    file = directory / INDICATOR_FILE
    try:
        spec, lines = validate_file(Indicator, file)
    except FileProblems as exc:
        raise IndicatorError(exc.problems) from None
    problems = _folder_problems(spec, directory, str(file), lines)
    if problems:
        raise IndicatorError(problems)
    return LoadedIndicator(spec, directory)


def _folder_problems(spec: Indicator, directory: Path, source: str, lines: Lines) -> list[Problem]:
    problems: list[Problem] = []

    def problem(loc: tuple, message: str) -> None:
        problems.append(Problem(source, line_of(loc, lines), ".".join(map(str, loc)), message))

    if spec.id != directory.name:
        problem(("id",), f"{spec.id!r} differs from the folder's name {directory.name!r}")
    try:
        found = notebook_parameters(directory / spec.notebook)
    except NotebookProblem as exc:
        problem(("notebook",), f"{spec.notebook}: {exc}")
    else:
        for name in [*spec.period.parameters, OUTPUT_PARAMETER]:
            if name not in found:
                known = ", ".join(sorted(found)) or "none"
                loc = ("period", "parameters", name) if name != OUTPUT_PARAMETER else ("notebook",)
                problem(loc, f"{name!r} is not a parameter of {spec.notebook} (its: {known})")
    return problems


def load_indicators(root: Path) -> dict[str, LoadedIndicator]:
    """Every indicator under ``root`` (one folder each), by id; raise IndicatorError listing
    every problem of every indicator. A missing folder holds no indicator."""
    found: dict[str, LoadedIndicator] = {}
    problems: list[Problem] = []
    if not root.is_dir():
        return found
    for directory in sorted(p for p in root.iterdir() if (p / INDICATOR_FILE).is_file()):
        try:
            loaded = load_indicator(directory)
        except IndicatorError as exc:
            problems.extend(exc.problems)
            continue
        found[loaded.id] = loaded
    if problems:
        raise IndicatorError(problems)
    return found
