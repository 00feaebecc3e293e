"""The sample exercise's data, written by the tests themselves (no other branch needed)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

SHOPS = [f"S{i}" for i in range(7)]
WEEKS = range(1, 13)


def write_sample_data(data_root: Path) -> Path:
    """``<data_root>/shop-prices/prices.csv``: a price per shop and week, each shop with
    one clear peak week. Deterministic."""
    rng = random.Random(20260)
    path = data_root / "shop-prices" / "prices.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["shop", "week", "price"])
        for index, shop in enumerate(SHOPS):
            peak = rng.choice(list(WEEKS))
            for week in WEEKS:
                price = round(60 + 12 * index + rng.random() * 5 + (20 if week == peak else 0), 2)
                writer.writerow([shop, week, price])
    return path
