"""Hidden checks of the earth-observation-ndvi certification exercise (never published).

``reference`` recomputes every task from the reflectance cube and the field boundaries for
a trainee's variant (the seed picks half of the fields as the template picks them; ``date``
is one of the season's dates), with per-field sums by ``numpy.bincount`` rather than
xarray's groupby. Field NDVI is checked to 0.001; a dict answer earns the share of its
fields that are right.
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

MIN_CLEAR = 0.5
NDVI_TOLERANCE = 1e-3


def field_table(data_root: Path, field_ids: Any) -> tuple[list[str], np.ndarray, float]:
    """(dates, NDVI per date and field (NaN where under MIN_CLEAR clear), clear share) of
    the fields ``field_ids``, in that order."""
    root = data_root / "earth_observation"
    cube = xr.open_zarr(root / "reflectance" / "reflectance.zarr").load()
    fields = gpd.read_parquet(root / "fields" / "fields.parquet").set_index("field_id")
    x, y = np.meshgrid(cube["x"].values, cube["y"].values)
    index = np.zeros(x.shape, dtype=np.int64)  # 0: none of the fields asked for
    for position, field_id in enumerate(field_ids, start=1):
        index[shapely.contains_xy(fields.geometry[field_id], x, y)] = position
    flat = index.ravel()
    size = len(field_ids) + 1
    pixels = np.bincount(flat, minlength=size)[1:]
    red = cube["red"].values.astype(np.float64)
    nir = cube["nir"].values.astype(np.float64)
    clear = cube["cloud_mask"].values == 0
    ndvi = np.where(clear, (nir - red) / (nir + red), 0.0)
    dates = [str(t)[:10] for t in cube["time"].values]
    table = np.full((len(dates), len(field_ids)), np.nan)
    clear_pixels = 0.0
    for t in range(len(dates)):
        seen = np.bincount(flat, weights=clear[t].ravel(), minlength=size)[1:]
        total = np.bincount(flat, weights=ndvi[t].ravel(), minlength=size)[1:]
        clear_pixels += seen.sum()
        counts = seen / pixels >= MIN_CLEAR
        table[t, counts] = total[counts] / seen[counts]
    return dates, table, float(clear_pixels / (pixels.sum() * len(dates)))


def chosen_fields(parameters: dict[str, Any], data_root: Path) -> list[int]:
    """The trainee's half of the fields, drawn as the template draws them."""
    fields = gpd.read_parquet(data_root / "earth_observation" / "fields" / "fields.parquet")
    rng = np.random.default_rng(int(parameters["seed"]))
    ids = fields["field_id"].to_numpy()
    return [int(f) for f in np.sort(rng.choice(ids, size=len(fields) // 2, replace=False))]


def reference(parameters: dict[str, Any], data_root: Path) -> dict[str, Any]:
    chosen = chosen_fields(parameters, data_root)
    dates, table, clear_share = field_table(data_root, chosen)
    on_date = table[dates.index(str(parameters["date"]))]
    ids = [str(f) for f in chosen]
    return {
        "clear_share": clear_share,
        "field_ndvi": {
            f: (None if np.isnan(v) else float(v)) for f, v in zip(ids, on_date, strict=True)
        },
        "peak_ndvi": {
            f: None if np.isnan(table[:, i]).all() else float(np.nanmax(table[:, i]))
            for i, f in enumerate(ids)
        },
    }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _is_nan(value: Any) -> bool:
    return isinstance(value, float | np.floating) and math.isnan(value)


def check_share(answer: Any, expected: Any) -> tuple[float, str]:
    value = _number(answer)
    if value is None or not 0 <= value <= 1:
        return 0.0, "expected a share from 0 to 1"
    if abs(value - expected) <= 5e-4:
        return 1.0, f"right: {expected:.1%} of the observations are clear"
    return 0.0, f"{value:.1%} is not the share of clear observations of your fields"


def check_field_values(answer: Any, expected: Any) -> tuple[float, str]:
    """A dict field id -> NDVI or None: the share of the fields with a value that are right,
    less one for each field that should be None (too cloudy) but was given a number."""
    if not isinstance(answer, dict):
        return 0.0, f"expected a dict field id -> NDVI, got {type(answer).__name__}"
    # NaN, as pandas writes a missing value, stands for None (too cloudy) as well
    given = {str(key): (None if _is_nan(value) else value) for key, value in answer.items()}
    missing = sorted(set(expected) - set(given), key=int)
    if missing:
        return 0.0, f"no value for {len(missing)} of your fields (e.g. field {missing[0]})"
    with_value = [f for f, v in expected.items() if v is not None]
    right = sum(
        1
        for f in with_value
        if (value := _number(given[f])) is not None and abs(value - expected[f]) <= NDVI_TOLERANCE
    )
    guessed = sum(1 for f, v in expected.items() if v is None and given[f] is not None)
    if not with_value:
        return (1.0, "right: every field is too cloudy") if not guessed else (0.0, "all too cloudy")
    fraction = max(0, right - guessed) / len(with_value)
    if fraction == 1:
        return 1.0, f"right for all {len(expected)} fields"
    wrong = len(with_value) - right
    return fraction, f"{wrong} field values are wrong; {guessed} fields too cloudy to count got one"


CHECKS: dict[str, Callable[[Any, Any], tuple[float, str]]] = {
    "clear_share": check_share,
    "field_ndvi": check_field_values,
    "peak_ndvi": check_field_values,
}
