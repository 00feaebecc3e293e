"""What the rural-access-index notebooks must compute, recomputed another way from the files.

The lessons buffer the roads and test cell centres against the buffers, or measure
distances to the dissolved network; here each rural cell centre finds its nearest road line
in an R-tree (``shapely.STRtree.query_nearest``), in the grid's CRS, and the upgrade gains
are tested line by line with ``shapely.dwithin``. The solution's answers must earn full
marks by grader/checks.py and the template's none.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import xarray as xr

from statbox.courses import load_course
from statbox.courses.exercise import (
    assert_full_marks,
    checks_beside,
    default_parameters,
    template_scores_zero,
)
from statbox.courses.notebooks import notebook_parameters

HERE = Path(__file__).resolve().parent
COURSE = HERE.parent
checks = checks_beside(__file__)
DEFAULTS = default_parameters(load_course(COURSE))  # the template's parameters
POPULATION_TOLERANCE = 0.002  # buffers are polygons: a cell centre at 2 km may fall either way


class Layers:
    """The grid's rural cells (centres, people) and the roads in the grid's CRS."""

    def __init__(self, data_root: Path):
        root = data_root / "rural_access"
        grid = xr.open_zarr(root / "population" / "population.zarr").load()
        x, y = np.meshgrid(grid["x"].values, grid["y"].values)
        self.rural = grid["settlement_class"].values == 1
        self.people = grid["population"].values.astype(np.float64)
        self.centres = shapely.points(x[self.rural], y[self.rural])
        self.rural_people = self.people[self.rural]
        self.all_people = self.people.sum()
        self.roads = gpd.read_file(root / "roads" / "roads.geojson").to_crs(grid.attrs["crs"])

    def distance(self, mask: Any) -> np.ndarray:
        """Metres from each rural cell centre to the nearest road in ``mask`` (an R-tree)."""
        tree = shapely.STRtree(self.roads.geometry[mask].values)
        _, distance = tree.query_nearest(self.centres, return_distance=True, all_matches=False)
        return distance

    def served(self, mask: Any, metres: float) -> np.ndarray:
        """Which rural cells lie within ``metres`` of any road in ``mask``."""
        return self.distance(mask) <= metres

    def rai(self, mask: Any, metres: float) -> float:
        return 100 * self.rural_people[self.served(mask, metres)].sum() / self.rural_people.sum()


def lesson_index(results: dict[str, Any], data_root: Path) -> None:
    metres = 1000 * notebook_parameters(COURSE / "01-rural-access-index.ipynb")["distance_km"]
    layers = Layers(data_root)
    standard = layers.roads["surface"].eq("paved") | (
        layers.roads["surface"].eq("gravel") & layers.roads["condition"].ne("poor")
    )
    served = layers.served(standard, metres)
    assert math.isclose(results["rural_population"], layers.rural_people.sum(), rel_tol=1e-6)
    assert math.isclose(
        results["served_rural_population"],
        layers.rural_people[served].sum(),
        rel_tol=POPULATION_TOLERANCE,
    )
    assert abs(results["rai"] - layers.rai(standard, metres)) < 0.2
    assert abs(results["rai_any_road"] - layers.rai(slice(None), metres)) < 0.2
    assert results["rai_any_road"] > results["rai"]
    assert results["share_everyone"] > results["rai"]  # urban people are better served
    km = layers.roads[standard].length.sum() / 1000
    assert math.isclose(results["all_season_km"], km, rel_tol=1e-6)


def lesson_sensitivity(results: dict[str, Any], data_root: Path) -> None:
    parameters = notebook_parameters(COURSE / "02-sensitivity-and-upgrades.ipynb")
    layers = Layers(data_root)
    roads = layers.roads
    definitions = {
        "paved only": roads["surface"] == "paved",
        "standard (paved, gravel not poor)": roads["all_season"],
        "every road": slice(None),
    }
    distances = {name: layers.distance(mask) for name, mask in definitions.items()}
    total = layers.rural_people.sum()
    for row in results["curves"]:
        for name, distance in distances.items():
            share = 100 * layers.rural_people[distance <= 1000 * row["km"]].sum() / total
            assert abs(row[name] - share) < 1e-3, (row, name)
    metres = 1000 * parameters["distance_km"]
    unserved = ~layers.served(roads["all_season"], metres)
    gains = {
        road_id: layers.rural_people[unserved & shapely.dwithin(line, layers.centres, metres)].sum()
        for road_id, line in zip(roads["road_id"], roads.geometry, strict=True)
    }
    recorded = results["gains"]
    assert sorted(recorded) == sorted(roads["road_id"][~roads["all_season"]])
    for road_id, gain in recorded.items():
        assert math.isclose(gain, gains[road_id], rel_tol=1e-6, abs_tol=0.01), road_id
    assert gains[results["best_upgrade"]] == max(gains[r] for r in recorded)
    sdg = pd.read_csv(data_root / "sdg" / "indicators" / "indicators.csv")
    series = sdg[(sdg["series"] == "SP_ROD_R2KM") & (sdg["country"] == parameters["country"])]
    assert results["national_latest"] == series.loc[series["year"].idxmax(), "value"]


def solution(results: dict[str, Any], data_root: Path) -> None:
    answers = results["answers"]
    assert_full_marks(checks, answers, checks.reference(DEFAULTS, data_root))
    # and against the nearest-road distances of the whole grid, cut to the trainee's area
    grid = xr.open_zarr(data_root / "rural_access" / "population" / "population.zarr")
    rng = np.random.default_rng(DEFAULTS["seed"])
    row0, col0 = (int(v) for v in rng.integers(0, grid.sizes["y"] - checks.WINDOW + 1, size=2))
    inside = np.zeros((grid.sizes["y"], grid.sizes["x"]), dtype=bool)
    inside[row0 : row0 + checks.WINDOW, col0 : col0 + checks.WINDOW] = True
    layers = Layers(data_root)
    mine = inside[layers.rural]
    served = layers.served(layers.roads["all_season"], checks.DISTANCE_M) & mine
    rural, near = layers.rural_people[mine].sum(), layers.rural_people[served].sum()
    assert math.isclose(answers["rural_population"], rural, rel_tol=1e-6)
    assert math.isclose(answers["served_population"], near, rel_tol=POPULATION_TOLERANCE)
    assert abs(answers["rai"] - 100 * near / rural) < 0.2


EXPECTED = {
    "01-rural-access-index.ipynb": lesson_index,
    "02-sensitivity-and-upgrades.ipynb": lesson_sensitivity,
    "grader/solution.ipynb": solution,
    "exercise/rai-certification.ipynb": template_scores_zero(checks, DEFAULTS),
}
