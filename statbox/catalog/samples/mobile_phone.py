"""Mobile phone sample: network events (CDR and data sessions) of devices in Kigali.

What the courses rely on, and this module guarantees:

- every resident device sleeps at home: between 21:00 and 07:00 local time nearly all its
  events are at a cell of its home area (sometimes a neighbouring cell, as phones hop), so
  home detection works for active devices and is uncertain for quiet ones;
- workers and students move to a daytime area on weekdays (mostly the centre), so present
  population per area and hour differs from night-time (census) population;
- visitors appear for one to three days only; activity per device is heavy-tailed;
- device ids are pseudonyms (random hexadecimal), timestamps are UTC (local time is UTC+2,
  Central Africa Time, no daylight saving).

The areas are synthetic (Voronoi cells named after Kigali's sectors), not official boundaries.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from statbox.catalog.samples.common import (
    Scale,
    hashed_ids,
    rng_for,
    write_geojson,
    write_geoparquet,
    write_partitioned,
)

START_LOCAL = dt.datetime(2024, 4, 1)  # a Monday
UTC_OFFSET_HOURS = 2
BBOX = (29.98, -2.06, 30.22, -1.88)
SECTORS = {
    "Nyarugenge": [
        "Gitega",
        "Kanyinya",
        "Kigali",
        "Kimisagara",
        "Mageragere",
        "Muhima",
        "Nyakabanda",
        "Nyamirambo",
        "Nyarugenge",
        "Rwezamenyo",
    ],
    "Kicukiro": [
        "Gahanga",
        "Gatenga",
        "Gikondo",
        "Kagarama",
        "Kanombe",
        "Kicukiro",
        "Kigarama",
        "Masaka",
        "Niboye",
        "Nyarugunga",
    ],
    "Gasabo": [
        "Bumbogo",
        "Gatsata",
        "Gikomero",
        "Gisozi",
        "Jabana",
        "Jali",
        "Kacyiru",
        "Kimihurura",
        "Kimironko",
        "Kinyinya",
        "Ndera",
        "Nduba",
        "Remera",
        "Rusororo",
        "Rutunga",
    ],
}
DISTRICT_BOXES = {  # west, south, east, north of where each district's areas lie
    "Nyarugenge": (29.98, -2.06, 30.07, -1.93),
    "Kicukiro": (30.07, -2.06, 30.22, -1.96),
    "Gasabo": (30.05, -1.96, 30.22, -1.88),
}
CENTRE = np.array([30.06, -1.95])  # lon, lat of the business district
HOURLY = np.array(
    [
        0.2,
        0.1,
        0.1,
        0.1,
        0.2,
        0.5,
        1.2,
        2.2,
        3.0,
        3.2,
        3.3,
        3.4,
        3.6,
        3.3,
        3.1,
        3.0,
        3.1,
        3.4,
        3.9,
        4.2,
        3.8,
        2.8,
        1.6,
        0.7,
    ]
)
EVENT_TYPES = ["data", "call_out", "call_in", "sms_out", "sms_in"]
EVENT_WEIGHTS = [0.5, 0.15, 0.15, 0.1, 0.1]


def _areas(rng: np.random.Generator):
    import shapely

    seeds, names = [], []
    for district, sectors in SECTORS.items():
        w, s, e, n = DISTRICT_BOXES[district]
        for name in sectors:
            seeds.append((rng.uniform(w, e), rng.uniform(s, n)))
            names.append((district, name))
    box = shapely.box(*BBOX)
    cells = shapely.voronoi_polygons(shapely.MultiPoint(seeds), extend_to=box)
    polygons = []
    for x, y in seeds:
        cell = next(g for g in cells.geoms if g.contains(shapely.Point(x, y)))
        polygons.append(cell.intersection(box))
    return np.array(seeds), names, polygons


def generate(out: Path, scale: Scale, seed: int) -> None:
    import geopandas as gpd
    import pandas as pd
    import shapely

    rng = rng_for(seed, "mobile_phone")
    seeds, names, polygons = _areas(rng)
    n_areas = len(seeds)
    closeness = np.exp(-np.hypot(*(seeds - CENTRE).T) / 0.05)
    density = 900 + 9000 * closeness * rng.uniform(0.6, 1.4, n_areas)  # people per km2
    km2 = np.array([p.area * 111.32**2 * np.cos(np.radians(-1.95)) for p in polygons])
    population = np.round(density * km2, -1).astype("int64")
    area_ids = [f"RW-KGL-{i + 1:02d}" for i in range(n_areas)]
    records = [
        {
            "area_id": area_ids[i],
            "name": names[i][1],
            "district": names[i][0],
            "population": int(population[i]),
            "area_km2": round(float(km2[i]), 3),
        }
        for i in range(n_areas)
    ]
    write_geojson(records, polygons, out / "mobile_phone" / "areas" / "areas.geojson")

    # Cell sites: more where more people are; one to three sectors (cells) each.
    sites_per_area = np.maximum(1, np.round(population / population.sum() * 3 * n_areas)).astype(
        int
    )
    cell_rows, cell_area, cell_xy = [], [], []
    site = 0
    for a in range(n_areas):
        minx, miny, maxx, maxy = polygons[a].bounds
        placed = 0
        while placed < sites_per_area[a]:
            x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if not polygons[a].contains(shapely.Point(x, y)):
                continue
            placed += 1
            site += 1
            technology = str(rng.choice(["2G", "3G", "4G"], p=[0.2, 0.3, 0.5]))
            sectors = int(rng.integers(1, 4))
            for sector in range(1, sectors + 1):
                cell_rows.append(
                    {
                        "cell_id": f"KGL{site:04d}{sector}",
                        "site_id": f"KGL{site:04d}",
                        "technology": technology,
                        "azimuth_deg": np.int16((sector - 1) * 120 + rng.integers(0, 30)),
                        "area_id": area_ids[a],
                    }
                )
                cell_area.append(a)
                cell_xy.append((x, y))
    cells = gpd.GeoDataFrame(
        cell_rows,
        geometry=[shapely.Point(np.round(x, 6), np.round(y, 6)) for x, y in cell_xy],
        crs="EPSG:4326",
    )
    write_geoparquet(cells, out / "mobile_phone" / "cells" / "cells.parquet")
    cell_ids = np.array([r["cell_id"] for r in cell_rows])
    cell_area_arr = np.array(cell_area)
    cells_in = [np.flatnonzero(cell_area_arr == a) for a in range(n_areas)]
    cell_xy_arr = np.array(cell_xy)

    def cell_in(area: int) -> int:
        return int(rng.choice(cells_in[area]))

    def neighbour(cell: int) -> int:
        d = np.hypot(*(cell_xy_arr - cell_xy_arr[cell]).T)
        return int(np.argsort(d)[int(rng.integers(1, 4))])

    day_weight = closeness / closeness.sum() * 0.7 + population / population.sum() * 0.3
    days = scale.phone_days
    devices = hashed_ids(rng, scale.phone_devices)
    frames = []
    for device in devices:
        kind = rng.choice(["worker", "student", "home", "visitor"], p=[0.55, 0.15, 0.2, 0.1])
        home_area = int(rng.choice(n_areas, p=(population / population.sum())))
        if kind == "visitor":
            home_area = int(rng.choice(n_areas, p=day_weight))
        home = cell_in(home_area)
        home_alt = neighbour(home)
        if kind == "worker":
            day_cell = cell_in(int(rng.choice(n_areas, p=day_weight)))
        elif kind == "student":
            near = np.argsort(np.hypot(*(seeds - seeds[home_area]).T))[:4]
            day_cell = cell_in(int(rng.choice(near)))
        else:
            day_cell = home
        if kind == "visitor":
            first = int(rng.integers(0, days))
            present = np.arange(first, min(days, first + int(rng.integers(1, 4))))
        else:
            present = np.arange(days)
        rate = rng.lognormal(np.log(10), 0.8)
        counts = rng.poisson(rate, len(present))
        day = np.repeat(present, counts)
        if len(day) == 0:
            continue
        hour = rng.choice(24, size=len(day), p=HOURLY / HOURLY.sum())
        seconds = rng.uniform(0, 3600, len(day))
        night = (hour >= 21) | (hour < 7)
        weekday = (day % 7) < 5  # the sample starts on a Monday
        at_day_place = (
            ~night & weekday & (hour >= 8) & (hour < 17) & (kind in ("worker", "student"))
        )
        roam = ~night & ~at_day_place & (rng.uniform(size=len(day)) < 0.35)
        cell = np.where(rng.uniform(size=len(day)) < 0.12, home_alt, home)
        cell = np.where(at_day_place, day_cell, cell)
        leisure = [cell_in(int(a)) for a in rng.choice(n_areas, size=int(roam.sum()), p=day_weight)]
        cell[roam] = leisure
        local = day * 86400 + hour * 3600 + seconds
        frames.append(
            pd.DataFrame(
                {
                    "device_id": device,
                    "t": np.round((local - UTC_OFFSET_HOURS * 3600) * 1000).astype("int64"),
                    "cell_id": cell_ids[cell],
                    "event_type": rng.choice(EVENT_TYPES, size=len(day), p=EVENT_WEIGHTS),
                }
            )
        )
    events = pd.concat(frames, ignore_index=True)
    origin = pd.Timestamp(START_LOCAL, tz="UTC")
    events.insert(
        1,
        "timestamp",
        (origin + pd.to_timedelta(events.pop("t"), unit="ms")).astype("datetime64[ms, UTC]"),
    )
    events = events.sort_values(["timestamp", "device_id"], kind="stable").reset_index(drop=True)
    dates = events["timestamp"].dt.strftime("%Y-%m-%d")
    write_partitioned(events, out / "mobile_phone" / "events", "date", dates)
