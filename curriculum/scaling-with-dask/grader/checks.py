"""Hidden checks of the Dask exercise: vessels lying in port, per variant, and scoring.

Variant: ``seed`` picks half of all vessels, ``max_speed_knots`` the speed threshold. A report
lies in port when it is inside a port polygon (of the region's ports) and no faster than the
threshold.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import geopandas
import numpy as np
import pandas as pd

REGION = ("KE", "TZ")


def lying_in_port(data_root: Path, seed: int, max_speed: float) -> pd.DataFrame:
    positions = pd.read_parquet(
        data_root / "ais" / "positions", columns=["mmsi", "timestamp", "lat", "lon", "sog"]
    )
    ports = geopandas.read_file(data_root / "ais" / "ports" / "ports.geojson")
    ports = ports[ports["country"].isin(REGION)]
    every_vessel = np.sort(positions["mmsi"].unique())
    rng = np.random.default_rng(seed)
    mine = np.sort(rng.choice(every_vessel, size=len(every_vessel) // 2, replace=False))
    reports = positions[positions["mmsi"].isin(mine) & (positions["sog"] <= max_speed)]
    points = geopandas.GeoDataFrame(
        reports, geometry=geopandas.points_from_xy(reports["lon"], reports["lat"]), crs=ports.crs
    )
    joined = geopandas.sjoin(points, ports[["port_id", "geometry"]], predicate="within")
    return joined.assign(day=joined["timestamp"].dt.strftime("%Y-%m-%d"))[
        ["mmsi", "port_id", "day"]
    ]


def reference(parameters: dict[str, Any], data_root: Path) -> dict[str, Any]:
    lying = lying_in_port(data_root, int(parameters["seed"]), float(parameters["max_speed_knots"]))
    per_day = lying.groupby(["port_id", "day"])["mmsi"].nunique().reset_index(name="vessels")
    top = per_day.sort_values(["vessels", "port_id", "day"], ascending=[False, True, True]).iloc[0]
    return {
        "slow_reports_by_port": {
            p: int(n) for p, n in lying.groupby("port_id").size().sort_index().items()
        },
        "vessels_in_port": int(lying["mmsi"].nunique()),
        "busiest_port_day": [str(top["port_id"]), str(top["day"])],
    }


def check_by_port(answer: Any, expected: Any) -> tuple[float, str]:
    if not isinstance(answer, dict) or not answer:
        return 0.0, f"expected a dict of port_id -> reports, got {type(answer).__name__}"
    ports = set(expected) | {p for p, n in answer.items() if n}
    right = [p for p in ports if answer.get(p, 0) == expected.get(p, 0)]
    if len(right) == len(ports):
        return 1.0, "right"
    return 0.8 * len(right) / len(ports), f"{len(right)} of {len(ports)} ports right"


def check_vessels(answer: Any, expected: Any) -> tuple[float, str]:
    if isinstance(answer, bool) or not isinstance(answer, int | float) or not math.isfinite(answer):
        return 0.0, f"expected a number of vessels, got {type(answer).__name__}"
    if answer == expected:
        return 1.0, f"right: {expected}"
    return 0.0, f"{answer} is not right: count distinct MMSIs"


def check_port_day(answer: Any, expected: Any) -> tuple[float, str]:
    if not isinstance(answer, list | tuple) or len(answer) != 2:
        return 0.0, "expected a list [port_id, day]"
    port, day = answer
    if [port, day] == expected:
        return 1.0, "right"
    if port == expected[0] or day == expected[1]:
        return 0.5, "half right: count distinct vessels per port and day, and break ties as asked"
    return 0.0, f"{answer} is not the busiest port-day"


CHECKS = {
    "slow_reports_by_port": check_by_port,
    "vessels_in_port": check_vessels,
    "busiest_port_day": check_port_day,
}
