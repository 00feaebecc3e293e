"""The metadata every catalog entry carries, as one typed model.

Invariant: an entry that loads through Statbox has complete metadata (title, description,
domain, licence, provenance, coverage, update frequency, citation, access level and a column
or variable schema with units), validated by :class:`EntryMetadata`. Intake itself ignores
metadata; Statbox reads it to filter access, to document entries and to check data against
the declared schema (:mod:`statbox.catalog.verify`).

Opening a catalog does not import this module: the loader checks each entry's access
(:mod:`.levels`) and domain at once, and validates the rest the first time the entry is used
(:meth:`statbox.catalog.loader.EntryInfo.metadata`); ``statbox catalog validate`` and
:func:`~statbox.catalog.loader.read_catalog` validate every entry.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    InstanceOf,
    ValidationError,
    field_validator,
    model_validator,
)

from statbox.catalog.levels import Access, parse_access

DOMAINS: tuple[str, ...] = (
    "ais",
    "earth_observation",
    "mobile_phone",
    "scanner",
    "rural_access",
    "sdg",
    "privacy",
)
"""One domain per UN Global Working Group task team; each is a directory under the data root."""


class ValueType(enum.StrEnum):
    """Types a column or variable may declare (Arrow's names; ``timestamp`` is UTC)."""

    bool = "bool"
    int8 = "int8"
    int16 = "int16"
    int32 = "int32"
    int64 = "int64"
    uint8 = "uint8"
    uint16 = "uint16"
    uint32 = "uint32"
    float32 = "float32"
    float64 = "float64"
    string = "string"
    date = "date"
    timestamp = "timestamp"
    datetime = "datetime"  # a coordinate of an array (numpy datetime64, no zone)
    geometry = "geometry"


INTEGER_TYPES = {ValueType.int8, ValueType.int16, ValueType.int32, ValueType.int64}
INTEGER_TYPES |= {ValueType.uint8, ValueType.uint16, ValueType.uint32}
NUMBER_TYPES = INTEGER_TYPES | {ValueType.float32, ValueType.float64}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Model):
    type: ValueType
    unit: str = Field(max_length=80)
    """Unit of the values ("" for identifiers, codes and labels)."""
    description: str = Field(min_length=1)
    nullable: bool = False
    """Whether values may be missing."""
    min: float | None = None
    max: float | None = None
    values: list[Any] | None = None
    """The only values allowed (a code list), when the column is categorical."""
    partition: bool = False
    """A hive partition key (a directory name like date=2024-03-01), not stored in files."""
    geometry_types: list[str] | None = None
    """For geometry columns: the shapely geometry types allowed (Point, Polygon, ...)."""

    @model_validator(mode="after")
    def _consistent(self) -> Column:
        if (self.min is not None or self.max is not None) and self.type not in NUMBER_TYPES:
            raise ValueError("min and max apply to numeric types only")
        if self.geometry_types is not None and self.type is not ValueType.geometry:
            raise ValueError("geometry_types applies to geometry columns only")
        return self


class Variable(Column):
    dims: list[str] = Field(min_length=1)
    """The dimensions of the array, in order."""


class Schema(_Model):
    """Either ``columns`` (a table) or ``dims`` and ``variables`` (an array dataset)."""

    columns: dict[str, Column] | None = None
    dims: dict[str, Column] | None = None
    """Array dimensions: their coordinate's type, unit and description."""
    variables: dict[str, Variable] | None = None
    crs: str | None = Field(None, pattern=r"^EPSG:\d{4,5}$")
    """Coordinate reference system of geometries or array coordinates."""

    @model_validator(mode="after")
    def _one_kind(self) -> Schema:
        table = self.columns is not None
        array = self.dims is not None or self.variables is not None
        if table == array:
            raise ValueError("give either columns (a table) or dims and variables (an array)")
        if array and (not self.dims or not self.variables):
            raise ValueError("an array schema needs both dims and variables")
        for name, variable in (self.variables or {}).items():
            unknown = [d for d in variable.dims if d not in (self.dims or {})]
            if unknown:
                raise ValueError(f"variable {name!r} uses undeclared dims {unknown}")
        has_geometry = any(c.type is ValueType.geometry for c in (self.columns or {}).values())
        if has_geometry and self.crs is None:
            raise ValueError("a table with a geometry column must declare its crs")
        return self

    @property
    def is_table(self) -> bool:
        return self.columns is not None


class SpatialCoverage(_Model):
    description: str = Field(min_length=1)
    bbox: tuple[float, float, float, float]
    """West, south, east, north in degrees (EPSG:4326)."""

    @model_validator(mode="after")
    def _ordered(self) -> SpatialCoverage:
        west, south, east, north = self.bbox
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            raise ValueError("bbox must be [west, south, east, north] in degrees, west < east")
        return self


class TemporalCoverage(_Model):
    start: dt.date
    end: dt.date
    resolution: str = Field(min_length=1)
    """How finely time is recorded, e.g. "1 minute", "weekly", "annual"."""

    @model_validator(mode="after")
    def _ordered(self) -> TemporalCoverage:
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


class EntryMetadata(_Model):
    title: str = Field(min_length=1, max_length=120)
    description: str = Field(min_length=1)
    domain: Literal[DOMAINS]  # type: ignore[valid-type]
    licence: str = Field(min_length=1)
    provenance: str = Field(min_length=1)
    """Who produced the data and how (for samples: how they were generated)."""
    spatial_coverage: SpatialCoverage
    temporal_coverage: TemporalCoverage
    update_frequency: str = Field(min_length=1)
    citation: str = Field(min_length=1)
    access: InstanceOf[Access]
    """Who may see the entry (checked by :func:`.levels.parse_access`, as on opening)."""
    format: str = Field(min_length=1)
    """The file format and layout, e.g. "Parquet, partitioned by date (date=YYYY-MM-DD)"."""
    schema_: Schema = Field(alias="schema")

    @field_validator("access", mode="before")
    @classmethod
    def _access(cls, value: Any) -> Access:
        access, findings = parse_access(value)
        if access is None:
            raise ValueError("; ".join(_finding_text(f) for f in findings))
        return access


def _finding_text(finding: tuple[tuple, str]) -> str:
    key, message = finding
    return f"{'.'.join(map(str, key))}: {message}" if key else message


def metadata_findings(raw: Any) -> tuple[EntryMetadata | None, list[tuple[tuple, str]]]:
    """``raw`` (an entry's ``metadata``) validated, or None and every problem in it as (key
    path under ``metadata``, message) pairs."""
    try:
        return EntryMetadata.model_validate(raw if raw is not None else {}), []
    except ValidationError as exc:
        findings = []
        for err in exc.errors():
            message = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "missing":
                message = "required, and missing"
            elif err["type"] == "extra_forbidden":
                message = "unknown key"
            findings.append((tuple(err["loc"]), message))
        return None, findings
