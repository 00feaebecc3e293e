"""Privacy sample: synthetic person-level census microdata with quasi-identifiers.

What the disclosure-control course relies on, and this module guarantees:

- people live in households (head, spouse, children, others) in 5 provinces and 30
  districts of very different sizes, so some combinations of district, sex, age, marital
  status and occupation are unique (k = 1) and need generalising or suppressing;
- income follows education, occupation, sex and age, log-normally, with zeros for those
  without work; ``chronic_condition`` is the sensitive attribute (for l-diversity);
- every record is synthetic: no real person is described.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from statbox.catalog.samples.common import Scale, rng_for, write_parquet

PROVINCES = ["North", "South", "East", "West", "Capital"]
OCCUPATIONS = [  # ISCO-08 major groups
    "Managers",
    "Professionals",
    "Technicians and associate professionals",
    "Clerical support workers",
    "Service and sales workers",
    "Skilled agricultural, forestry and fishery workers",
    "Craft and related trades workers",
    "Plant and machine operators and assemblers",
    "Elementary occupations",
    "Armed forces",
]
EDUCATION = ["none", "primary", "secondary", "tertiary"]
CONDITIONS = ["none", "hypertension", "diabetes", "asthma", "hiv", "other"]


def generate(out: Path, scale: Scale, seed: int) -> None:
    import pandas as pd

    rng = rng_for(seed, "privacy")
    districts = [
        (PROVINCES[i % 5], f"{PROVINCES[i % 5][:2].upper()}-{i // 5 + 1:02d}") for i in range(30)
    ]
    weights = rng.pareto(1.2, len(districts)) + 0.05
    weights /= weights.sum()
    people: dict[str, list] = {
        k: []
        for k in (
            "person_id",
            "household_id",
            "province",
            "district",
            "urban",
            "sex",
            "age",
            "relationship",
            "marital_status",
            "education",
            "occupation",
            "household_size",
            "income",
            "chronic_condition",
        )
    }
    household = 0
    while len(people["person_id"]) < scale.privacy_people:
        household += 1
        province, district = districts[int(rng.choice(len(districts), p=weights))]
        urban = bool(rng.uniform() < (0.8 if province == "Capital" else 0.2))
        size = int(min(12, 1 + rng.poisson(3.3)))
        head_age = int(np.clip(rng.normal(42, 13), 17, 95))
        members = [("head", head_age)]
        if size > 1 and rng.uniform() < 0.75:
            members.append(("spouse", int(np.clip(head_age + rng.normal(-3, 5), 16, 95))))
        while len(members) < size:
            if rng.uniform() < 0.85:
                members.append(("child", int(np.clip(rng.uniform(0, head_age - 16), 0, 60))))
            else:
                members.append(("other", int(rng.integers(0, 90))))
        for relationship, age in members:
            sex = "female" if (relationship == "spouse") ^ (rng.uniform() < 0.3) else "male"
            if relationship not in ("head", "spouse"):
                sex = str(rng.choice(["female", "male"]))
            schooling = rng.choice(4, p=[0.15, 0.45, 0.3, 0.1] if urban else [0.3, 0.5, 0.17, 0.03])
            education = EDUCATION[min(int(schooling), 0 if age < 7 else (1 if age < 13 else 3))]
            if relationship in ("head", "spouse"):
                marital = (
                    "married"
                    if relationship == "spouse" or (size > 1 and rng.uniform() < 0.7)
                    else str(
                        rng.choice(["never married", "divorced", "widowed"], p=[0.5, 0.25, 0.25])
                    )
                )
            elif age < 16:
                marital = "never married"
            else:
                marital = str(rng.choice(["never married", "married"], p=[0.8, 0.2]))
            working = 15 <= age < 70 and rng.uniform() < 0.7
            if working:
                level = EDUCATION.index(education)
                p = np.array(
                    [
                        1,
                        1 + 3 * level,
                        1 + 2 * level,
                        2,
                        5,
                        12 - 3 * level + (0 if urban else 8),
                        5,
                        3,
                        8,
                        0.2,
                    ]
                )
                occupation = OCCUPATIONS[int(rng.choice(10, p=p / p.sum()))]
                income = float(
                    np.round(
                        rng.lognormal(5.2 + 0.45 * level + (0.2 if sex == "male" else 0), 0.6), -1
                    )
                )
            else:
                occupation, income = "none", 0.0
            older = min(age, 80) / 80
            odds = np.array(
                [0.8 - 0.35 * older, 0.02 + 0.2 * older, 0.01 + 0.08 * older, 0.05, 0.03, 0.09]
            )
            condition = rng.choice(6, p=odds / odds.sum())
            people["person_id"].append(len(people["person_id"]) + 1)
            for key, value in (
                ("household_id", household),
                ("province", province),
                ("district", district),
                ("urban", urban),
                ("sex", sex),
                ("age", age),
                ("relationship", relationship),
                ("marital_status", marital),
                ("education", education),
                ("occupation", occupation),
                ("household_size", size),
                ("income", income),
                ("chronic_condition", CONDITIONS[int(condition)]),
            ):
                people[key].append(value)
    frame = pd.DataFrame(people).iloc[: scale.privacy_people]
    for column, dtype in (
        ("person_id", "int64"),
        ("household_id", "int64"),
        ("age", "int16"),
        ("household_size", "int8"),
        ("income", "float64"),
    ):
        frame[column] = frame[column].astype(dtype)
    write_parquet(frame, out / "privacy" / "microdata" / "microdata.parquet")
