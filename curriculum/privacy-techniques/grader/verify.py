"""What the privacy-techniques notebooks must compute, recomputed another way from the files.

The lessons group with pandas; here equivalence classes are counted with ``numpy.unique``
over joined string keys, and the Laplace noise is redrawn from the seed the lesson names.
The solution's answers must earn full marks by grader/checks.py and the template's none.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

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


def microdata(data_root: Path) -> pd.DataFrame:
    return pd.read_parquet(data_root / "privacy" / "microdata" / "microdata.parquet")


def class_sizes(columns: list[np.ndarray]) -> np.ndarray:
    """Each row's equivalence-class size, from one joined string key per row."""
    keys = np.array(["|".join(map(str, row)) for row in zip(*columns, strict=True)])
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return counts[inverse]


def k_anonymity(results: dict[str, Any], data_root: Path) -> None:
    k = notebook_parameters(COURSE / "01-k-anonymity.ipynb")["k"]
    frame = microdata(data_root)
    age = frame["age"].to_numpy()
    occupation = frame["occupation"].map(checks.SKILL_GROUP).to_numpy()
    steps = [
        [frame["district"], frame["sex"], age, frame["marital_status"], frame["occupation"]],
        [frame["district"], frame["sex"], age // 5, frame["marital_status"], frame["occupation"]],
        [frame["district"], frame["sex"], age // 10, frame["marital_status"], frame["occupation"]],
        [frame["province"], frame["sex"], age // 10, frame["marital_status"], frame["occupation"]],
        [frame["province"], frame["sex"], age // 10, frame["marital_status"], occupation],
    ]
    sizes = [class_sizes([np.asarray(c) for c in step]) for step in steps]
    assert results["persons"] == len(frame)
    assert results["uniques_raw"] == int((sizes[0] == 1).sum())
    assert results["at_risk_raw"] == int((sizes[0] < k).sum())
    assert [row["at_risk"] for row in results["ladder"]] == [int((s < k).sum()) for s in sizes]
    assert [row["uniques"] for row in results["ladder"]] == [int((s == 1).sum()) for s in sizes]
    assert [row["k"] for row in results["ladder"]] == [int(s.min()) for s in sizes]
    assert results["suppressed"] == int((sizes[-1] < k).sum())
    assert results["k_released"] >= k


def laplace(results: dict[str, Any], data_root: Path) -> None:
    parameters = notebook_parameters(COURSE / "02-laplace-mechanism.ipynb")
    epsilon, seed = parameters["epsilon"], parameters["seed"]
    districts, counts = np.unique(
        microdata(data_root)["district"].to_numpy(dtype=str), return_counts=True
    )
    assert results["true_counts"] == dict(zip(districts.tolist(), counts.tolist(), strict=True))
    noise = np.random.default_rng(seed).laplace(0.0, 1 / epsilon, size=len(districts))
    noisy = results["noisy_counts"]
    assert np.allclose([noisy[d] for d in districts], counts + noise, rtol=0, atol=1e-9)
    smallest = int(counts.min())
    assert results["smallest_district"] == districts[counts.argmin()]
    for row in results["trade_off"]:
        theory = 1 / row["epsilon"]
        assert math.isclose(row["theory"], theory)
        assert math.isclose(row["mean_absolute_error"], theory, rel_tol=0.1), row
        assert math.isclose(row["relative_error_smallest"], theory / smallest, rel_tol=0.25), row


def solution(results: dict[str, Any], data_root: Path) -> None:
    answers = results["answers"]
    assert_full_marks(checks, answers, checks.reference(DEFAULTS, data_root))
    # and against this file's own counting, on the sample the template draws
    persons = checks.persons_of(DEFAULTS, data_root)
    columns = [persons[c].to_numpy() for c in checks.QUASI_IDENTIFIERS]
    assert answers["unique_records"] == int((class_sizes(columns) == 1).sum())
    generalised = [
        persons["province"].to_numpy(),
        persons["sex"].to_numpy(),
        persons["age"].to_numpy() // 10,
        persons["marital_status"].to_numpy(),
        persons["occupation"].map(checks.SKILL_GROUP).to_numpy(),
    ]
    assert answers["at_risk"] == int((class_sizes(generalised) < DEFAULTS["k_target"]).sum())
    districts, counts = np.unique(persons["district"].to_numpy(dtype=str), return_counts=True)
    noise = answers["noisy_counts"]
    errors = np.array([noise[d] for d in districts]) - counts
    assert 0.3 / DEFAULTS["epsilon"] < np.abs(errors).mean() < 3 / DEFAULTS["epsilon"]
    assert math.isclose(answers["epsilon_needed"], 10 / counts.min())


EXPECTED = {
    "01-k-anonymity.ipynb": k_anonymity,
    "02-laplace-mechanism.ipynb": laplace,
    "grader/solution.ipynb": solution,
    "exercise/privacy-certification.ipynb": template_scores_zero(checks, DEFAULTS),
}
