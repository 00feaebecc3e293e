"""Scanner sample: weekly store x GTIN turnover and quantities from a supermarket chain.

What the price-index courses rely on, and this module guarantees:

- product churn: every product has a launch and an exit week; about 40% of the products
  present at the start have left a year later and as many new ones have entered,
  so a fixed basket shrinks and matched-model indices need chaining or multilateral methods;
- new products enter at higher unit prices than those they replace (relaunches), and sell
  less towards their exit (clearance at lower prices), which makes chained bilateral
  indices drift and gives GEKS-Tornqvist a real job;
- promotions cut prices by 15-35% for one or two weeks and lift quantities sharply;
- each COICOP subclass has its own inflation path; stores set slightly different prices;
- a row exists only where a store sold the product that week (quantity > 0).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from statbox.catalog.samples.common import Scale, rng_for, write_parquet

FIRST_WEEK = dt.date(2023, 1, 2)  # a Monday

# ECOICOP 5-digit subclass, label, base unit price, package sizes, unit, yearly inflation
SUBCLASSES = [
    ("01.1.1.1", "Rice", 2.1, (1, 2, 5), "kg", 0.06),
    ("01.1.1.3", "Bread", 1.6, (400, 600, 800), "g", 0.09),
    ("01.1.1.6", "Pasta products and couscous", 1.4, (500, 1000), "g", 0.05),
    ("01.1.4.1", "Whole milk", 1.1, (500, 1000), "ml", 0.08),
    ("01.1.4.4", "Yoghurt", 2.4, (150, 500, 1000), "g", 0.07),
    ("01.1.5.1", "Butter", 9.5, (250, 500), "g", 0.03),
    ("01.1.8.1", "Sugar", 1.3, (1, 2), "kg", 0.12),
    ("01.2.1.1", "Coffee", 14.0, (250, 500), "g", 0.15),
    ("01.2.2.1", "Mineral or spring waters", 0.5, (500, 1500), "ml", 0.02),
    ("01.2.2.2", "Soft drinks", 1.2, (330, 500, 2000), "ml", 0.04),
]
COICOP = [
    ("01", "Food and non-alcoholic beverages", 1),
    ("01.1", "Food", 2),
    ("01.1.1", "Bread and cereals", 3),
    ("01.1.4", "Milk, cheese and eggs", 3),
    ("01.1.5", "Oils and fats", 3),
    ("01.1.8", "Sugar, jam, honey, chocolate and confectionery", 3),
    ("01.2", "Non-alcoholic beverages", 2),
    ("01.2.1", "Coffee, tea and cocoa", 3),
    ("01.2.2", "Mineral waters, soft drinks, fruit and vegetable juices", 3),
]
BRANDS = [
    "Akira",
    "Bonne Terre",
    "Inyange",
    "Kivu Gold",
    "Mara",
    "Nile Valley",
    "Savanna",
    "Umurage",
    "Zawadi",
    "Store brand",
]


def gtin13(body12: int) -> str:
    """A GTIN-13 with its check digit (weights 1, 3 alternating from the left)."""
    digits = [int(d) for d in f"{body12:012d}"]
    total = sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return f"{body12:012d}{(10 - total % 10) % 10}"


def generate(out: Path, scale: Scale, seed: int) -> None:
    import pandas as pd

    rng = rng_for(seed, "scanner")
    weeks = scale.scanner_weeks
    stores = [f"S{n:03d}" for n in range(1, scale.scanner_stores + 1)]
    store_level = rng.normal(0, 0.03, len(stores))
    store_size = rng.lognormal(0, 0.5, len(stores))
    products, rows = [], []
    prefix = 6_001_234_000_000 // 10  # a GS1 company prefix range, 12-digit bodies
    serial = 0
    for code, label, base, sizes, unit, inflation in SUBCLASSES:
        count = scale.scanner_products_per_class
        # launches spread so that the shelf is about as full at the end as at the start
        launch = rng.integers(-150, weeks, count)
        life = rng.integers(30, 150, count)
        exit_week = launch + life
        trend = np.cumsum(rng.normal(inflation / 52, 0.004, weeks))
        for k in range(count):
            serial += 1
            size = float(rng.choice(sizes))
            per_unit = base * (size / (1000 if unit in ("g", "ml") else 1)) ** 0.9
            relaunch = 0.06 * max(0, launch[k]) / 52  # newer products cost more
            price0 = per_unit * rng.lognormal(0, 0.15) * (1 + relaunch)
            appeal = rng.lognormal(0, 0.7)
            gtin = gtin13(prefix + serial)
            brand = str(rng.choice(BRANDS))
            products.append(
                {
                    "gtin": gtin,
                    "description": f"{brand} {label.lower()} {size:g} {unit}",
                    "brand": brand,
                    "coicop": code,
                    "size": size,
                    "size_unit": unit,
                }
            )
            start, stop = max(0, int(launch[k])), min(weeks, int(exit_week[k]))
            if start >= stop:
                continue
            carried = rng.uniform(size=len(stores)) < rng.uniform(0.5, 0.95)
            span = np.arange(start, stop)
            age = span - launch[k]
            # sales rise after launch and fade before exit
            lifecycle = np.minimum(1, (age + 1) / 6) * np.minimum(1, (exit_week[k] - span) / 10)
            promo = rng.uniform(size=len(span)) < 0.07
            promo |= np.roll(promo, 1) & (rng.uniform(size=len(span)) < 0.4)
            discount = np.where(promo, rng.uniform(0.15, 0.35, len(span)), 0.0)
            clearance = np.where(exit_week[k] - span < 6, 0.2, 0.0)
            for s, store in enumerate(stores):
                if not carried[s]:
                    continue
                price = (
                    price0
                    * np.exp(trend[span] + store_level[s])
                    * (1 - np.maximum(discount, clearance))
                )
                price = np.round(price, 2)
                demand = 30 * appeal * store_size[s] * lifecycle
                demand *= (price / (price0 * np.exp(trend[span]))) ** -2.5
                quantity = rng.poisson(demand)
                sold = quantity > 0
                rows.append(
                    pd.DataFrame(
                        {
                            "store_id": store,
                            "gtin": gtin,
                            "week": span[sold],
                            "turnover": np.round(price[sold] * quantity[sold], 2),
                            "quantity": quantity[sold].astype("int64"),
                        }
                    )
                )
    frame = pd.concat(rows, ignore_index=True)
    frame = frame.sort_values(["week", "store_id", "gtin"], kind="stable").reset_index(drop=True)
    frame["week"] = [FIRST_WEEK + dt.timedelta(weeks=int(w)) for w in frame["week"]]
    write_parquet(frame, out / "scanner" / "transactions" / "transactions.parquet", 100_000)
    write_parquet(pd.DataFrame(products), out / "scanner" / "products" / "products.parquet")
    coicop = COICOP + [(code, label, 4) for code, label, *_ in SUBCLASSES]
    table = pd.DataFrame(sorted(coicop), columns=["code", "label", "level"])
    table["level"] = table["level"].astype("int8")
    path = out / "scanner" / "coicop" / "coicop.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False, lineterminator="\n")
