"""Earth-observation sample: a Sentinel-2-like surface reflectance time series over farmland
in Rwanda's Eastern Province, with a cloud mask, and the field boundaries with crop labels.

What the courses rely on, and this module guarantees:

- each crop has its own season-A phenology (planting dates vary by field): maize and
  sorghum peak late and high, beans early and lower, rice starts flooded (NDVI below zero)
  in the valley bottom, cassava and banana stay green, fallow stays low;
- clouds are bright in every band (NDVI near zero) and cast darker shadows nearby; the
  rainy months are cloudier; ``cloud_mask`` marks both, so NDVI composites are wrong
  unless masked;
- reflectance is stored as Sentinel-2 L2A stores it: unsigned 16-bit, reflectance x 10000.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from statbox.catalog.samples.common import Scale, rng_for, write_geoparquet, write_zarr

CRS = "EPSG:32736"  # UTM zone 36S
ORIGIN = (202_860.0, 9_856_150.0)  # upper-left corner, near Nyagatare
PIXEL = 10.0
FIRST_DATE = dt.date(2023, 9, 1)
BANDS = ["blue", "green", "red", "nir", "swir16", "swir22"]
SOIL = np.array([0.10, 0.14, 0.18, 0.25, 0.30, 0.25])
LEAF = np.array([0.02, 0.07, 0.03, 0.45, 0.18, 0.08])
WATER = np.array([0.06, 0.07, 0.04, 0.03, 0.01, 0.01])
# crop: share of fields, peak day after planting, width (days), maximum cover, planting window
CROPS = {
    "maize": (0.30, 80, 35, 0.90, (0, 40)),
    "beans": (0.20, 45, 20, 0.70, (10, 50)),
    "sorghum": (0.10, 90, 38, 0.80, (0, 30)),
    "rice": (0.10, 85, 30, 0.95, (0, 25)),
    "cassava": (0.12, 0, 0, 0.55, (0, 0)),
    "banana": (0.08, 0, 0, 0.75, (0, 0)),
    "fallow": (0.10, 0, 0, 0.15, (0, 0)),
}


def _smooth(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Gaussian-smoothed noise (through the FFT), normalised to mean 0 and sd 1."""
    noise = rng.normal(size=shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    kernel = np.exp(-2 * (np.pi * scale) ** 2 * (fx**2 + fy**2))
    field = np.real(np.fft.ifft2(np.fft.fft2(noise) * kernel))
    return (field - field.mean()) / (field.std() + 1e-12)


def _fields(rng: np.random.Generator, size: int):
    """Quadrilateral fields from a jittered grid of corners (80-140 m sides)."""
    import shapely

    extent = size * PIXEL

    def cuts() -> np.ndarray:
        edges = np.cumsum(rng.uniform(80, 140, int(extent / 80) + 2))
        return np.concatenate([[0.0], edges[edges < extent - 40], [extent]])

    xs, ys = cuts(), cuts()
    jitter = rng.uniform(-12, 12, (len(ys), len(xs), 2))
    jitter[[0, -1], :, 1] = 0
    jitter[:, [0, -1], 0] = 0
    x0, y0 = ORIGIN
    polygons = []
    for i in range(len(ys) - 1):
        for j in range(len(xs) - 1):
            corners = [(i, j), (i, j + 1), (i + 1, j + 1), (i + 1, j)]
            ring = [
                (x0 + xs[b] + jitter[a, b, 0], y0 - ys[a] - jitter[a, b, 1]) for a, b in corners
            ]
            polygons.append(shapely.Polygon(ring))
    return polygons


def generate(out: Path, scale: Scale, seed: int) -> None:
    import geopandas as gpd
    import pandas as pd
    import shapely
    import xarray as xr

    rng = rng_for(seed, "earth_observation")
    size, dates = scale.eo_pixels, scale.eo_dates
    polygons = _fields(rng, size)
    x = ORIGIN[0] + (np.arange(size) + 0.5) * PIXEL
    y = ORIGIN[1] - (np.arange(size) + 0.5) * PIXEL
    gx, gy = np.meshgrid(x, y)
    field_of = np.full((size, size), -1)
    for index, polygon in enumerate(polygons):
        minx, miny, maxx, maxy = polygon.bounds
        cols = np.flatnonzero((x >= minx) & (x <= maxx))
        rows = np.flatnonzero((y >= miny) & (y <= maxy))
        if len(cols) and len(rows):
            sub = np.ix_(rows, cols)
            inside = shapely.contains_xy(polygon, gx[sub], gy[sub])
            field_of[sub] = np.where(inside, index, field_of[sub])
    field_of[field_of < 0] = 0
    # a valley bottom runs diagonally: rice there, other crops elsewhere
    centroids = np.array([[p.centroid.x - ORIGIN[0], ORIGIN[1] - p.centroid.y] for p in polygons])
    valley = np.abs(centroids[:, 0] - centroids[:, 1] * 0.8 - size * PIXEL * 0.1) < 60
    names = list(CROPS)
    upland = np.array([CROPS[c][0] if c != "rice" else 0 for c in names])
    crops = np.array(
        [
            "rice" if wet else names[rng.choice(len(names), p=upland / upland.sum())]
            for wet in valley
        ]
    )
    planting = np.array([int(rng.integers(*CROPS[c][4])) if CROPS[c][4][1] else 0 for c in crops])

    days = np.arange(dates) * 10
    times = [FIRST_DATE + dt.timedelta(days=int(d)) for d in days]
    heterogeneity = np.clip(1 + 0.06 * _smooth(rng, (size, size), 1.5), 0.8, 1.15)
    bands = np.zeros((dates, len(BANDS), size, size), dtype=np.float64)
    mask = np.zeros((dates, size, size), dtype=np.uint8)
    for t, day in enumerate(days):
        cover = np.zeros(len(polygons))
        flooded = np.zeros(len(polygons), dtype=bool)
        for k, crop in enumerate(crops):
            _, peak, width, top, _ = CROPS[crop]
            since = day - planting[k]
            if width:
                cover[k] = (
                    0.05 + (top - 0.05) * np.exp(-(((since - peak) / width) ** 2))
                    if since >= 0
                    else 0.05
                )
            elif crop == "fallow":
                cover[k] = top + 0.08 * np.sin(day / 30)
            else:
                cover[k] = top + 0.05 * np.sin(day / 45 + k)
            flooded[k] = crop == "rice" and 0 <= since < 30
        f = np.clip(cover[field_of] * heterogeneity, 0, 1)
        ground = np.where(flooded[field_of][None], WATER[:, None, None], SOIL[:, None, None])
        surface = ground * (1 - f) + LEAF[:, None, None] * f
        surface *= rng.normal(1, 0.02, surface.shape)
        month = times[t].month
        cloudiness = {9: 0.10, 10: 0.35, 11: 0.45, 12: 0.25, 1: 0.15, 2: 0.20}.get(month, 0.2)
        share = float(np.clip(rng.beta(1.2, 1.2 / cloudiness), 0, 0.9))
        if share > 0.03:
            sky = _smooth(rng, (size, size), size / 10)
            cloud = sky > np.quantile(sky, 1 - share)
            shift = (int(size * 0.04) + 1, int(size * 0.06) + 1)
            shadow = np.roll(cloud, shift, axis=(0, 1)) & ~cloud
            brightness = 0.35 + 0.25 * np.clip(
                (sky - sky[cloud].min()) / (np.ptp(sky) + 1e-9), 0, 1
            )
            surface = np.where(shadow[None], surface * 0.35, surface)
            surface = np.where(
                cloud[None], brightness[None] * rng.uniform(0.9, 1.1, (6, 1, 1)), surface
            )
            mask[t] = np.where(cloud, 1, np.where(shadow, 2, 0))
        bands[t] = surface
    dn = np.clip(np.round(bands * 10000), 1, 65535).astype(np.uint16)
    data_vars: dict[str, Any] = {
        name: (
            ("time", "y", "x"),
            dn[:, b],
            {
                "long_name": f"surface reflectance, {name}",
                "units": "1",
                "scale_factor_note": "reflectance x 10000",
            },
        )
        for b, name in enumerate(BANDS)
    }
    data_vars["cloud_mask"] = (
        ("time", "y", "x"),
        mask,
        {"flag_values": [0, 1, 2], "flag_meanings": "clear cloud cloud_shadow"},
    )
    dataset = xr.Dataset(
        data_vars,
        coords={"time": pd.to_datetime(times).values.astype("datetime64[ns]"), "y": y, "x": x},
        attrs={"crs": CRS, "title": "Synthetic Sentinel-2-like L2A surface reflectance"},
    )
    write_zarr(
        dataset,
        out / "earth_observation" / "reflectance" / "reflectance.zarr",
        {"time": 6, "y": 128, "x": 128},
    )

    fields = gpd.GeoDataFrame(
        {
            "field_id": np.arange(1, len(polygons) + 1, dtype=np.int32),
            "crop": crops,
            "planting_date": [
                FIRST_DATE + dt.timedelta(days=int(p)) if CROPS[c][4][1] else None
                for p, c in zip(planting, crops, strict=True)
            ],
            "area_ha": np.round([p.area / 10_000 for p in polygons], 4),
        },
        geometry=[shapely.set_precision(p, 0.01) for p in polygons],
        crs=CRS,
    )
    write_geoparquet(fields, out / "earth_observation" / "fields" / "fields.parquet")
