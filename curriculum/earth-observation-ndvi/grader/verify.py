"""What the earth-observation-ndvi notebooks must compute, recomputed another way.

The lessons label pixels by a spatial join and average with xarray's groupby; here
grader/checks.py's ``field_table`` labels them polygon by polygon and sums per field with
``numpy.bincount``, and the yield proxy is integrated by hand. The classifier cannot be
recomputed another way: its confusion matrix must be consistent with the field labels and
its cross-validated accuracy well above the majority-class baseline. The solution's answers
must earn full marks by grader/checks.py and the template's none.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
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


def all_fields(data_root: Path) -> pd.DataFrame:
    return gpd.read_parquet(data_root / "earth_observation" / "fields" / "fields.parquet")


def lesson_series(results: dict[str, Any], data_root: Path) -> None:
    fields = all_fields(data_root)
    ids = [int(f) for f in fields["field_id"]]
    dates, table, _ = checks.field_table(data_root, ids)
    assert results["fields"] == len(fields)
    assert results["dates"] == dates
    recorded = results["field_ndvi"]
    assert sorted(recorded, key=int) == [str(f) for f in ids]
    for i, field in enumerate(ids):
        for value, mine in zip(recorded[str(field)], table[:, i], strict=True):
            assert (value is None) == bool(np.isnan(mine)), field
            assert value is None or abs(value - mine) < 1e-9, field
    cube = xr.open_zarr(data_root / "earth_observation" / "reflectance" / "reflectance.zarr")
    clear = np.count_nonzero(cube["cloud_mask"].values == 0) / cube["cloud_mask"].size
    assert math.isclose(results["clear_share"], clear, rel_tol=1e-9)
    crops = fields.set_index("field_id")["crop"]
    peaks = pd.DataFrame(table.T, index=ids).groupby(crops).median().max(axis=1)
    assert sorted(results["peak_by_crop"]) == sorted(peaks.index)
    for crop, peak in peaks.items():
        assert math.isclose(results["peak_by_crop"][crop], peak, rel_tol=1e-9), crop
    assert crops[results["example_field"]] == "maize"


def lesson_classes(results: dict[str, Any], data_root: Path) -> None:
    parameters = notebook_parameters(COURSE / "02-crop-types-and-yield-proxy.ipynb")
    fields = all_fields(data_root)
    ids = [int(f) for f in fields["field_id"]]
    dates, table, _ = checks.field_table(data_root, ids)
    days = (pd.to_datetime(dates) - pd.Timestamp(dates[0])).days.to_numpy(dtype=float)
    crops = fields.set_index("field_id")["crop"]

    confusion = results["confusion"]  # {true crop: {predicted crop: fields}}
    counts = crops.value_counts()
    assert {crop: sum(row.values()) for crop, row in confusion.items()} == counts.to_dict()
    right = sum(confusion[crop][crop] for crop in confusion)
    assert math.isclose(results["accuracy"], right / len(crops))
    assert math.isclose(results["baseline"], counts.max() / len(crops))
    assert results["accuracy"] >= max(0.75, results["baseline"] + 0.3), results["accuracy"]

    baseline = parameters["baseline_ndvi"]
    cereals = [f for f in ids if crops[f] in ("maize", "sorghum")]
    assert sorted(results["integrated_ndvi"], key=int) == [str(f) for f in cereals]
    for field in cereals:
        column = table[:, ids.index(field)]
        seen = ~np.isnan(column)
        filled = np.interp(days, days[seen], column[seen])
        above = np.clip(filled - baseline, 0, None)
        integral = float(((above[1:] + above[:-1]) / 2 * np.diff(days)).sum())
        assert math.isclose(results["integrated_ndvi"][str(field)], integral, rel_tol=1e-9)
        assert math.isclose(results["peak_ndvi"][str(field)], filled.max(), rel_tol=1e-9)


def solution(results: dict[str, Any], data_root: Path) -> None:
    expected = checks.reference(DEFAULTS, data_root)
    assert_full_marks(checks, results["answers"], expected)


EXPECTED = {
    "01-ndvi-time-series.ipynb": lesson_series,
    "02-crop-types-and-yield-proxy.ipynb": lesson_classes,
    "grader/solution.ipynb": solution,
    "exercise/ndvi-certification.ipynb": template_scores_zero(checks, DEFAULTS),
}
