"""Hidden checks of the scanner price-index exercise: right answers per variant, and scoring.

Variant: ``seed`` picks half of the stores (a regional index), ``coicop`` the subclass.
Prices are unit values (turnover / quantity over the chosen stores) per product and week;
indices compare the last week of the year with the first (= 100).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

FIRST_WEEK, LAST_WEEK = "2023-01-02", "2023-12-25"


def chosen_stores(transactions: pd.DataFrame, seed: int) -> np.ndarray:
    """The store ids a variant works on (as the template picks them)."""
    stores = np.sort(transactions["store_id"].unique())
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(stores, size=len(stores) // 2, replace=False))


def unit_values(data_root: Path, seed: int, coicop: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prices and turnover, weeks x products, for the variant's stores and subclass."""
    transactions = pd.read_parquet(data_root / "scanner" / "transactions")
    products = pd.read_parquet(data_root / "scanner" / "products")
    transactions["week"] = pd.to_datetime(transactions["week"]).dt.strftime("%Y-%m-%d")
    sales = transactions.merge(products[["gtin", "coicop"]], on="gtin")
    sales = sales[
        sales["store_id"].isin(chosen_stores(transactions, seed))
        & sales["coicop"].str.startswith(coicop)
        & sales["week"].between(FIRST_WEEK, LAST_WEEK)
    ]
    cells = sales.groupby(["week", "gtin"])[["turnover", "quantity"]].sum()
    return (cells["turnover"] / cells["quantity"]).unstack(), cells["turnover"].unstack()


def geks_tornqvist(prices: pd.DataFrame, spend: pd.DataFrame) -> np.ndarray:
    """GEKS-Törnqvist of every week against the first (1 = no change)."""
    log_p, spending = np.log(prices.to_numpy()), spend.to_numpy()
    n = len(log_p)
    log_t = np.full((n, n), np.nan)
    for s in range(n):
        for t in range(n):
            both = ~np.isnan(log_p[s]) & ~np.isnan(log_p[t])
            if both.any():
                w = spending[s, both] / spending[s, both].sum()
                w = (w + spending[t, both] / spending[t, both].sum()) / 2
                log_t[s, t] = np.sum(w * (log_p[t, both] - log_p[s, both]))
    return np.exp(np.nanmean(log_t[0, :, None] + log_t, axis=0))


def reference(parameters: dict[str, Any], data_root: Path) -> dict[str, Any]:
    prices, spend = unit_values(data_root, int(parameters["seed"]), str(parameters["coicop"]))
    log_p = np.log(prices)
    relatives = log_p.iloc[-1] - log_p.iloc[0]
    return {
        "products_in_base": int(prices.iloc[0].notna().sum()),
        "jevons_last": round(float(np.exp(relatives.mean()) * 100), 2),
        "geks_last": round(float(geks_tornqvist(prices, spend)[-1] * 100), 2),
    }


def _number(answer: Any) -> float | None:
    if isinstance(answer, bool) or not isinstance(answer, int | float):
        return None
    return float(answer) if math.isfinite(answer) else None


def check_count(answer: Any, expected: Any) -> tuple[float, str]:
    value = _number(answer)
    if value is None:
        return 0.0, f"expected a whole number, got {type(answer).__name__}"
    if value == expected:
        return 1.0, f"right: {expected}"
    return 0.0, f"{answer} is not right: count the products with sales in the first week"


def check_index(answer: Any, expected: Any) -> tuple[float, str]:
    value = _number(answer)
    if value is None:
        return 0.0, f"expected an index number (first week = 100), got {type(answer).__name__}"
    if value <= 0:
        return 0.0, f"{answer} cannot be an index"
    if abs(value - expected) <= 0.011:
        return 1.0, f"right: {expected}"
    if abs(value - 100 * expected) <= 1.1 or abs(value * 100 - expected) <= 0.011:
        return 0.5, "right but not on the scale asked: first week = 100"
    if abs(value - expected) <= 0.5:
        return 0.5, f"{value:g} is close to the right index; check unit values and weights"
    return 0.0, f"{value:g} is not right"


CHECKS = {
    "products_in_base": check_count,
    "jevons_last": check_index,
    "geks_last": check_index,
}
