"""SDG indicator series sample: a tidy table shaped like the UN Global SDG Database's export.

Real indicator and series codes, descriptions and units; synthetic values that follow
plausible country trajectories (logistic trends with noise), with the gaps real series have
(not every country reports every year), and the database's "nature" codes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from statbox.catalog.samples.common import Scale, rng_for

# goal, target, indicator, series, description, unit, low, high, rising, source
SERIES = [
    (
        1,
        "1.1",
        "1.1.1",
        "SI_POV_DAY1",
        "Proportion of population below international poverty line (%)",
        "PERCENT",
        2,
        75,
        False,
        "World Bank, Poverty and Inequality Platform",
    ),
    (
        2,
        "2.1",
        "2.1.1",
        "SN_ITK_DEFC",
        "Prevalence of undernourishment (%)",
        "PERCENT",
        2,
        45,
        False,
        "FAO",
    ),
    (
        3,
        "3.2",
        "3.2.1",
        "SH_DYN_MORT",
        "Under-five mortality rate (deaths per 1,000 live births)",
        "PER_1000_LIVE_BIRTHS",
        5,
        180,
        False,
        "UN Inter-agency Group for Child Mortality Estimation",
    ),
    (
        6,
        "6.1",
        "6.1.1",
        "SH_H2O_SAFE",
        "Proportion of population using safely managed drinking water services (%)",
        "PERCENT",
        5,
        99,
        True,
        "WHO/UNICEF Joint Monitoring Programme",
    ),
    (
        7,
        "7.1",
        "7.1.1",
        "EG_ELC_ACCS",
        "Proportion of population with access to electricity (%)",
        "PERCENT",
        5,
        100,
        True,
        "World Bank, Sustainable Energy for All",
    ),
    (
        9,
        "9.1",
        "9.1.1",
        "SP_ROD_R2KM",
        "Proportion of the rural population who live within 2 km of an all-season road (%)",
        "PERCENT",
        20,
        98,
        True,
        "World Bank, Rural Access Index",
    ),
    (
        9,
        "9.c",
        "9.c.1",
        "IT_MOB_4GNTWK",
        "Proportion of population covered by at least a 4G mobile network (%)",
        "PERCENT",
        0,
        100,
        True,
        "ITU",
    ),
    (
        17,
        "17.8",
        "17.8.1",
        "IT_USE_ii99",
        "Internet users per 100 inhabitants",
        "PER_100_POP",
        0,
        95,
        True,
        "ITU",
    ),
]
COUNTRIES = [
    (646, "RWA", "Rwanda"),
    (404, "KEN", "Kenya"),
    (834, "TZA", "United Republic of Tanzania"),
    (800, "UGA", "Uganda"),
    (108, "BDI", "Burundi"),
    (231, "ETH", "Ethiopia"),
    (566, "NGA", "Nigeria"),
    (288, "GHA", "Ghana"),
    (686, "SEN", "Senegal"),
    (710, "ZAF", "South Africa"),
    (818, "EGY", "Egypt"),
    (504, "MAR", "Morocco"),
    (76, "BRA", "Brazil"),
    (170, "COL", "Colombia"),
    (484, "MEX", "Mexico"),
    (356, "IND", "India"),
    (360, "IDN", "Indonesia"),
    (50, "BGD", "Bangladesh"),
    (704, "VNM", "Viet Nam"),
    (524, "NPL", "Nepal"),
    (608, "PHL", "Philippines"),
    (528, "NLD", "Netherlands"),
]
YEARS = range(2000, 2024)


def generate(out: Path, scale: Scale, seed: int) -> None:
    import pandas as pd

    rng = rng_for(seed, "sdg")
    development = {iso: rng.uniform(0, 1) for _, iso, _ in COUNTRIES}
    development["NLD"] = 1.0
    rows = []
    for goal, target, indicator, series, description, unit, low, high, rising, source in SERIES:
        first_year = 2010 if series == "IT_MOB_4GNTWK" else 2000
        for m49, iso, name in COUNTRIES:
            level = development[iso]
            midpoint = 2028 - 30 * level + rng.normal(0, 4)
            speed = rng.uniform(0.12, 0.3)
            reporting = rng.uniform(0.45, 0.95)
            for year in YEARS:
                if year < first_year or rng.uniform() > reporting:
                    continue
                share = 1 / (1 + np.exp(-speed * (year - midpoint)))
                share = share if rising else 1 - share
                value = low + (high - low) * share * rng.normal(1, 0.03)
                value = float(np.clip(value, 0, 100 if unit == "PERCENT" else None))
                nature = "C" if rng.uniform() < 0.6 else ("E" if rng.uniform() < 0.7 else "M")
                rows.append(
                    (
                        goal,
                        target,
                        indicator,
                        series,
                        description,
                        m49,
                        iso,
                        name,
                        year,
                        round(value, 2),
                        unit,
                        nature,
                        f"{source} (synthetic sample)",
                    )
                )
    columns = [
        "goal",
        "target",
        "indicator",
        "series",
        "series_description",
        "geo_area_code",
        "country",
        "country_name",
        "year",
        "value",
        "unit",
        "nature",
        "source",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    path = out / "sdg" / "indicators" / "indicators.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")
