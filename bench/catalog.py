"""Benchmark: reading through the Statbox catalog against reading the files directly.

Baselines, interleaved in one run on the same files:

- ``catalog["ais.positions"].read()`` (Statbox's loaded catalog, PandasParquet) against
  ``pd.read_parquet`` on the same directory of 1M rows;
- ``catalog.to_dask("ais.positions").compute()`` against ``dd.read_parquet(...).compute()``;
- in fresh interpreters: ``import statbox.catalog`` + ``open_catalog()`` of the root catalog
  against ``import intake`` + ``intake.from_yaml_file``; and the first opening of an entry
  (which checks the stored schema) against the later ones.

Prints medians and ratios (goal: <= 1.05x at 1M rows; import + open < 0.3 s).
Usage: ``python bench/catalog.py [--rows N] [--trials N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_positions(root: Path, rows: int) -> Path:
    """``rows`` AIS reports with the catalog's schema, in one date partition."""
    import numpy as np
    import pandas as pd

    from statbox.catalog.samples.common import write_parquet

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "mmsi": rng.integers(200_000_000, 800_000_000, rows),
            "timestamp": (
                pd.Timestamp("2024-03-04", tz="UTC")
                + pd.to_timedelta(np.sort(rng.uniform(0, 86_399, rows)), unit="s")
            ).astype("datetime64[ms, UTC]"),
            "lat": np.round(rng.uniform(-7.6, -1.6, rows), 6),
            "lon": np.round(rng.uniform(38.9, 42.0, rows), 6),
            "sog": np.round(rng.uniform(0, 20, rows), 1).astype("float32"),
            "cog": np.round(rng.uniform(0, 360, rows), 1).astype("float32"),
            "heading": rng.integers(0, 360, rows).astype("int16"),
            "nav_status": rng.choice([0, 1, 5], rows).astype("int8"),
            "ship_type": rng.choice([70, 80], rows).astype("int16"),
        }
    )
    write_parquet(frame, root / "ais" / "positions" / "date=2024-03-04" / "part-0.parquet")
    return root / "ais" / "positions"


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def in_fresh_python(code: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return float(out.stdout.strip().splitlines()[-1])


OPEN_STATBOX = """
import time; t = time.perf_counter()
import statbox.catalog
c = statbox.catalog.open_catalog({catalog!r}, data_root={root!r}, role="trainee", groups=[])
print(time.perf_counter() - t)
"""
OPEN_INTAKE = """
import time; t = time.perf_counter()
import intake
c = intake.from_yaml_file({catalog!r})
print(time.perf_counter() - t)
"""
FIRST_ACCESS = """
import time, statbox.catalog
c = statbox.catalog.load_catalog({catalog!r}, {root!r})
t = time.perf_counter(); c["ais.positions"]; first = time.perf_counter() - t
t = time.perf_counter(); c["ais.positions"]; print(first - (time.perf_counter() - t))
"""


def report(label: str, ours: list[float], base: list[float], base_label: str) -> dict:
    a, b = statistics.median(ours), statistics.median(base)
    print(f"{label:<44} {a:8.4f} s   {base_label:<30} {b:8.4f} s   ratio {a / b:5.2f}x")
    return {"label": label, "statbox": a, "baseline": b, "ratio": a / b}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--trials", type=int, default=9)
    args = parser.parse_args()

    import dask.dataframe as dd
    import pandas as pd

    from statbox.catalog import load_catalog

    catalog_file = str(REPO / "catalogs" / "ais.yaml")
    with tempfile.TemporaryDirectory(prefix="statbox-bench-") as tmp:
        root = Path(tmp)
        path = make_positions(root, args.rows)
        catalog = load_catalog(catalog_file, root)
        catalog["ais.positions"].read()  # warm the page cache and the first-access check
        cases = {
            "pandas: catalog": lambda: catalog["ais.positions"].read(),
            "pandas: pd.read_parquet": lambda: pd.read_parquet(path),
            "dask: catalog.to_dask": lambda: catalog.to_dask("ais.positions").compute(),
            "dask: dd.read_parquet": lambda: dd.read_parquet(path).compute(),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for trial in range(args.trials):
            order = list(cases) if trial % 2 == 0 else list(reversed(cases))
            for name in order:
                times[name].append(timed(cases[name]))
        opens: dict[str, list[float]] = {"statbox": [], "intake": [], "first": []}
        root_catalog = str(REPO / "catalogs" / "statbox.yaml")
        for _ in range(max(5, args.trials // 2)):
            opens["statbox"].append(
                in_fresh_python(OPEN_STATBOX.format(catalog=root_catalog, root=tmp))
            )
            opens["intake"].append(in_fresh_python(OPEN_INTAKE.format(catalog=root_catalog)))
            opens["first"].append(
                in_fresh_python(FIRST_ACCESS.format(catalog=catalog_file, root=tmp))
            )

    print(f"{args.rows:,} rows, {args.trials} interleaved trials, medians:")
    results = [
        report(
            "catalog['ais.positions'].read()",
            times["pandas: catalog"],
            times["pandas: pd.read_parquet"],
            "pd.read_parquet",
        ),
        report(
            "catalog.to_dask('ais.positions').compute()",
            times["dask: catalog.to_dask"],
            times["dask: dd.read_parquet"],
            "dd.read_parquet().compute()",
        ),
        report(
            "import statbox.catalog + open_catalog()",
            opens["statbox"],
            opens["intake"],
            "import intake + from_yaml_file",
        ),
    ]
    first = statistics.median(opens["first"])
    print(f"first opening of an entry (stored-schema check): +{first * 1000:.1f} ms")
    print(json.dumps({"rows": args.rows, "results": results, "first_access_s": first}))


if __name__ == "__main__":
    main()
