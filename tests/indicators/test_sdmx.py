"""The SDMX-CSV and SDMX-JSON downloads, read back by an independent SDMX library
(``sdmx1``): the same observations, keys, values and attributes as the CSV."""

from __future__ import annotations

import csv
import io

import sdmx
from sdmx.model import common, v30

from statbox.indicators import sdmx as statbox_sdmx
from statbox.indicators.spec import Series
from statbox.indicators.store import IndicatorStore
from tests.indicators.conftest import ANA, Site

SERIES = Series.model_validate(
    {
        "dimensions": {"FREQ": {"codes": ["W"]}, "REF_AREA": {}, "INDICATOR": {}},
        "attributes": {"UNIT_MEASURE": {"codes": ["NUMBER", "GT"]}, "OBS_STATUS": {}},
    }
)
ROWS = [
    {"FREQ": "W", "REF_AREA": area, "INDICATOR": indicator, "TIME_PERIOD": week,
     "OBS_VALUE": value, "UNIT_MEASURE": unit, "OBS_STATUS": status}
    for area, indicator, week, value, unit, status in [
        ("GBFXT", "PORT_CALLS", "2024-W10", "41", "NUMBER", "A"),
        ("GBFXT", "GROSS_TONNAGE", "2024-W10", "1250000.5", "GT", "A"),
        ("NLRTM", "PORT_CALLS", "2024-W10", "380", "NUMBER", "P"),
        ("NLRTM", "PORT_CALLS", "2024-W11", "377", "NUMBER", ""),
    ]
]  # fmt: skip


def expected(rows: list[dict[str, str]], series: Series) -> set[tuple]:
    dims = [*series.dimensions, "TIME_PERIOD"]
    return {
        (
            tuple(r[d] for d in dims),
            float(r[series.measure]),
            tuple((a, r[a]) for a in series.attributes if r[a]),
        )
        for r in rows
    }


def read_back(message: object, series: Series) -> set[tuple]:
    dims = [*series.dimensions, "TIME_PERIOD"]
    found = set()
    for dataset in message.data:  # type: ignore[attr-defined]
        for obs in dataset.obs:
            key = obs.key if obs.key is not None else obs.dimension
            values = {k: str(v.value) for k, v in key.values.items()}
            attributes = {k: str(getattr(v.value, "id", v.value)) for k, v in obs.attrib.items()}
            found.add(
                (
                    tuple(values[d] for d in dims),
                    float(obs.value),
                    tuple((a, attributes[a]) for a in series.attributes if attributes.get(a)),
                )
            )
    return found


def structure(indicator_id: str, series: Series) -> v30.Dataflow:
    """The data structure the SDMX-CSV reader needs (SDMX-CSV carries no structure)."""
    dsd = v30.DataStructureDefinition(id=statbox_sdmx.dataflow_id(indicator_id))
    for order, name in enumerate([*series.dimensions, "TIME_PERIOD"]):
        dsd.dimensions.getdefault(id=name, order=order)
    dsd.measures.getdefault(id=series.measure)
    for name in series.attributes:
        dsd.attributes.getdefault(id=name)
    return v30.Dataflow(id=dsd.id, structure=dsd, maintainer=common.Agency(id="STATBOX"))


def test_sdmx_csv_and_json_read_back_give_the_csv_observations() -> None:
    want = expected(ROWS, SERIES)
    assert len(want) == len(ROWS)
    as_json = statbox_sdmx.sdmx_json("ais-port-calls", "Port calls", SERIES, ROWS)
    assert read_back(sdmx.read_sdmx(io.BytesIO(as_json), format="JSON"), SERIES) == want
    as_csv = statbox_sdmx.sdmx_csv("ais-port-calls", SERIES, ROWS)
    header = next(csv.reader(io.StringIO(as_csv.decode())))
    assert header[:3] == ["STRUCTURE", "STRUCTURE_ID", "ACTION"]
    assert header[3:] == SERIES.columns
    flow = structure("ais-port-calls", SERIES)
    message = sdmx.read_sdmx(io.BytesIO(as_csv), format="CSV", structure=flow)
    assert read_back(message, SERIES) == want


def test_an_indicators_downloads_agree(site: Site) -> None:
    """The library's downloads of a published vintage (written as a run publishes it)."""
    from statbox.indicators.series import to_csv

    spec = site.indicators.get(ANA, "shop-other-period").spec
    rows = [
        {"FREQ": "W", "REF_AREA": f"S{i}", "INDICATOR": "PRICE", "TIME_PERIOD": "2026-W07",
         "OBS_VALUE": str(60.5 + i), "UNIT_MEASURE": "EUR", "OBS_STATUS": "A"}
        for i in range(3)
    ]  # fmt: skip
    IndicatorStore(site.state, "shop-other-period").publish(
        "2026-W07", to_csv(rows, spec.series.columns)
    )
    plain = site.indicators.download(ANA, "shop-other-period", "csv")
    observed = list(csv.DictReader(io.StringIO(plain.decode())))
    want = expected(observed, spec.series)
    assert len(want) == 3
    as_json = site.indicators.download(ANA, "shop-other-period", "sdmx-json")
    assert read_back(sdmx.read_sdmx(io.BytesIO(as_json), format="JSON"), spec.series) == want
    as_csv = site.indicators.download(ANA, "shop-other-period", "sdmx-csv")
    flow = structure("shop-other-period", spec.series)
    message = sdmx.read_sdmx(io.BytesIO(as_csv), format="CSV", structure=flow)
    assert read_back(message, spec.series) == want
