"""What the mobile-phone-population notebooks must compute, recomputed another way.

The lessons group and pivot with pandas; here grader/checks.py's helpers pick each
device's modal cell or area with ``numpy.unique`` over joined keys, silences are filled
column by column in a device x hour matrix, and home counts are tallied by hand. The
solution's answers must earn full marks by grader/checks.py and the template's none.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

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
HOURS = 7 * 24


def census(data_root: Path) -> pd.Series:
    areas = gpd.read_file(data_root / "mobile_phone" / "areas" / "areas.geojson")
    return areas.set_index("area_id")["population"].sort_index()


def lesson_present(results: dict[str, Any], data_root: Path) -> None:
    parameters = notebook_parameters(COURSE / "01-present-population.ipynb")
    events = checks.week_events(parameters["period"], data_root)
    area_ids = census(data_root).index.tolist()
    devices = sorted(events["device_id"].unique())
    start = events["local"].min().normalize()
    slot = ((events["local"] - start) // pd.Timedelta(hours=1)).to_numpy()
    modal = checks.modal_value(
        np.char.add(events["device_id"].to_numpy(dtype=str), np.char.mod("|%03d", slot)),
        events["area_id"].to_numpy(dtype=str),
    )
    row = {device: i for i, device in enumerate(devices)}
    column = {area: i for i, area in enumerate(area_ids)}
    where = np.full((len(devices), HOURS), -1)
    for key, area in modal.items():
        device, hour = key.split("|")
        where[row[device], int(hour)] = column[area]
    observed = where >= 0
    silent_for = np.zeros(len(devices), dtype=int)
    for hour in range(1, HOURS):  # carry the last area forward for at most carry_hours
        silent_for = np.where(observed[:, hour], 0, silent_for + 1)
        carry = ~observed[:, hour] & (silent_for <= parameters["carry_hours"])
        where[carry, hour] = where[carry, hour - 1]
    counts = np.stack(
        [np.bincount(where[where[:, h] >= 0, h], minlength=len(area_ids)) for h in range(HOURS)]
    )
    estimate = counts / counts.sum(axis=1, keepdims=True) * len(devices)
    weekday = estimate[: 5 * 24].reshape(5, 24, len(area_ids)).mean(axis=0)
    raw = counts[: 5 * 24].reshape(5, 24, len(area_ids)).mean(axis=0)

    assert results["devices"] == len(devices)
    assert results["events"] == len(events)
    for a, area in enumerate(area_ids):
        recorded = results["present_weekday"][area]
        assert np.allclose([recorded[str(h)] for h in range(24)], weekday[:, a], atol=1e-9), area
        recorded = results["raw_weekday"][area]
        assert np.allclose([recorded[str(h)] for h in range(24)], raw[:, a], atol=1e-9), area
    coverage = [results["coverage_observed"][str(h)] for h in range(HOURS)]
    assert np.allclose(coverage, observed.mean(axis=0), atol=1e-12)
    assert results["busiest_at_11"] == area_ids[int(weekday[11].argmax())]
    for a, area in enumerate(area_ids):
        assert math.isclose(results["day_night_ratio"][area], weekday[11, a] / weekday[3, a])


def lesson_homes(results: dict[str, Any], data_root: Path) -> None:
    parameters = notebook_parameters(COURSE / "02-home-location.ipynb")
    events = checks.week_events(parameters["period"], data_root)
    population = census(data_root)
    area_of = dict(zip(events["cell_id"], events["area_id"], strict=False))

    def tally(min_nights: int) -> np.ndarray:
        counts = dict.fromkeys(population.index, 0)
        for cell in checks.home_cells(events, min_nights).values():
            counts[area_of[cell]] += 1
        return np.array([counts[a] for a in population.index])

    homes = tally(parameters["min_nights"])
    assert results["devices_with_home"] == homes.sum()
    assert [results["home_devices"][a] for a in population.index] == homes.tolist()
    factor = population.sum() / homes.sum()
    assert math.isclose(results["factor"], factor)
    assert np.allclose([results["estimate"][a] for a in population.index], homes * factor)
    correlation = np.corrcoef(population.to_numpy(), homes)[0, 1]
    assert math.isclose(results["correlation"], correlation)
    assert math.isclose(
        results["mean_absolute_difference"],
        np.mean(np.abs(np.round(homes * factor) / population - 1)),
    )
    for row in results["sensitivity"]:
        found = tally(row["min_nights"])
        assert row["devices with a home"] == found.sum(), row
        assert math.isclose(row["correlation"], np.corrcoef(population.to_numpy(), found)[0, 1])


def solution(results: dict[str, Any], data_root: Path) -> None:
    answers = results["answers"]
    assert_full_marks(checks, answers, checks.reference(DEFAULTS, data_root))
    # and against the lesson's rule applied here to the whole week, then to the panel
    events = checks.week_events(DEFAULTS["period"], data_root)
    devices = np.sort(events["device_id"].unique())
    panel = devices[np.random.default_rng(DEFAULTS["seed"]).random(len(devices)) < 0.5]
    homes = checks.home_cells(events, checks.MIN_NIGHTS)
    area_of = dict(zip(events["cell_id"], events["area_id"], strict=False))
    mine = [area_of[cell] for device, cell in homes.items() if device in set(panel)]
    counted = {area: mine.count(area) for area in census(data_root).index}
    assert answers["home_counts"] == counted
    factor = census(data_root).sum() / len(mine)
    assert math.isclose(answers["estimated_residents"], counted[DEFAULTS["area"]] * factor)


EXPECTED = {
    "01-present-population.ipynb": lesson_present,
    "02-home-location.ipynb": lesson_homes,
    "grader/solution.ipynb": solution,
    "exercise/mobile-certification.ipynb": template_scores_zero(checks, DEFAULTS),
}
