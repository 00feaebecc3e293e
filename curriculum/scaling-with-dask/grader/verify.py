"""The Dask course's figures, recomputed without Dask from the same files (curriculum tier).

Lesson 1 is checked against the AIS course's verifier, which walks every vessel's reports
one by one (a state machine, matplotlib's point-in-polygon test); lesson 2 against unit
values summed in plain Python; the exercise against its checks and the same walk.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from statistics import fmean
from typing import Any

import pyarrow.parquet as pq

from statbox.courses.exercise import assert_full_marks, checks_beside, template_scores_zero
from statbox.courses.run import load_module

HERE = Path(__file__).resolve().parent
checks = checks_beside(__file__)
ais = load_module(HERE.parents[1] / "ais-port-calls" / "grader" / "verify.py", "dask_ais_verify")
EXERCISE_DEFAULTS = {"seed": 3, "max_speed_knots": 1.0}


def _lying(data_root: Path, mmsis: set[int] | None, max_speed: float) -> list[tuple[int, str, str]]:
    positions, ports, _ = ais.read(data_root)
    if mmsis is not None:
        positions = positions[positions["mmsi"].isin(mmsis)]
    xy = positions[["lon", "lat"]].to_numpy()
    found = []
    for port_id, polygon in ports.items():
        inside = polygon.contains_points(xy) & (positions["sog"].to_numpy() <= max_speed)
        rows = positions[inside]
        days = rows["timestamp"].dt.strftime("%Y-%m-%d")
        found += [(int(m), port_id, d) for m, d in zip(rows["mmsi"], days, strict=True)]
    return found


def port_calls(results: dict[str, Any], data_root: Path) -> None:
    positions, ports, _ = ais.read(data_root)
    calls = ais.walk_calls(positions, ports)
    assert results["all_calls"] == len(calls)
    assert results["calls_by_port"] == dict(
        sorted(Counter(c["port"] for c in ais.merchant(calls)).items())
    )
    reports: Counter[str] = Counter()
    vessels: defaultdict[str, set[int]] = defaultdict(set)
    for mmsi, port, day in _lying(data_root, None, 1.0):
        reports[f"{port}/{day}"] += 1
        vessels[f"{port}/{day}"].add(mmsi)
    assert results["presence"] == {k: [reports[k], len(vessels[k])] for k in sorted(reports)}


def unit_values(results: dict[str, Any], data_root: Path) -> None:
    rows = pq.read_table(data_root / "scanner" / "transactions").to_pylist()
    products = {
        p["gtin"]: p["coicop"]
        for p in pq.read_table(data_root / "scanner" / "products").to_pylist()
    }
    sums: defaultdict[str, defaultdict[str, list[float]]] = defaultdict(
        lambda: defaultdict(lambda: [0.0, 0.0])
    )
    for row in rows:
        if products[row["gtin"]].startswith("01"):
            cell = sums[row["week"].isoformat()][row["gtin"]]
            cell[0] += row["turnover"]
            cell[1] += row["quantity"]
    weeks = sorted(sums)
    assert results["product_weeks"] == sum(len(sums[w]) for w in weeks)
    assert math.isclose(
        results["turnover"], sum(c[0] for w in weeks for c in sums[w].values()), rel_tol=1e-9
    )
    base, last = sums[weeks[0]], sums[weeks[-1]]
    both = base.keys() & last.keys()
    jevons = math.exp(
        fmean(math.log((last[g][0] / last[g][1]) / (base[g][0] / base[g][1])) for g in both)
    )
    assert math.isclose(results["jevons_last"], 100 * jevons, rel_tol=1e-9)
    assert results["partitions"] == 4


def solution(results: dict[str, Any], data_root: Path) -> None:
    answers = results["answers"]
    expected = checks.reference(EXERCISE_DEFAULTS, data_root)
    assert answers == expected, (answers, expected)
    positions = pq.read_table(data_root / "ais" / "positions", columns=["mmsi"]).column("mmsi")
    import numpy as np

    every = np.sort(np.unique(positions.to_numpy()))
    mine = set(
        np.random.default_rng(EXERCISE_DEFAULTS["seed"])
        .choice(every, len(every) // 2, replace=False)
        .tolist()
    )
    lying = _lying(data_root, mine, EXERCISE_DEFAULTS["max_speed_knots"])
    assert answers["slow_reports_by_port"] == dict(sorted(Counter(p for _, p, _ in lying).items()))
    assert answers["vessels_in_port"] == len({m for m, _, _ in lying})
    per_day: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
    for mmsi, port, day in lying:
        per_day[(port, day)].add(mmsi)
    top = min(per_day, key=lambda key: (-len(per_day[key]), key))
    assert answers["busiest_port_day"] == list(top)
    assert_full_marks(checks, answers, expected)


EXPECTED = {
    "01-dask-port-calls.ipynb": port_calls,
    "02-dask-unit-values.ipynb": unit_values,
    "grader/solution.ipynb": solution,
    "exercise/dask-exercise.ipynb": template_scores_zero(checks, EXERCISE_DEFAULTS),
}
