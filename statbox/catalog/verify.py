"""Check an entry's data against the schema its metadata declares.

Two depths, one set of rules:

- :func:`stored_problems` (every time an entry is first opened through Statbox): its
  metadata is valid, the files are there, and what they store (Parquet's schema, a CSV's
  header and first rows, a GeoJSON's first features, a Zarr store's metadata) has the
  declared columns or variables with the declared types, and nothing undeclared. Cheap: no
  full read.
- :func:`sample_problems` (``statbox catalog validate``, tests): a sample read through the
  entry's declared reader also meets the declared values: no missing values where not
  nullable, within ``min``/``max``, in ``values``, geometry types and CRS as declared.

Problems name the catalog file and the line of the column (or of the url, for missing files).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from statbox.catalog.errors import Problem
from statbox.catalog.loader import CatalogInfo, EntryInfo
from statbox.catalog.metadata import INTEGER_TYPES, Column, Schema, ValueType
from statbox.contract import is_data_url

SAMPLE_ROWS = 2000

Finding = tuple[tuple, str]
"""(key path under the entry's metadata.schema, message)."""


# --------------------------------------------------------------------------- types


def pandas_type_ok(declared: ValueType, dtype: Any, loose: bool) -> bool:
    """Whether a pandas dtype holds ``declared`` (``loose`` for CSV and GeoJSON, whose
    readers only know integer, float and text)."""
    import pandas as pd

    kind = getattr(dtype, "kind", "O")
    if declared in INTEGER_TYPES:
        # pandas' nullable Int64 holds int64 with missing values
        return kind in "iu" if loose else str(dtype).lower() == declared.value
    if declared in (ValueType.float32, ValueType.float64):
        return kind in "fiu" if loose else str(dtype).lower() == declared.value
    if declared is ValueType.string:
        return pd.api.types.is_string_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype)
    if declared is ValueType.bool:
        return kind == "b"
    if declared is ValueType.date:
        return kind in "OM" or "date32" in str(dtype)
    if declared is ValueType.timestamp:
        return isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC"
    if declared is ValueType.datetime:
        return kind == "M"
    return str(dtype) == "geometry"


def arrow_type_ok(declared: ValueType, arrow_type: Any) -> bool:
    import pyarrow as pa

    if declared is ValueType.timestamp:
        return pa.types.is_timestamp(arrow_type) and arrow_type.tz == "UTC"
    if declared is ValueType.string:
        return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    if declared is ValueType.geometry:
        return pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type)
    if declared is ValueType.date:
        return pa.types.is_date32(arrow_type)
    if declared is ValueType.bool:
        return pa.types.is_boolean(arrow_type)
    return str(arrow_type) == {"float32": "float", "float64": "double"}.get(
        declared.value, declared.value
    )


# --------------------------------------------------------------------------- tables


def frame_findings(
    frame: Any, schema: Schema, *, loose: bool = False, values: bool = True
) -> list[Finding]:
    """What in a pandas or geopandas frame disagrees with a table schema."""
    columns = schema.columns or {}
    findings: list[Finding] = []
    present = [str(c) for c in frame.columns]
    for name in present:
        if name not in columns:
            findings.append((("columns",), f"the data has column {name!r}, which is not declared"))
    for name, column in columns.items():
        key = ("columns", name)
        if name not in present:
            if not column.partition:
                findings.append((key, "declared, but the data has no such column"))
            continue
        series = frame[name]
        if not pandas_type_ok(column.type, series.dtype, loose):
            findings.append((key, f"declared {column.type.value}, but the data is {series.dtype}"))
            continue
        if values:
            findings.extend((key, m) for m in value_findings(series, column))
    if values and schema.crs and hasattr(frame, "crs"):
        epsg = frame.crs.to_epsg() if frame.crs is not None else None
        if f"EPSG:{epsg}" != schema.crs:
            findings.append((("crs",), f"declared {schema.crs}, but the data is EPSG:{epsg}"))
    return findings


def value_findings(series: Any, column: Column) -> list[str]:
    """What in one column's values breaks its declaration."""
    import numpy as np

    out = []
    missing = series.isna()
    if not column.nullable and bool(missing.any()):
        out.append(f"{int(missing.sum())} missing values, but the column is not nullable")
    present = series[~missing]
    if len(present) == 0:
        return out
    if column.type is ValueType.geometry:
        kinds = set(present.geom_type.unique())
        allowed = set(column.geometry_types or kinds)
        if kinds - allowed:
            out.append(f"geometry types {sorted(kinds - allowed)}; declared {sorted(allowed)}")
        return out
    if column.min is not None or column.max is not None:
        low, high = float(np.min(present)), float(np.max(present))
        if column.min is not None and low < column.min:
            out.append(f"value {low:g} below the declared min {column.min:g}")
        if column.max is not None and high > column.max:
            out.append(f"value {high:g} above the declared max {column.max:g}")
    if column.values is not None:
        unknown = sorted(set(present.unique().tolist()) - set(column.values), key=str)
        if unknown:
            out.append(f"values {unknown[:5]} are not among the declared values")
    return out


# --------------------------------------------------------------------------- arrays


def dataset_findings(ds: Any, schema: Schema, *, values: bool = True) -> list[Finding]:
    """What in an xarray Dataset disagrees with an array schema."""
    findings: list[Finding] = []
    dims, variables = schema.dims or {}, schema.variables or {}
    for name, column in dims.items():
        key = ("dims", name)
        if name not in ds.dims:
            findings.append((key, "declared, but the data has no such dimension"))
        elif name in ds.coords and not pandas_type_ok(column.type, ds[name].dtype, False):
            findings.append(
                (key, f"declared {column.type.value}, but the data is {ds[name].dtype}")
            )
    for name in ds.data_vars:
        if name not in variables:
            findings.append((("variables",), f"the data has variable {name!r}, not declared"))
    for name, variable in variables.items():
        key = ("variables", name)
        if name not in ds.data_vars:
            findings.append((key, "declared, but the data has no such variable"))
            continue
        array = ds[name]
        if list(array.dims) != variable.dims:
            findings.append(
                (key, f"declared dims {variable.dims}, but the data has {list(array.dims)}")
            )
        elif not pandas_type_ok(variable.type, array.dtype, False):
            findings.append((key, f"declared {variable.type.value}, but the data is {array.dtype}"))
        elif values:
            import pandas as pd

            first = array.isel({array.dims[0]: slice(0, 2)}).values.ravel()
            findings.extend((key, m) for m in value_findings(pd.Series(first), variable))
    if values and schema.crs and ds.attrs.get("crs") != schema.crs:
        findings.append(
            (("crs",), f"declared {schema.crs}, but the data says {ds.attrs.get('crs')}")
        )
    return findings


# --------------------------------------------------------------------------- entries


def _problems(info: CatalogInfo, entry: EntryInfo, findings: Iterable[Finding]) -> list[Problem]:
    return [
        info.problem((*entry.key, "metadata", "schema", *key), message) for key, message in findings
    ]


def missing_problem(info: CatalogInfo, entry: EntryInfo) -> Problem | None:
    """A problem if the entry's files are not there (checked on local data roots only)."""
    if is_data_url(info.data_root):
        return None
    import os

    path = info.url(entry)
    if os.path.exists(path):
        return None
    return info.problem(
        ("data", entry.data_key, "kwargs", "url"),
        f"{entry.name}: no such file or directory {path} (generate samples with `statbox "
        "catalog samples`, or set paths.data_root to where the data is)",
    )


def stored_problems(info: CatalogInfo, entry: EntryInfo) -> list[Problem]:
    """Metadata valid, files present and stored schema as declared (no full read)."""
    problems = entry.metadata_problems()
    missing = missing_problem(info, entry)
    if missing is not None:
        problems.append(missing)
    if problems:
        return problems
    schema = entry.metadata.schema_
    url = info.url(entry)
    try:
        if entry.datatype.endswith(":Parquet"):
            findings = _parquet_findings(url, schema)
        elif entry.datatype.endswith(":Zarr"):
            import xarray as xr

            with xr.open_dataset(url, engine="zarr", chunks=None) as ds:
                findings = dataset_findings(ds, schema, values=False)
        else:
            findings = frame_findings(_sample(info, entry, 50), schema, loose=True, values=False)
    except Exception as exc:  # any reader failure is a problem with this entry's data
        return [info.problem(entry.key, f"{entry.name}: cannot read {url}: {exc}")]
    return _problems(info, entry, findings)


def _parquet_findings(url: str, schema: Schema) -> list[Finding]:
    import pyarrow.dataset as pads

    arrow = pads.dataset(url, format="parquet", partitioning="hive").schema
    columns = schema.columns or {}
    findings: list[Finding] = []
    for name in arrow.names:
        if name not in columns and not name.startswith("__index_level"):
            findings.append((("columns",), f"the data has column {name!r}, which is not declared"))
    for name, column in columns.items():
        if name not in arrow.names:
            findings.append((("columns", name), "declared, but the data has no such column"))
        elif not column.partition and not arrow_type_ok(column.type, arrow.field(name).type):
            stored = arrow.field(name).type
            findings.append(
                (("columns", name), f"declared {column.type.value}, but the data is {stored}")
            )
    return findings


def _sample(info: CatalogInfo, entry: EntryInfo, rows: int) -> Any:
    """A sample of the entry read through its declared reader class."""
    from intake import import_name

    reader_cls = import_name(entry.reader)
    data_cls = import_name(entry.datatype)
    url = info.url(entry)
    limit: dict[str, Any] = {}
    if entry.datatype.endswith(":Parquet"):
        url = _first_parquet_file(url)
    elif entry.datatype.endswith(":CSV"):
        limit = {"nrows": rows}
    elif entry.datatype.endswith(":GeoJSON"):
        limit = {"rows": rows}
    return reader_cls(data_cls(url=url), **entry.options).read(**limit)


def _first_parquet_file(url: str) -> str:
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    if fs.isfile(path):
        return url
    files = sorted(p for p in fs.find(path) if p.endswith(".parquet"))
    if not files:
        raise FileNotFoundError(f"no .parquet files under {url}")
    return fs.unstrip_protocol(files[0]) if is_data_url(url) else files[0]


def sample_problems(info: CatalogInfo, entry: EntryInfo) -> list[Problem]:
    """Stored schema as declared, and a sample read through the declared reader whose values
    meet the declaration (types, missing values, ranges, code lists, geometry, CRS)."""
    problems = stored_problems(info, entry)
    if problems:
        return problems
    schema = entry.metadata.schema_
    try:
        sample = _sample(info, entry, SAMPLE_ROWS)
    except Exception as exc:
        return [info.problem(entry.key, f"{entry.name}: cannot read a sample: {exc}")]
    if schema.is_table:
        loose = not entry.datatype.endswith(":Parquet")
        findings = frame_findings(sample, schema, loose=loose)
    else:
        findings = dataset_findings(sample, schema)
        sample.close()
    return _problems(info, entry, findings)
