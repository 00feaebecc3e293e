"""Getting started: the figures recomputed from the files themselves (curriculum tier)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.dataset
import yaml

CATALOG = Path(__file__).resolve().parents[3] / "catalogs" / "statbox.yaml"


def welcome(results: dict[str, Any], data_root: Path) -> None:
    with (data_root / "sdg" / "indicators" / "indicators.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert results["sdg_rows"] == len(rows)
    assert results["countries"] == len({r["country"] for r in rows})
    assert results["entries"] == len(yaml.safe_load(CATALOG.read_text())["entries"])
    chosen = [r for r in rows if r["series"] == "EG_ELC_ACCS" and r["country"] == "RWA"]
    latest = max(chosen, key=lambda r: int(r["year"]))
    assert results["latest_year"] == int(latest["year"])
    assert abs(results["latest_value"] - float(latest["value"])) < 1e-9


def tour(results: dict[str, Any], data_root: Path) -> None:
    dataset = pyarrow.dataset.dataset(data_root / "ais" / "positions", partitioning="hive")
    table = dataset.to_table(columns=["mmsi", "date"])
    days = Counter(str(d) for d in table.column("date").to_pylist())
    assert results["reports"] == results["dask_rows"] == table.num_rows
    assert results["per_day"] == dict(sorted(days.items()))
    assert results["reports_on_day"] == days["2024-03-05"]
    assert results["vessels"] == len(set(table.column("mmsi").to_pylist()))
    assert "sog" in results["columns"] and "timestamp" in results["columns"]


EXPECTED = {"01-welcome.ipynb": welcome, "02-catalog-tour.ipynb": tour}
