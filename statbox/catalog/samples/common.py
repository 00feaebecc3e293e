"""What every sample generator shares: sizes, seeded randomness, and byte-stable writers.

Invariant: the bytes written depend only on (seed, scale) and the pinned library versions:
each domain draws from its own generator seeded by ``(seed, domain number)``, rows are
written in a fixed order, Parquet files carry no timestamps, GeoJSON is written with sorted
keys and rounded coordinates, and Zarr stores use format 2 with fixed chunks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DOMAIN_STREAMS = {
    "ais": 1,
    "earth_observation": 2,
    "mobile_phone": 3,
    "scanner": 4,
    "rural_access": 5,
    "sdg": 6,
    "privacy": 7,
}


@dataclass(frozen=True)
class Scale:
    """How big the samples are; ``small`` runs every course and test in seconds."""

    name: str
    ais_vessels: int
    ais_days: int
    eo_pixels: int
    eo_dates: int
    phone_devices: int
    phone_days: int
    scanner_stores: int
    scanner_weeks: int
    scanner_products_per_class: int
    rural_cells: int
    privacy_people: int


SCALES = {
    "small": Scale("small", 60, 3, 128, 18, 2000, 7, 10, 52, 16, 300, 20_000),
    "medium": Scale("medium", 240, 14, 384, 36, 12_000, 14, 30, 104, 30, 600, 200_000),
}


def rng_for(seed: int, domain: str) -> np.random.Generator:
    return np.random.default_rng([seed, DOMAIN_STREAMS[domain]])


def write_parquet(frame: Any, path: Path, row_group_size: int = 262_144) -> None:
    """A pandas frame as one Parquet file (zstd, no index, statistics kept)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, compression="zstd", row_group_size=row_group_size)


def write_partitioned(frame: Any, directory: Path, key: str, values: Any) -> None:
    """One Parquet file per distinct value of ``values`` under ``key=<value>/part-0.parquet``
    (hive layout, so readers see ``key`` as a column and can skip partitions)."""
    labels = np.asarray(values)
    for label in sorted(set(labels.tolist())):
        part = frame[labels == label].reset_index(drop=True)
        write_parquet(part, directory / f"{key}={label}" / "part-0.parquet")


def write_geoparquet(frame: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False, compression="zstd")


def write_geojson(records: list[dict[str, Any]], geometries: list[Any], path: Path) -> None:
    """Features with properties ``records`` and shapely ``geometries`` (EPSG:4326, RFC 7946),
    coordinates rounded to 6 decimals (about 0.1 m)."""
    import shapely

    features = []
    for properties, geometry in zip(records, geometries, strict=True):
        geometry = shapely.set_precision(geometry, 1e-6)
        features.append(
            {
                "type": "Feature",
                "properties": {k: _plain(v) for k, v in properties.items()},
                "geometry": json.loads(shapely.to_geojson(geometry)),
            }
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"type": "FeatureCollection", "features": features}
    path.write_text(json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n")


def write_zarr(dataset: Any, path: Path, chunks: dict[str, int]) -> None:
    """An xarray Dataset as a consolidated Zarr (format 2: read everywhere, no warnings)."""
    encoding = {
        name: {"chunks": tuple(min(chunks.get(d, n), n) for d, n in var.sizes.items())}
        for name, var in dataset.data_vars.items()
    }
    dataset.to_zarr(path, mode="w", zarr_format=2, consolidated=True, encoding=encoding)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def hashed_ids(rng: np.random.Generator, count: int, digits: int = 16) -> list[str]:
    """Distinct pseudonymous hexadecimal ids."""
    ids: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        value = rng.bytes(digits // 2).hex()
        if value not in ids:
            ids.add(value)
            out.append(value)
    return out
