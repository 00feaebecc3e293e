"""The AIS course's figures, recomputed another way from the same files (curriculum tier).

The notebooks find port calls with shapely and vectorised pandas. Here each vessel's reports
are walked one by one, in time order, through the same rule written as a small state
machine, with matplotlib's point-in-polygon test and the files read straight from the data
root (no catalog). Agreement of the two is the test.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.path import Path as Polygon

from statbox.courses.exercise import assert_full_marks, checks_beside, template_scores_zero

checks = checks_beside(__file__)

RULE = {"max_speed": 1.0, "min_hours": 2.0, "max_gap_hours": 6.0}
EXERCISE_DEFAULTS = {"seed": 7, "port": "KEMBA"}


def read(data_root: Path) -> tuple[pd.DataFrame, dict[str, Polygon], pd.DataFrame]:
    positions = pd.read_parquet(data_root / "ais" / "positions")
    document = json.loads((data_root / "ais" / "ports" / "ports.geojson").read_text())
    ports = {
        f["properties"]["port_id"]: Polygon(np.array(f["geometry"]["coordinates"][0]))
        for f in document["features"]
    }
    vessels = pd.read_parquet(data_root / "ais" / "vessels" / "vessels.parquet")
    return positions, ports, vessels


def walk_calls(positions: pd.DataFrame, ports: dict[str, Polygon]) -> list[dict[str, Any]]:
    """Port calls by walking each vessel's reports: open a stay on a slow report in a port,
    extend it while slow in the same port without a long silence, close it otherwise."""
    xy = positions[["lon", "lat"]].to_numpy()
    where = np.full(len(positions), None, dtype=object)
    for port_id, polygon in ports.items():
        where[polygon.contains_points(xy)] = port_id
    positions = positions.assign(where=where)
    calls = []
    gap = RULE["max_gap_hours"] * 3600
    for mmsi, reports in positions.groupby("mmsi"):
        reports = reports.sort_values("timestamp", kind="stable")
        stay: dict[str, Any] | None = None
        seconds = reports["timestamp"].astype("int64").to_numpy() / 1000  # ms -> s
        for t, port, sog, ship_type in zip(
            seconds, reports["where"], reports["sog"], reports["ship_type"], strict=True
        ):
            if port is None or sog > RULE["max_speed"]:
                continue  # neither opens nor ends a stay: only slow reports in port count
            if stay is not None and stay["port"] == port and t - stay["last"] <= gap:
                stay["last"] = t
                continue
            if stay is not None:
                calls.append(stay)
            stay = {"mmsi": int(mmsi), "port": port, "first": t, "last": t, "type": int(ship_type)}
        if stay is not None:
            calls.append(stay)
    for call in calls:
        call["hours"] = (call["last"] - call["first"]) / 3600
    return [c for c in calls if c["hours"] >= RULE["min_hours"]]


def merchant(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in calls if 70 <= c["type"] <= 89]


def day_of(seconds: float) -> str:
    return str(pd.Timestamp(seconds, unit="s").date())


def lesson_port_calls(results: dict[str, Any], data_root: Path) -> None:
    positions, ports, _ = read(data_root)
    calls = walk_calls(positions, ports)
    trade = merchant(calls)
    assert results["parameters"] == [RULE["max_speed"], RULE["min_hours"], RULE["max_gap_hours"]]
    assert results["all_calls"] == len(calls), (results["all_calls"], len(calls))
    assert results["merchant_calls"] == len(trade)
    by_port = Counter(c["port"] for c in trade)
    assert results["calls_by_port"] == {p: by_port.get(p, 0) for p in ports}
    assert abs(results["median_hours"] - median(c["hours"] for c in trade)) < 1e-6
    assert len(trade) > 10 and len(calls) > len(trade), "the sample should have calls of all kinds"


def lesson_indicator(results: dict[str, Any], data_root: Path) -> None:
    positions, ports, vessels = read(data_root)
    trade = merchant(walk_calls(positions, ports))
    tonnage = dict(zip(vessels["mmsi"], vessels["gross_tonnage"], strict=True))
    weekly: Counter[str] = Counter()
    tonnes: Counter[str] = Counter()
    for call in trade:
        year, week, _ = pd.Timestamp(call["first"], unit="s").isocalendar()
        label = f"{year}-W{week:02d}"
        weekly[f"{label}/{call['port']}"] += 1
        value = tonnage.get(call["mmsi"])
        tonnes[label] += 0 if value is None or pd.isna(value) else int(value)
    assert results["weekly_calls"] == dict(weekly), (results["weekly_calls"], weekly)
    assert results["weekly_tonnage"] == {w: float(t) for w, t in tonnes.items()}
    assert results["daily_calls"] == dict(
        sorted(Counter(day_of(c["first"]) for c in trade).items())
    )
    hours = {int(t) // 3_600_000 for t in positions["timestamp"].astype("int64")}
    assert sum(results["days_observed"].values()) * 24 == len(hours)
    known = [c for c in trade if not pd.isna(tonnage.get(c["mmsi"], np.nan))]
    assert results["tonnage_known_share"] == len(known) / len(trade)


def _exercise_answers(data_root: Path, seed: int, port: str) -> dict[str, Any]:
    positions, ports, _ = read(data_root)
    chosen = checks.chosen_vessels(positions, seed)
    mine = positions[positions["mmsi"].isin(chosen)]
    inside = ports[port].contains_points(mine[["lon", "lat"]].to_numpy())
    calls = [c for c in walk_calls(mine, ports) if c["port"] == port]
    return {
        "in_port_reports": int((inside & (mine["sog"].to_numpy() <= RULE["max_speed"])).sum()),
        "port_calls": len(calls),
        "median_hours": round(median(c["hours"] for c in calls), 2) if calls else None,
        "calls_per_day": dict(sorted(Counter(day_of(c["first"]) for c in calls).items())),
    }


def solution(results: dict[str, Any], data_root: Path) -> None:
    answers = dict(results["answers"])
    expected = checks.reference(EXERCISE_DEFAULTS, data_root)
    assert answers == expected, (answers, expected)
    walked = _exercise_answers(data_root, **EXERCISE_DEFAULTS)
    assert abs(answers.pop("median_hours") - walked.pop("median_hours")) <= 0.01
    assert answers == walked, (answers, walked)
    assert_full_marks(checks, results["answers"], expected)


EXPECTED = {
    "01-port-calls.ipynb": lesson_port_calls,
    "02-port-activity-indicator.ipynb": lesson_indicator,
    "grader/solution.ipynb": solution,
    "exercise/port-calls-exercise.ipynb": template_scores_zero(checks, EXERCISE_DEFAULTS),
}
