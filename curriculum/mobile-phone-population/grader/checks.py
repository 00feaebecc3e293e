"""Hidden checks of the mobile-phone-population certification exercise (never published).

``reference`` recomputes every task from the event files for a trainee's variant (the seed
draws the panel of devices as the template draws it; ``area`` and ``hour`` pick the figure
to report), counting with ``numpy.unique`` over joined keys rather than pandas groupby.
Counts must be exact; a dict of home counts earns the share of its areas that are right.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

MIN_NIGHTS = 3
TIMEZONE = "Africa/Kigali"
NIGHT_START, NIGHT_END = 21, 7


def modal_value(groups: np.ndarray, values: np.ndarray) -> dict[str, str]:
    """For each group, the value occurring most often with it (ties: the smallest value)."""
    pairs, counts = np.unique(np.char.add(np.char.add(groups, "\t"), values), return_counts=True)
    best: dict[str, tuple[int, str]] = {}
    for pair, count in zip(pairs.tolist(), counts.tolist(), strict=True):
        group, value = pair.split("\t")
        current = best.get(group)
        if current is None or count > current[0] or (count == current[0] and value < current[1]):
            best[group] = (count, value)
    return {group: value for group, (_, value) in best.items()}


def week_events(period: str, data_root: Path) -> pd.DataFrame:
    """The events of the ISO week ``period`` (local time), with their local time and area."""
    root = data_root / "mobile_phone"
    events = pd.read_parquet(root / "events", columns=["device_id", "timestamp", "cell_id"])
    cells = pd.read_parquet(root / "cells" / "cells.parquet", columns=["cell_id", "area_id"])
    year, week = (int(part) for part in period.split("-W"))
    start = pd.Timestamp(dt.date.fromisocalendar(year, week, 1), tz=TIMEZONE)
    local = events["timestamp"].dt.tz_convert(TIMEZONE)
    keep = (local >= start) & (local < start + pd.Timedelta(days=7))
    area_of = dict(zip(cells["cell_id"], cells["area_id"], strict=True))
    events = events[keep]
    return events.assign(local=local[keep], area_id=events["cell_id"].map(area_of))


def home_cells(events: pd.DataFrame, min_nights: int) -> dict[str, str]:
    """Home cell of each device seen on at least ``min_nights`` nights."""
    hours = events["local"].dt.hour.to_numpy()
    night = events[(hours >= NIGHT_START) | (hours < NIGHT_END)]
    night_of = (night["local"] - pd.Timedelta(hours=NIGHT_END)).dt.strftime("%Y-%m-%d")
    devices = night["device_id"].to_numpy(dtype=str)
    device_nights = np.unique(np.char.add(np.char.add(devices, "\t"), night_of.to_numpy(dtype=str)))
    seen_on = pd.Series([key.split("\t")[0] for key in device_nights.tolist()]).value_counts()
    mask = np.isin(devices, seen_on[seen_on >= min_nights].index.to_numpy(dtype=str))
    return modal_value(devices[mask], night["cell_id"].to_numpy(dtype=str)[mask])


def reference(parameters: dict[str, Any], data_root: Path) -> dict[str, Any]:
    events = week_events(str(parameters["period"]), data_root)
    devices = np.sort(events["device_id"].unique())
    panel = devices[np.random.default_rng(int(parameters["seed"])).random(len(devices)) < 0.5]
    events = events[events["device_id"].isin(panel)]
    areas = gpd.read_file(data_root / "mobile_phone" / "areas" / "areas.geojson")
    area_of = dict(zip(events["cell_id"], events["area_id"], strict=False))
    homes = home_cells(events, MIN_NIGHTS)
    home_counts = {str(a): 0 for a in sorted(areas["area_id"])}
    for cell in homes.values():
        home_counts[area_of[cell]] += 1

    hour, area = int(parameters["hour"]), str(parameters["area"])
    chosen = (events["local"].dt.day_of_week.to_numpy() < 5) & (
        events["local"].dt.hour.to_numpy() == hour
    )
    day_device = np.char.add(
        events["local"].dt.strftime("%Y-%m-%d").to_numpy(dtype=str)[chosen],
        events["device_id"].to_numpy(dtype=str)[chosen],
    )
    where = modal_value(day_device, events["area_id"].to_numpy(dtype=str)[chosen])
    present = sum(1 for value in where.values() if value == area) / 5
    factor = float(areas["population"].sum()) / len(homes)
    return {
        "home_counts": home_counts,
        "present": present,
        "estimated_residents": home_counts[area] * factor,
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def check_home_counts(answer: Any, expected: Any) -> tuple[float, str]:
    if not isinstance(answer, dict):
        return 0.0, f"expected a dict area id -> devices, got {type(answer).__name__}"
    given = {str(key): _number(value) for key, value in answer.items()}
    unknown = sorted(set(given) - set(expected))
    if unknown:
        return 0.0, f"{unknown[0]!r} is not an area id of mobile_phone.areas"
    given = {area: given.get(area, 0) for area in expected}  # an area left out has no homes
    wrong = sorted(a for a, n in expected.items() if given[a] != n)
    if not wrong:
        return 1.0, f"right for all {len(expected)} areas ({sum(expected.values())} homes)"
    with_homes = [a for a, n in expected.items() if n > 0]  # zeros earn nothing alone
    fraction = sum(1 for a in with_homes if given[a] == expected[a]) / len(with_homes)
    example = wrong[0]
    return fraction, f"{len(wrong)} areas are wrong, e.g. {example}: expected {expected[example]}"


def check_present(answer: Any, expected: Any) -> tuple[float, str]:
    value = _number(answer)
    if value is None or value < 0:
        return 0.0, "expected a number of devices (an average over five weekdays)"
    if abs(value - expected) <= 1e-6:
        return 1.0, f"right: {expected:g} devices on an average weekday"
    if abs(value * 7 / 5 - expected) <= 1e-6 or abs(value - 5 * expected) <= 1e-6:
        return 0.5, "the right devices, but not averaged over the five weekdays"
    return 0.0, f"{value:g} is not right"


def check_residents(answer: Any, expected: Any) -> tuple[float, str]:
    value = _number(answer)
    if value is None or value < 0:
        return 0.0, "expected a number of persons"
    if math.isclose(value, expected, rel_tol=1e-3):
        return 1.0, f"right: about {expected:,.0f} residents"
    return 0.0, f"{value:,.0f} is not right: home devices x (census total / devices with a home)"


CHECKS: dict[str, Callable[[Any, Any], tuple[float, str]]] = {
    "home_counts": check_home_counts,
    "present": check_present,
    "estimated_residents": check_residents,
}
