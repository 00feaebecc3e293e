"""Hidden checks of the rural-access-index certification exercise (never published).

``reference`` recomputes every task from the files for a trainee's area (placed by the
seed as the template places it), by distances from cell centres to the road lines
(``shapely.dwithin``) rather than by buffers, so a buffer's polygon approximation makes a
right answer differ from the reference by a few people at most: populations are checked
to 0.5%, the index to 0.3 points.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
import xarray as xr

WINDOW = 150
DISTANCE_M = 2000


def reference(parameters: dict[str, Any], data_root: Path) -> dict[str, Any]:
    root = data_root / "rural_access"
    grid = xr.open_zarr(root / "population" / "population.zarr").load()
    roads = gpd.read_file(root / "roads" / "roads.geojson").to_crs(grid.attrs["crs"])
    rng = np.random.default_rng(int(parameters["seed"]))
    row0, col0 = (int(v) for v in rng.integers(0, grid.sizes["y"] - WINDOW + 1, size=2))
    rows, cols = slice(row0, row0 + WINDOW), slice(col0, col0 + WINDOW)
    people = grid["population"].values[rows, cols].astype(np.float64)
    rural = grid["settlement_class"].values[rows, cols] == 1
    x, y = np.meshgrid(grid["x"].values[cols], grid["y"].values[rows])
    centres = shapely.points(x, y)
    network = shapely.union_all(roads.geometry[roads["all_season"]].values)
    served = rural & shapely.dwithin(network, centres, DISTANCE_M)
    unserved = rural & ~served
    gains = {
        str(road_id): float(people[unserved & shapely.dwithin(line, centres, DISTANCE_M)].sum())
        for road_id, line in zip(
            roads["road_id"][~roads["all_season"]],
            roads.geometry[~roads["all_season"]],
            strict=True,
        )
    }
    best = min(gains, key=lambda road_id: (-gains[road_id], road_id))
    rural_population = float(people[rural].sum())
    served_population = float(people[served].sum())
    return {
        "rural_population": rural_population,
        "served_population": served_population,
        "rai": 100 * served_population / rural_population,
        "best_upgrade": {"road_id": best, "gains": gains},
        "upgrade_gain": gains[best],
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def check_population(answer: Any, expected: Any) -> tuple[float, str]:
    value = _number(answer)
    if value is None:
        return 0.0, f"expected a number of persons, got {type(answer).__name__}"
    if value < 0:
        return 0.0, "a population cannot be negative"
    if math.isclose(value, expected, rel_tol=0.005, abs_tol=1.0):
        return 1.0, f"right: about {expected:,.0f} persons"
    return 0.0, f"{value:,.0f} persons is not right: check the rural cells, the CRS and the 2 km"


def check_rai(answer: Any, expected: Any) -> tuple[float, str]:
    value = _number(answer)
    if value is None:
        return 0.0, f"expected a percentage, got {type(answer).__name__}"
    if abs(value - expected) <= 0.3:
        return 1.0, f"right: {expected:.1f}%"
    if expected > 1 and abs(100 * value - expected) <= 0.3:
        return 0.5, "right share, but the task asks for a percentage"
    return 0.0, f"{value:.1f}% is not right"


def check_best_upgrade(answer: Any, expected: Any) -> tuple[float, str]:
    gains = expected["gains"]
    if not isinstance(answer, str) or answer not in gains:
        return 0.0, "expected the road_id of a road that is not all-season, such as 'R0001'"
    best = gains[expected["road_id"]]
    if gains[answer] >= 0.99 * best:
        return 1.0, f"right: {answer} brings about {gains[answer]:,.0f} people within 2 km"
    return (
        0.0,
        f"{answer} brings {gains[answer]:,.0f} people within reach; another road brings more",
    )


CHECKS: dict[str, Callable[[Any, Any], tuple[float, str]]] = {
    "rural_population": check_population,
    "served_population": check_population,
    "rai": check_rai,
    "best_upgrade": check_best_upgrade,
    "upgrade_gain": check_population,
}
