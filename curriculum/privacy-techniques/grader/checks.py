"""Hidden checks of the privacy-techniques certification exercise (never published).

``reference`` recomputes every task from the microdata file for a trainee's variant (seed,
epsilon, k_target), exactly as the template defines the sample and the noise generator;
``CHECKS`` scores an answer against it. The noisy table is checkable despite its randomness
because the template names the generator (``noise_rng``) and the order of the draws; a
table with noise of the right scale but other draws earns half the points.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

QUASI_IDENTIFIERS = ["district", "sex", "age", "marital_status", "occupation"]
SKILL_GROUP = {
    "Managers": "high skill",
    "Professionals": "high skill",
    "Technicians and associate professionals": "high skill",
    "Clerical support workers": "medium skill",
    "Service and sales workers": "medium skill",
    "Skilled agricultural, forestry and fishery workers": "medium skill",
    "Craft and related trades workers": "medium skill",
    "Plant and machine operators and assemblers": "medium skill",
    "Armed forces": "medium skill",
    "Elementary occupations": "elementary",
    "none": "none",
}
SAMPLE_SHARE = 0.5
RELATIVE_ERROR_GOAL = 0.1


def persons_of(parameters: dict[str, Any], data_root: Path) -> pd.DataFrame:
    """The trainee's 50% sample, drawn as the template draws it."""
    microdata = pd.read_parquet(data_root / "privacy" / "microdata" / "microdata.parquet")
    chosen = np.random.default_rng(int(parameters["seed"])).random(len(microdata)) < SAMPLE_SHARE
    return microdata[chosen]


def _smallest_class_members(keys: pd.DataFrame, k: int) -> int:
    """Rows whose combination of all columns of ``keys`` occurs fewer than ``k`` times."""
    counts = keys.value_counts()
    return int(counts[counts < k].sum())


def reference(parameters: dict[str, Any], data_root: Path) -> dict[str, Any]:
    persons = persons_of(parameters, data_root)
    epsilon, k_target = float(parameters["epsilon"]), int(parameters["k_target"])
    decade = persons["age"].to_numpy() // 10 * 10
    generalised = pd.DataFrame(
        {
            "province": persons["province"].to_numpy(),
            "sex": persons["sex"].to_numpy(),
            "decade": decade,
            "marital_status": persons["marital_status"].to_numpy(),
            "skill": persons["occupation"].map(SKILL_GROUP).to_numpy(),
        }
    )
    districts, counts = np.unique(persons["district"].to_numpy(dtype=str), return_counts=True)
    noise = np.random.default_rng([int(parameters["seed"]), 1]).laplace(
        0.0, 1 / epsilon, size=len(districts)
    )
    return {
        "unique_records": _smallest_class_members(persons[QUASI_IDENTIFIERS], 2),
        "at_risk": _smallest_class_members(generalised, k_target),
        "noisy_counts": {
            "noisy": {
                str(d): float(c + e) for d, c, e in zip(districts, counts, noise, strict=True)
            },
            "true": {str(d): int(c) for d, c in zip(districts, counts, strict=True)},
            "scale": 1 / epsilon,
        },
        "expected_error": 1 / epsilon,
        "epsilon_needed": 1 / (RELATIVE_ERROR_GOAL * int(counts.min())),
    }


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None for anything else (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def check_count(answer: Any, expected: Any) -> tuple[float, str]:
    value = _number(answer)
    if value is None:
        return 0.0, f"expected a whole number of persons, got {type(answer).__name__}"
    if value < 0:
        return 0.0, f"{value:g}: a count of persons cannot be negative"
    if value == expected:
        return 1.0, f"right: {expected}"
    if value < expected:
        return 0.0, f"{value:g} is too few: every record of a small class counts"
    return 0.0, f"{value:g} is too many: check the quasi-identifiers and the generalisation"


def check_close(answer: Any, expected: Any) -> tuple[float, str]:
    value = _number(answer)
    if value is None:
        return 0.0, f"expected a number, got {type(answer).__name__}"
    if math.isclose(value, expected, rel_tol=1e-3):
        return 1.0, f"right: {expected:g}"
    return 0.0, f"{value:g} is not right"


def check_noisy_counts(answer: Any, expected: Any) -> tuple[float, str]:
    noisy, true, scale = expected["noisy"], expected["true"], expected["scale"]
    if not isinstance(answer, dict) or sorted(map(str, answer)) != sorted(noisy):
        return 0.0, f"expected a dict with one noisy count for each of the {len(noisy)} districts"
    values = {str(key): _number(value) for key, value in answer.items()}
    if any(value is None for value in values.values()):
        return 0.0, "every noisy count must be a finite number"
    if all(abs(values[d] - noisy[d]) <= 1e-6 * max(1.0, abs(noisy[d])) for d in noisy):
        return 1.0, "right: the counts with the prescribed Laplace noise"
    errors = np.array([values[d] - true[d] for d in true])
    if np.all(np.abs(errors) < 1e-9):
        return 0.0, "these are the exact counts: no noise was added, nothing is protected"
    if all(abs(values[d] - noisy[d]) <= 0.5 + 1e-9 for d in noisy):
        return 0.75, "right noise, but rounded: the task asks for the unrounded noisy counts"
    mean_error = float(np.mean(np.abs(errors)))
    if 0.5 * scale <= mean_error <= 2 * scale:
        return 0.5, (
            f"noise of about the right scale ({mean_error:.3g} on average; expected {scale:g}), "
            "but not the draws asked for: one call to noise_rng.laplace, in district order"
        )
    return (
        0.0,
        f"the noise averages {mean_error:.3g} persons; at this epsilon it should be {scale:g}",
    )


CHECKS: dict[str, Callable[[Any, Any], tuple[float, str]]] = {
    "unique_records": check_count,
    "at_risk": check_count,
    "noisy_counts": check_noisy_counts,
    "expected_error": check_close,
    "epsilon_needed": check_close,
}
