"""Hidden checks of the AIS port-call exercise: the right answers per variant, and scoring.

Variant: ``seed`` picks two thirds of the merchant vessels (cargo ships and tankers) a
trainee works on, ``port`` the port they study. The rule is the course's: slow (sog <= 1
knot) inside the port polygon, stays split by port or by more than 6 hours of silence,
calls lasting at least 2 hours.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import geopandas
import numpy as np
import pandas as pd

MAX_SPEED, MIN_HOURS, MAX_GAP_HOURS = 1.0, 2.0, 6.0


def chosen_vessels(positions: pd.DataFrame, seed: int) -> np.ndarray:
    """The MMSIs of the merchant vessels a variant works on (as the template picks them)."""
    merchant = np.sort(positions.loc[positions["ship_type"].between(70, 89), "mmsi"].unique())
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(merchant, size=len(merchant) * 2 // 3, replace=False))


def reference(parameters: dict[str, Any], data_root: Path) -> dict[str, Any]:
    seed, port = int(parameters["seed"]), str(parameters["port"])
    positions = pd.read_parquet(data_root / "ais" / "positions")
    ports = geopandas.read_file(data_root / "ais" / "ports" / "ports.geojson")
    polygon = ports.loc[ports["port_id"] == port, "geometry"].iloc[0]
    mine = positions[positions["mmsi"].isin(chosen_vessels(positions, seed))]
    points = geopandas.points_from_xy(mine["lon"], mine["lat"])
    still = mine[points.within(polygon) & (mine["sog"] <= MAX_SPEED).to_numpy()]
    still = still.sort_values(["mmsi", "timestamp"], kind="stable")
    new_vessel = still["mmsi"].ne(still["mmsi"].shift())
    silence = still["timestamp"].diff() > pd.Timedelta(hours=MAX_GAP_HOURS)
    stays = still.groupby((new_vessel | silence).cumsum().to_numpy())["timestamp"].agg(
        ["min", "max"]
    )
    hours = (stays["max"] - stays["min"]).dt.total_seconds() / 3600
    calls = stays[hours >= MIN_HOURS]
    days = calls["min"].dt.strftime("%Y-%m-%d").value_counts().sort_index()
    return {
        "in_port_reports": len(still),
        "port_calls": len(calls),
        "median_hours": round(float(hours[hours >= MIN_HOURS].median()), 2) if len(calls) else None,
        "calls_per_day": {day: int(n) for day, n in days.items()},
    }


def _number(answer: Any) -> float | None:
    """``answer`` as a finite number, or None (booleans and text are not numbers)."""
    if isinstance(answer, bool) or not isinstance(answer, int | float):
        return None
    return float(answer) if math.isfinite(answer) else None


def check_count(answer: Any, expected: Any) -> tuple[float, str]:
    value = _number(answer)
    if value is None:
        return 0.0, f"expected a whole number, got {type(answer).__name__}"
    if value < 0 or value != int(value):
        return 0.0, f"{answer} cannot be a count"
    if value == expected:
        return 1.0, f"right: {expected}"
    if expected and abs(value - expected) <= max(1, 0.05 * expected):
        return 0.5, f"{int(value)} is close; check the rule's edge cases (thresholds, gaps)"
    return 0.0, f"{int(value)} is not right"


def check_hours(answer: Any, expected: Any) -> tuple[float, str]:
    value = _number(answer)
    if value is None:
        return 0.0, f"expected a number of hours, got {type(answer).__name__}"
    if expected is None or value < 0:
        return 0.0, f"{answer} is not right"
    if abs(value - expected) <= 0.01:
        return 1.0, f"right: {expected} h"
    if abs(value - expected) <= 0.05 * expected:
        return 0.5, f"{value:g} h is close; durations run from the first to the last slow report"
    return 0.0, f"{value:g} h is not right"


def check_per_day(answer: Any, expected: Any) -> tuple[float, str]:
    if not isinstance(answer, dict) or not answer:
        return 0.0, f"expected a dict of day -> calls, got {type(answer).__name__}"
    days = set(answer) | set(expected)
    right = sum(1 for day in days if answer.get(day) == expected.get(day))
    if right == len(days):
        return 1.0, "right"
    return right / len(
        days
    ) * 0.8, f"{right} of {len(days)} days right (days are arrival days, UTC)"


CHECKS = {
    "in_port_reports": check_count,
    "port_calls": check_count,
    "median_hours": check_hours,
    "calls_per_day": check_per_day,
}
