"""The sample exercise's data, written by the tests themselves (no other branch needed)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

SHOPS = [f"S{i}" for i in range(7)]
WEEKS = range(1, 13)


CATALOG = Path(__file__).parent.parent / "fixtures" / "catalogs" / "shop.yaml"
"""The catalog of this data: ``scanner.shop_prices`` (public, declared by the exercise),
``scanner.shop_stock`` (public, declared by no exercise), ``scanner.shop_margins``
(restricted to analysts, declared)."""
SECRET_MARKER = "statbox-not-for-trainees"
"""Written into the data a graded kernel must never read (undeclared or not entitled)."""


def write_sample_data(data_root: Path) -> Path:
    """``<data_root>/scanner/shop_prices/prices.csv``: a price per shop and week, each shop
    with one clear peak week (deterministic); beside it the stock and margins files, which
    graded kernels must not read. Returns the prices file."""
    for name in ("stock", "margins"):
        other = data_root / "scanner" / f"shop_{name}" / f"{name}.csv"
        other.parent.mkdir(parents=True, exist_ok=True)
        other.write_text(f"shop,week,value\n{SECRET_MARKER},1,1.0\n")
    rng = random.Random(20260)
    path = data_root / "scanner" / "shop_prices" / "prices.csv"
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
