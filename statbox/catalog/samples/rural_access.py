"""Rural access sample (SDG 9.1.1): a district's road network with surface and condition, a
100 m population grid, and settlement classes.

What the Rural Access Index course relies on, and this module guarantees:

- population lives in a city, two towns, villages and dispersed homesteads; a forest
  reserve in the west is empty; the settlement class marks urban centre, urban cluster and
  rural cells, so the index is computed over rural people only;
- a paved trunk road joins the towns; gravel roads reach most villages, some in poor
  condition (not all-season); earth tracks (never all-season) reach the rest, so the share
  of rural people within 2 km of an all-season road is well above zero and well below one,
  and depends on treating condition and surface correctly.

Roads are in EPSG:4326 (GeoJSON); the grid is in UTM zone 35S metres: reproject the roads
to the grid's CRS before buffering by 2 km.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from statbox.catalog.samples.common import Scale, rng_for, write_geojson, write_zarr

CRS = "EPSG:32735"
ORIGIN = (790_000.0, 9_725_000.0)  # upper-left corner, near Huye (southern Rwanda)
CELL = 100.0


def _wiggle(rng: np.random.Generator, points: np.ndarray, depth: int = 4) -> np.ndarray:
    """Midpoint displacement: a road that bends like one, through the given points."""
    for _ in range(depth):
        segments = points[1:] - points[:-1]
        length = np.hypot(*segments.T)[:, None]
        normal = np.stack([-segments[:, 1], segments[:, 0]], axis=1) / np.maximum(length, 1)
        middle = (points[1:] + points[:-1]) / 2 + normal * rng.normal(
            0, 0.12, (len(segments), 1)
        ) * length
        out = np.empty((len(points) + len(middle), 2))
        out[0::2], out[1::2] = points, middle
        points = out
    return points


def generate(out: Path, scale: Scale, seed: int) -> None:
    import shapely
    import xarray as xr
    from pyproj import Transformer

    rng = rng_for(seed, "rural_access")
    n = scale.rural_cells
    extent = n * CELL
    x = ORIGIN[0] + (np.arange(n) + 0.5) * CELL
    y = ORIGIN[1] - (np.arange(n) + 0.5) * CELL
    gx, gy = np.meshgrid(x - ORIGIN[0], ORIGIN[1] - y)  # metres from the corner, y down

    def kernel(cx: float, cy: float, sigma: float) -> np.ndarray:
        return np.exp(-((gx - cx) ** 2 + (gy - cy) ** 2) / (2 * sigma**2))

    city = (extent * 0.55, extent * 0.45)
    towns = [(extent * 0.22, extent * 0.70), (extent * 0.85, extent * 0.25)]
    villages = np.column_stack(
        [rng.uniform(0.1, 0.97, 45) * extent, rng.uniform(0.03, 0.97, 45) * extent]
    )
    villages = villages[villages[:, 0] > extent * 0.12]
    city_part = 160 * kernel(*city, extent * 0.035)
    town_part = sum(60 * kernel(tx, ty, extent * 0.02) for tx, ty in towns)
    village_part = sum(
        rng.uniform(8, 25) * kernel(vx, vy, rng.uniform(250, 500)) for vx, vy in villages
    )
    terrain = np.exp(0.5 * _noise(rng, n))
    dispersed = 3.5 * terrain * rng.gamma(2.0, 0.5, (n, n))
    people = city_part + town_part + village_part + dispersed
    forest = gx < extent * 0.1 + 0.03 * extent * np.sin(gy / extent * 6)
    people[forest] = 0
    population = np.round(people, 1).astype(np.float32)
    settlement = np.ones((n, n), dtype=np.uint8)
    settlement[(town_part + city_part) > 12] = 2
    settlement[city_part > 35] = 3

    dataset = xr.Dataset(
        {
            "population": (
                ("y", "x"),
                population,
                {"long_name": "people per 100 m cell", "units": "persons"},
            ),
            "settlement_class": (
                ("y", "x"),
                settlement,
                {"flag_values": [1, 2, 3], "flag_meanings": "rural urban_cluster urban_centre"},
            ),
        },
        coords={"y": y, "x": x},
        attrs={"crs": CRS, "title": "Synthetic gridded population, 100 m"},
    )
    write_zarr(
        dataset, out / "rural_access" / "population" / "population.zarr", {"y": 300, "x": 300}
    )

    # Roads, in grid metres first.
    roads: list[tuple[np.ndarray, str, str, str]] = []
    trunk = np.array(
        [(extent * 0.12, extent * 0.75), towns[0], city, towns[1], (extent, extent * 0.2)]
    )
    roads.append((_wiggle(rng, trunk, 3), "primary", "paved", "good"))
    hubs = np.array([city, *towns])
    order = rng.permutation(len(villages))
    for k in order:
        v = villages[k]
        hub = hubs[np.argmin(np.hypot(*(hubs - v).T))]
        if rng.uniform() < 0.62:
            condition = str(rng.choice(["good", "fair", "poor"], p=[0.35, 0.4, 0.25]))
            roads.append((_wiggle(rng, np.array([hub, v]), 3), "secondary", "gravel", condition))
        else:
            target = villages[order[int(rng.integers(len(order)))]]
            roads.append(
                (
                    _wiggle(rng, np.array([target, v]), 3),
                    "tertiary",
                    "earth",
                    str(rng.choice(["fair", "poor"])),
                )
            )
        for _ in range(int(rng.integers(0, 3))):  # tracks out to the fields
            angle = rng.uniform(0, 2 * np.pi)
            end = v + rng.uniform(800, 2500) * np.array([np.cos(angle), np.sin(angle)])
            roads.append((_wiggle(rng, np.array([v, end]), 2), "track", "earth", "poor"))
    to_lonlat = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    records, lines = [], []
    for index, (points, road_class, surface, condition) in enumerate(roads):
        points = np.clip(points, 0, extent)
        lon, lat = to_lonlat.transform(ORIGIN[0] + points[:, 0], ORIGIN[1] - points[:, 1])
        lines.append(shapely.LineString(np.column_stack([lon, lat])))
        records.append(
            {
                "road_id": f"R{index + 1:04d}",
                "road_class": road_class,
                "surface": surface,
                "condition": condition,
                "all_season": surface == "paved" or (surface == "gravel" and condition != "poor"),
            }
        )
    write_geojson(records, lines, out / "rural_access" / "roads" / "roads.geojson")


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    from statbox.catalog.samples.earth_observation import _smooth

    return _smooth(rng, (n, n), n / 15)
