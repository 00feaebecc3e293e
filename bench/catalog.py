"""Benchmark: reading through the Statbox catalog against reading the files directly.

Baselines, interleaved in one run on the same files:

- ``catalog["ais.positions"].read()`` (Statbox's loaded catalog, PandasParquet) against
  ``pd.read_parquet`` on the same directory of 1M rows;
- ``catalog.to_dask("ais.positions").compute()`` against ``dd.read_parquet(...).compute()``;
- in fresh interpreters: ``import statbox.catalog`` + ``open_catalog()`` of the root catalog
  against ``import intake`` + ``intake.from_yaml_file``; and the first opening of an entry
  (which validates its metadata and checks the stored schema) against the later ones;
- every bad catalog in tests/fixtures/catalogs/invalid/, refused in a fresh interpreter by the
  library (import, ``load_catalog``, open each entry) and by the CLI (``statbox catalog
  validate FILE``, the whole process), against the same baseline (``import intake`` +
  ``from_yaml_file`` of the good root catalog; a whole process for the CLI). Each refusal is
  checked to be one (exit code 2, the file named with a line).

Prints medians and ratios (goals: <= 1.05x at 1M rows; import + open < 0.3 s; every bad
catalog refused in < 2 s), wall-clock and, for the fresh processes, CPU time (steadier on a
busy machine). Usage: ``python bench/catalog.py [--rows N] [--trials N] [--invalid-trials N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def in_fresh_python(code: str) -> tuple[float, float]:
    """(wall, CPU) seconds the code measured of itself in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def process_times(argv: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall, CPU) seconds of a whole process, from its start to its exit, and its result."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done


TIMED = "import time; _wall, _cpu = time.perf_counter(), time.process_time()\n{}\n"
REPORT = "print(time.perf_counter() - _wall, time.process_time() - _cpu)"
OPEN_STATBOX = (
    TIMED.format("""
import statbox.catalog
c = statbox.catalog.open_catalog({catalog!r}, data_root={root!r}, role="trainee", groups=[])
""")
    + REPORT
)
OPEN_INTAKE = (
    TIMED.format("""
import intake
c = intake.from_yaml_file({catalog!r})
""")
    + REPORT
)
REFUSE_STATBOX = (
    TIMED.format("""
from statbox.catalog import CatalogError, load_catalog
try:
    c = load_catalog({catalog!r}, {root!r})
    for name in c.info.entries:
        c[name]
    raise SystemExit("not refused")
except CatalogError as exc:
    if not any(p.source == {catalog!r} and p.line for p in exc.problems):
        raise SystemExit(f"no file and line in {{exc}}")
""")
    + REPORT
)
INVALID = REPO / "tests" / "fixtures" / "catalogs" / "invalid"
FIRST_ACCESS = """
import time, statbox.catalog
c = statbox.catalog.load_catalog({catalog!r}, {root!r})
t = time.perf_counter(); c["ais.positions"]; first = time.perf_counter() - t
t = time.perf_counter(); c["ais.positions"]; print(first - (time.perf_counter() - t), 0)
"""


def report(label: str, ours: list[float], base: list[float], base_label: str) -> dict:
    a, b = statistics.median(ours), statistics.median(base)
    print(f"{label:<44} {a:8.4f} s   {base_label:<30} {b:8.4f} s   ratio {a / b:5.2f}x")
    return {"label": label, "statbox": a, "baseline": b, "ratio": a / b}


Timed = tuple[float, float]
"""(wall, CPU) seconds."""


def report_timed(label: str, ours: list[Timed], base: list[Timed], base_label: str) -> list[dict]:
    """:func:`report` of wall-clock and of CPU times."""
    kinds = enumerate(("wall", "CPU "))
    return [
        report(f"{label} {k}", [t[i] for t in ours], [t[i] for t in base], f"{base_label} {k}")
        for i, k in kinds
    ]


def bench_reads(rows: int, trials: int, root: Path) -> list[dict]:
    """Reading 1M rows through the catalog against reading the files directly."""
    import dask.dataframe as dd
    import pandas as pd

    from statbox.catalog import load_catalog

    path = make_positions(root, rows)
    catalog = load_catalog(REPO / "catalogs" / "ais.yaml", root)
    catalog["ais.positions"].read()  # warm the page cache and the first-access check
    cases = {
        "pandas: catalog": lambda: catalog["ais.positions"].read(),
        "pandas: pd.read_parquet": lambda: pd.read_parquet(path),
        "dask: catalog.to_dask": lambda: catalog.to_dask("ais.positions").compute(),
        "dask: dd.read_parquet": lambda: dd.read_parquet(path).compute(),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for trial in range(trials):
        order = list(cases) if trial % 2 == 0 else list(reversed(cases))
        for name in order:
            times[name].append(timed(cases[name]))
    print(f"{rows:,} rows, {trials} interleaved trials, medians:")
    return [
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
    ]


def bench_open(trials: int, root: Path) -> tuple[list[dict], float]:
    """Importing and opening the root catalog in fresh interpreters, interleaved."""
    root_catalog = str(REPO / "catalogs" / "statbox.yaml")
    if not (root / "ais" / "positions").exists():
        make_positions(root, 10_000)  # the first opening checks stored data
    runs: dict[str, list[Timed]] = {"statbox": [], "intake": [], "first": []}
    for _ in range(trials):
        runs["statbox"].append(
            in_fresh_python(OPEN_STATBOX.format(catalog=root_catalog, root=str(root)))
        )
        runs["intake"].append(in_fresh_python(OPEN_INTAKE.format(catalog=root_catalog)))
        runs["first"].append(
            in_fresh_python(
                FIRST_ACCESS.format(catalog=str(REPO / "catalogs" / "ais.yaml"), root=str(root))
            )
        )
    print(f"fresh interpreters, {trials} interleaved trials, medians:")
    results = report_timed(
        "import statbox.catalog + open_catalog()",
        runs["statbox"],
        runs["intake"],
        "import intake + from_yaml_file",
    )
    first = statistics.median(run[0] for run in runs["first"])
    print(f"first opening of an entry (metadata and stored-schema check): +{first * 1000:.1f} ms")
    return results, first


def bench_invalid(trials: int, root: Path) -> dict:
    """Every bad catalog refused by the library and by the CLI, in fresh processes."""
    from statbox.catalog.samples import generate

    generate(root, "small", progress=False)  # the data the fixtures' good parts point at
    # What the `statbox` script runs, importing this checkout's package.
    cli = [sys.executable, "-c", "import sys; from statbox.cli import main; sys.exit(main())"]
    good = str(REPO / "catalogs" / "statbox.yaml")
    base_code = OPEN_INTAKE.format(catalog=good)
    fixtures = sorted(INVALID.glob("*.yaml"))
    kinds = ("library", "cli", "base", "base_process")
    runs: dict[str, dict[str, list[Timed]]] = {f.stem: {k: [] for k in kinds} for f in fixtures}
    for fixture in fixtures:
        mine = runs[fixture.stem]
        for _ in range(trials):  # interleaved, so load drifts hit all alike
            code = REFUSE_STATBOX.format(catalog=str(fixture), root=str(root))
            mine["library"].append(in_fresh_python(code))
            wall, cpu, done = process_times(
                [*cli, "catalog", "validate", str(fixture), "--data-root", str(root)]
            )
            if done.returncode != 2 or f"{fixture}:" not in done.stderr:
                raise SystemExit(f"{fixture.name}: not refused as bad input: {done.stderr}")
            mine["cli"].append((wall, cpu))
            mine["base"].append(in_fresh_python(base_code))
            wall, cpu, _ = process_times([sys.executable, "-c", base_code])
            mine["base_process"].append((wall, cpu))

    def med(timed: list[Timed], index: int = 0) -> float:
        return statistics.median(run[index] for run in timed)

    print(
        f"bad catalogs refused, fresh processes, {trials} interleaved trials, medians "
        "(wall / CPU s; goal < 2 s wall each):"
    )
    print(f"{'fixture':<22} {'library':>15} {'CLI (process)':>15}")
    for name, mine in runs.items():
        lib, cmd = mine["library"], mine["cli"]
        print(f"{name:<22} {med(lib):7.3f}/{med(lib, 1):5.3f} {med(cmd):9.3f}/{med(cmd, 1):5.3f}")
    every = {k: [run for mine in runs.values() for run in mine[k]] for k in kinds}
    worst_lib = max(med(mine["library"]) for mine in runs.values())
    worst_cli = max(med(mine["cli"]) for mine in runs.values())
    results = report_timed(
        "refusing a bad catalog, library",
        every["library"],
        every["base"],
        "import intake + from_yaml_file",
    ) + report_timed(
        "statbox catalog validate BAD (process)",
        every["cli"],
        every["base_process"],
        "python -c 'intake...' (process)",
    )
    print(
        f"slowest fixture (median wall): library {worst_lib:.3f} s, CLI {worst_cli:.3f} s "
        f"(goal < 2 s: {'met' if max(worst_lib, worst_cli) < 2 else 'MISSED'})"
    )
    return {
        "results": results,
        "slowest_library_s": worst_lib,
        "slowest_cli_s": worst_cli,
        "fixtures": {
            name: {"library_s": med(mine["library"]), "cli_s": med(mine["cli"])}
            for name, mine in runs.items()
        },
    }


PARTS = ("reads", "open", "invalid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--trials", type=int, default=9)
    parser.add_argument("--invalid-trials", type=int, default=3)
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}"
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    summary: dict = {"rows": args.rows, "cpus": os.cpu_count(), "load": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="statbox-bench-") as tmp:
        root = Path(tmp)
        if "reads" in parts:
            summary["reads"] = bench_reads(args.rows, args.trials, root / "reads")
        if "open" in parts:
            summary["open"], summary["first_access_s"] = bench_open(
                max(5, args.trials // 2), root / "reads"
            )
        if "invalid" in parts:
            summary["invalid"] = bench_invalid(args.invalid_trials, root / "samples")
    print(f"load average at start: {summary['load']:.1f} on {summary['cpus']} CPUs")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
