"""The scanner course's figures, recomputed another way from the same files (curriculum tier).

The notebooks use pandas pivots and numpy matrices. Here the rows are read with pyarrow into
plain dicts {(week, gtin): [turnover, quantity]} and every index is written out as its
textbook formula with Python's math module: different code, same definitions.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from pathlib import Path
from statistics import fmean
from typing import Any

import pyarrow.parquet as pq

from statbox.courses.exercise import assert_full_marks, checks_beside, template_scores_zero

checks = checks_beside(__file__)

EXERCISE_DEFAULTS = {"seed": 11, "coicop": "01.1.4.4"}
Cells = dict[str, dict[str, tuple[float, float]]]  # week -> gtin -> (turnover, quantity)


def cells(data_root: Path, coicop: str, stores: set[str] | None = None) -> Cells:
    rows = pq.read_table(data_root / "scanner" / "transactions").to_pylist()
    products = pq.read_table(data_root / "scanner" / "products").to_pylist()
    subclass = {p["gtin"]: p["coicop"] for p in products}
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0]))
    for row in rows:
        if not subclass[row["gtin"]].startswith(coicop):
            continue
        if stores is not None and row["store_id"] not in stores:
            continue
        cell = sums[row["week"].isoformat()][row["gtin"]]
        cell[0] += row["turnover"]
        cell[1] += row["quantity"]
    return {w: {g: (t, q) for g, (t, q) in sums[w].items()} for w in sorted(sums)}


def price(cell: tuple[float, float]) -> float:
    return cell[0] / cell[1]


def jevons(data: Cells, base: str, week: str) -> float:
    both = data[base].keys() & data[week].keys()
    return math.exp(fmean(math.log(price(data[week][g]) / price(data[base][g])) for g in both))


def tornqvist_log(data: Cells, s: str, t: str) -> float | None:
    both = data[s].keys() & data[t].keys()
    if not both:
        return None
    total_s = sum(data[s][g][0] for g in both)
    total_t = sum(data[t][g][0] for g in both)
    return sum(
        (data[s][g][0] / total_s + data[t][g][0] / total_t)
        / 2
        * math.log(price(data[t][g]) / price(data[s][g]))
        for g in both
    )


def geks(data: Cells, week: str) -> float:
    weeks = list(data)
    base = weeks[0]
    terms = []
    for link in weeks:
        a, b = tornqvist_log(data, base, link), tornqvist_log(data, link, week)
        if a is not None and b is not None:
            terms.append(a + b)
    return math.exp(fmean(terms))


def close(a: float, b: float, tolerance: float = 1e-6) -> bool:
    return abs(a - b) <= tolerance * max(1.0, abs(b))


def elementary(results: dict[str, Any], data_root: Path) -> None:
    data = cells(data_root, "01.2.1.1")
    weeks = list(data)
    base, last = weeks[0], weeks[-1]
    assert results["weeks"] == len(weeks) == 52
    assert results["base_products"] == len(data[base])
    assert results["matched"] == {w: len(data[base].keys() & data[w].keys()) for w in weeks}
    assert results["matched"][last] < results["base_products"], "churn should be visible"
    assert close(results["jevons_last"], 100 * jevons(data, base, last))
    both = data[base].keys() & data[last].keys()
    relatives = [price(data[last][g]) / price(data[base][g]) for g in both]
    assert close(results["carli_last"], 100 * fmean(relatives))
    dutot = fmean(price(data[last][g]) for g in both) / fmean(price(data[base][g]) for g in both)
    assert close(results["dutot_last"], 100 * dutot)
    chain = 1.0
    for previous, week in itertools.pairwise(weeks):
        if data[previous].keys() & data[week].keys():
            chain *= jevons(data, previous, week)
    assert close(results["jevons_chained_last"], 100 * chain)
    assert results["carli_last"] >= results["jevons_last"], "Carli is never below Jevons"


def multilateral(results: dict[str, Any], data_root: Path) -> None:
    data = cells(data_root, "01")
    weeks = list(data)
    base, last = weeks[0], weeks[-1]
    assert list(results["geks"]) == weeks
    for week in (weeks[1], weeks[len(weeks) // 2], last):
        assert close(results["geks"][week], 100 * geks(data, week)), week
    chain = 0.0
    for previous, week in itertools.pairwise(weeks):
        chain += tornqvist_log(data, previous, week) or 0.0
    assert close(results["chained_last"], 100 * math.exp(chain))
    basket = data[base]
    kept = [g for g in basket if g in data[last]]
    laspeyres = sum(price(data[last][g]) * basket[g][1] for g in kept) / sum(
        basket[g][0] for g in kept
    )
    assert close(results["fixed_basket_last"], 100 * laspeyres)
    assert close(results["basket_survival_last"], len(kept) / len(basket))
    assert close(results["chain_drift"], results["chained_last"] / results["geks"][last])


def _exercise_answers(data_root: Path, seed: int, coicop: str) -> dict[str, Any]:
    import pandas as pd

    transactions = pd.read_parquet(data_root / "scanner" / "transactions", columns=["store_id"])
    stores = {str(s) for s in checks.chosen_stores(transactions, seed)}
    data = cells(data_root, coicop, stores)
    weeks = list(data)
    return {
        "products_in_base": len(data[weeks[0]]),
        "jevons_last": 100 * jevons(data, weeks[0], weeks[-1]),
        "geks_last": 100 * geks(data, weeks[-1]),
    }


def solution(results: dict[str, Any], data_root: Path) -> None:
    answers = results["answers"]
    expected = checks.reference(EXERCISE_DEFAULTS, data_root)
    assert answers == expected, (answers, expected)
    recomputed = _exercise_answers(data_root, **EXERCISE_DEFAULTS)
    assert answers["products_in_base"] == recomputed["products_in_base"]
    for task in ("jevons_last", "geks_last"):
        assert abs(answers[task] - recomputed[task]) <= 0.005 + 1e-9, (task, recomputed[task])
    assert_full_marks(checks, answers, expected)


EXPECTED = {
    "01-elementary-indices.ipynb": elementary,
    "02-multilateral-geks.ipynb": multilateral,
    "grader/solution.ipynb": solution,
    "exercise/price-index-exercise.ipynb": template_scores_zero(checks, EXERCISE_DEFAULTS),
}
