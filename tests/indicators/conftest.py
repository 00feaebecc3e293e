"""Indicators tier: the library the CLI, the scheduler and the pages call, on real files, with
real kernels in the real grading sandbox (as root; without it the kernel tests skip on a
laptop and fail under ``CI=true``).

Fixtures:
- ``site`` (module): a settings file (analyst ``ana`` owns the test indicators; ``bea`` is in
  the promoters' group ``board``; everyone else is a trainee), the certify tier's shop data
  and catalog, a folder of test indicators (:data:`NOTEBOOKS`: one good notebook over the
  weekly prices, and notebooks that break the series or attack the runner), a state
  directory and an :class:`Indicators` over them. ``site.indicators`` is the library.
- ``notebook(body)``: an indicator notebook: a ``parameters`` cell (``week``, ``output``), then
  ``body``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from statbox.classroom.people import Actor
from statbox.indicators.library import Indicators
from statbox.settings.model import LoadedSettings, load_settings
from tests.certify.conftest import sandbox  # noqa: F401 (fixture)
from tests.certify.sampledata import CATALOG, write_sample_data

SETTINGS = """\
paths:
  curriculum: curriculum
  indicators: indicators
  state_dir: state
  catalog: {catalog}
  data_root: {data_root}
groups:
  board: [bea]
roles:
  analyst:
    users: [ana]
indicators:
  retries: 1
  retry_delay_seconds: 0
  promoters: [board]
"""

INDICATOR = """\
id: {id}
title: Weekly shop prices ({id})
description: The price each test shop charged in the week.
method: |
  The price of each shop in the ISO week, from the weekly prices file.
owner: ana
stage: {stage}
notebook: indicator.ipynb
sources: [scanner.shop_prices]
schedule:
  cron: "0 6 * * 1"
  timezone: Europe/London
period:
  frequency: weekly
  parameters:
    week: label
  backfill: {{first: 2026-W01, last: 2026-W03}}
series:
  output: series.csv
  dimensions:
    FREQ: {{codes: [W]}}
    REF_AREA: {{}}
    INDICATOR: {{codes: [PRICE]}}
  measure: OBS_VALUE
  attributes:
    UNIT_MEASURE: {{codes: [EUR]}}
    OBS_STATUS: {{codes: [A, P, E]}}
"""

READ_PRICES = """\
import csv, os
number = int(week.split("-W")[1])
path = os.path.join(os.environ["STATBOX_DATA_ROOT"], "scanner", "shop_prices", "prices.csv")
with open(path) as handle:
    prices = [r for r in csv.DictReader(handle) if int(r["week"]) == number]
assert prices, f"no prices for week {number}"
"""

WRITE = """\
header = ["FREQ", "REF_AREA", "INDICATOR", "TIME_PERIOD", "OBS_VALUE", "UNIT_MEASURE",
          "OBS_STATUS"]
with open(output, "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(header)
    for r in prices:
        writer.writerow(["W", r["shop"], "PRICE", week, float(r["price"]), "EUR", "A"])
"""

NOTEBOOKS = {
    "shop-weekly": ("pilot", READ_PRICES + WRITE),
    "shop-poc": ("poc", READ_PRICES + WRITE),
    "shop-wrong-column": ("pilot", READ_PRICES + WRITE.replace('"OBS_STATUS"]', '"STATUS"]')),
    "shop-other-period": (
        "pilot",
        READ_PRICES + WRITE.replace(", week, float", ', "2020-W01", float'),
    ),
    "shop-link": ("pilot", "import os\nos.symlink('/etc/shadow', output)\n"),
    "shop-huge": (
        "pilot",
        # as large as the sandbox lets it (2 GiB, else until the file size cap or the full folder)
        "try:\n"
        "    with open(output, 'wb') as f:\n"
        "        f.truncate(2 * 1024**3)\n"
        "except OSError:\n"
        "    with open(output, 'wb') as f:\n"
        "        try:\n"
        "            while True:\n"
        "                f.write(b'x' * 1024**2)\n"
        "        except OSError:\n"
        "            pass\n",
    ),
}


def notebook(body: str) -> str:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    parameters = nbformat.v4.new_code_cell('week = "2026-W01"\noutput = "series.csv"\n')
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(body)]
    return nbformat.writes(nb)


def write_indicator(root: Path, indicator_id: str, stage: str, body: str) -> Path:
    folder = root / indicator_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "indicator.yaml").write_text(INDICATOR.format(id=indicator_id, stage=stage))
    (folder / "indicator.ipynb").write_text(notebook(body))
    return folder


@dataclass
class Site:
    root: Path
    data_root: Path
    loaded: LoadedSettings
    indicators: Indicators

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def prices(self) -> Path:
        return self.data_root / "scanner" / "shop_prices" / "prices.csv"


ANA = Actor.user("ana")
"""The test indicators' owner (an analyst)."""
BEA = Actor.user("bea")
"""A member of the promoters' group ``board`` (a trainee by role)."""
TRAINEE = Actor.user("tom")
ADMIN = Actor.user("admin")


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    root = Path(tempfile.mkdtemp(prefix="statbox-indicators-"))
    root.chmod(0o755)
    data_root = root / "data"
    write_sample_data(data_root)
    for path in [data_root, *data_root.rglob("*")]:  # the catalog's data: readable by all
        path.chmod(0o755 if path.is_dir() else 0o644)
    for indicator_id, (stage, body) in NOTEBOOKS.items():
        write_indicator(root / "indicators", indicator_id, stage, body)
    (root / "curriculum").mkdir()
    (root / "statbox.yaml").write_text(SETTINGS.format(catalog=CATALOG, data_root=data_root))
    loaded = load_settings(root / "statbox.yaml")
    indicators = Indicators.from_settings(loaded)
    try:
        yield Site(root, data_root, loaded, indicators)
    finally:
        indicators.close()
        shutil.rmtree(root, ignore_errors=True)
