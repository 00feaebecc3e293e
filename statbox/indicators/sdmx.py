"""An indicator's observations in the SDMX exchange formats statistics offices read.

- SDMX-CSV 2.0: ``STRUCTURE,STRUCTURE_ID,ACTION``, the dimensions, ``TIME_PERIOD``, the
  measure, the attributes; one observation a line. ``STRUCTURE`` is ``dataflow`` and
  ``STRUCTURE_ID`` the dataflow's full id, ``STATBOX:<ID>(1.0)``.
- SDMX-JSON 1.0 data message (what SDMX 2.1 services send): every dimension, TIME_PERIOD
  included, at the observation level, each observation ``"i:j:...": [value, attr, ...]``
  (indices into the values the structure lists), attribute values by index (null: none).

Invariant: both give exactly the observations of the CSV, with the same keys, values and
attributes (checked in the tests by ``sdmx1``, an independent SDMX library).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from statbox.indicators.series import to_csv
from statbox.indicators.spec import Series

AGENCY = "STATBOX"
VERSION = "1.0"


def dataflow_id(indicator_id: str) -> str:
    """The dataflow's id: the indicator's id in SDMX's alphabet (``AIS_PORT_CALLS``)."""
    return indicator_id.upper().replace("-", "_")


def structure_id(indicator_id: str) -> str:
    return f"{AGENCY}:{dataflow_id(indicator_id)}({VERSION})"


def sdmx_csv(indicator_id: str, series: Series, rows: list[dict[str, str]]) -> bytes:
    """SDMX-CSV 2.0 (see the module docstring)."""
    fixed = {"STRUCTURE": "dataflow", "STRUCTURE_ID": structure_id(indicator_id), "ACTION": "I"}
    columns = [*fixed, *series.columns]
    return to_csv([{**fixed, **row} for row in rows], columns)


def sdmx_json(indicator_id: str, title: str, series: Series, rows: list[dict[str, str]]) -> bytes:
    """An SDMX-JSON 1.0 data message (see the module docstring)."""
    dimensions = [*series.dimensions, "TIME_PERIOD"]
    attributes = list(series.attributes)
    dim_values = {d: _distinct(rows, d) for d in dimensions}
    attr_values = {a: [v for v in _distinct(rows, a) if v] for a in attributes}
    # positions by value: list.index per row made a large download quadratic (minutes of
    # the service's only thread for the 100 000 observations a run may publish)
    dim_index = {d: {v: i for i, v in enumerate(values)} for d, values in dim_values.items()}
    attr_index = {a: {v: i for i, v in enumerate(values)} for a, values in attr_values.items()}
    observations: dict[str, list[float | int | None]] = {}
    for row in rows:
        key = ":".join(str(dim_index[d][row[d]]) for d in dimensions)
        attrs = [attr_index[a][row[a]] if row.get(a) else None for a in attributes]
        observations[key] = [float(row[series.measure]), *attrs]
    message = {
        "header": {
            "id": f"{dataflow_id(indicator_id)}-{datetime.now(UTC):%Y%m%dT%H%M%S}",
            "test": False,
            "prepared": datetime.now(UTC).isoformat(timespec="seconds"),
            "sender": {"id": AGENCY, "name": "Statbox"},
        },
        "dataSets": [{"action": "Information", "observations": observations}],
        "structure": {
            "name": title,
            "links": [{"urn": _urn(indicator_id), "rel": "dataflow"}],
            "dimensions": {
                "dataSet": [],
                "series": [],
                "observation": [
                    {
                        "id": d,
                        "name": d,
                        "keyPosition": i,
                        "role": "time" if d == "TIME_PERIOD" else None,
                        "values": [{"id": v, "name": v} for v in dim_values[d]],
                    }
                    for i, d in enumerate(dimensions)
                ],
            },
            "attributes": {
                "dataSet": [],
                "series": [],
                "observation": [
                    {"id": a, "name": a, "values": [{"id": v, "name": v} for v in attr_values[a]]}
                    for a in attributes
                ],
            },
        },
    }
    return json.dumps(message, indent=1).encode()


def _distinct(rows: list[dict[str, str]], column: str) -> list[str]:
    return list(dict.fromkeys(row.get(column, "") for row in rows))


def _urn(indicator_id: str) -> str:
    return f"urn:sdmx:org.sdmx.infomodel.datastructure.Dataflow={structure_id(indicator_id)}"
