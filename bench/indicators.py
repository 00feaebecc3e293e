"""Indicator runs: a library run (``Indicators.run``) against a bare ``papermill`` call of the
same notebook, and a backfill on ``--workers N`` against one period after another, same run.

    python bench/indicators.py [--repeat 5] [--periods 52] [--workers 2] [--isolation sandbox]

The notebook is the shipped ``ais-port-calls`` indicator on the checkout's sample data
(``data/``, made by ``statbox catalog samples`` when missing). The baseline of a run is what an
analyst does without Statbox: one ``papermill`` process with the week's parameters and the
catalog in the environment. A library run adds what makes it a published run: the sandbox
(as root), the data digests, the checks of the output, the vintage and the run record.
The backfill runs ``--periods`` ISO weeks from 2024-W10 (the sample's four weeks, then weeks
without reports, whose rows are zeros: kernels, imports and reads cost the same).

Both sides of each ratio run in the same process, interleaved (overhead) or library-first
and again last (backfill), so a change in the machine's load weighs on both sides alike.
Timings depend on the machine: read the ratios, measured in one run. ``--profile`` prints
where a library run's time goes (cProfile of the calling thread, cumulative).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from statbox.classroom.people import Actor  # noqa: E402
from statbox.indicators.library import Indicators  # noqa: E402
from statbox.indicators.periods import Period  # noqa: E402
from statbox.indicators.spec import load_indicator  # noqa: E402
from statbox.settings.model import load_settings  # noqa: E402

INDICATOR = "ais-port-calls"
FIRST_WEEK = "2024-W10"
WEEK = "2024-W12"  # a week of the sample, with calls at every port
CATALOG = REPO / "catalogs" / "statbox.yaml"
BIN = Path(sys.executable).parent


def sample_data() -> Path:
    from statbox.catalog.samples import generate, is_current

    data = REPO / "data"
    if not is_current(data, "small"):
        generate(data, "small", progress=False)
    return data


def write_settings(root: Path, data_root: Path, isolation: str | None) -> Path:
    owner = load_indicator(REPO / "indicators" / INDICATOR).spec.owner
    config = root / "statbox.yaml"
    certify = f"certify: {{isolation: {isolation}}}\n" if isolation else ""
    config.write_text(
        f"paths: {{indicators: {REPO / 'indicators'}, curriculum: {REPO / 'curriculum'}, "
        f"state_dir: {root / 'state'}, catalog: {CATALOG}, data_root: {data_root}}}\n"
        f"roles: {{analyst: {{users: [{owner}]}}}}\n"
        "indicators: {retries: 0}\n" + certify
    )
    return config


def bare_papermill(period: Period, work: Path, data_root: Path) -> float:
    """Seconds of one ``papermill`` CLI process running the notebook for ``period``."""
    loaded = load_indicator(REPO / "indicators" / INDICATOR)
    work.mkdir(parents=True, exist_ok=True)
    command = [str(BIN / "papermill"), str(loaded.notebook), str(work / "executed.ipynb")]
    command += ["-k", "python3", "--no-progress-bar", "--log-level", "ERROR"]
    for name, value in {**loaded.parameters(period), "output": str(work / "series.csv")}.items():
        command += ["-p", name, value]
    env = {**os.environ, "STATBOX_CATALOG": str(CATALOG), "STATBOX_DATA_ROOT": str(data_root)}
    started = time.monotonic()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.monotonic() - started


def papermill_api(period: Period, work: Path) -> float:
    """Seconds of ``papermill.execute_notebook`` in this process (the kernel inherits the
    catalog's environment): the CLI's baseline without its interpreter start and imports."""
    import papermill

    loaded = load_indicator(REPO / "indicators" / INDICATOR)
    work.mkdir(parents=True, exist_ok=True)
    parameters = {**loaded.parameters(period), "output": str(work / "series.csv")}
    started = time.monotonic()
    papermill.execute_notebook(
        str(loaded.notebook),
        str(work / "executed.ipynb"),
        parameters=parameters,
        kernel_name="python3",
        progress_bar=False,
    )
    return time.monotonic() - started


def library_run(library: Indicators, actor: Actor, period: str) -> float:
    started = time.monotonic()
    record = library.run(actor, INDICATOR, period)
    seconds = time.monotonic() - started
    if record.outcome != "succeeded":
        raise SystemExit(f"the library run of {period} failed: {record.error}")
    return seconds


def backfill(library: Indicators, actor: Actor, last: str, workers: int) -> float:
    started = time.monotonic()
    records = library.backfill(actor, INDICATOR, FIRST_WEEK, last, workers=workers)
    seconds = time.monotonic() - started
    failed = [r for r in records if r.outcome != "succeeded"]
    if failed:
        raise SystemExit(f"{len(failed)} backfill runs failed, first: {failed[0].error}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each side (overhead)")
    parser.add_argument("--periods", type=int, default=52, help="weeks in the backfill")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--isolation", help="certify isolation (default: the settings')")
    parser.add_argument("--profile", action="store_true", help="profile one library run")
    parser.add_argument("--skip-backfill", action="store_true")
    args = parser.parse_args()
    data_root = sample_data()
    root = Path(tempfile.mkdtemp(prefix="statbox-bench-indicators-"))
    root.chmod(0o755)
    config = write_settings(root, data_root, args.isolation)
    library = Indicators.from_settings(load_settings(config))
    actor = Actor.user(load_indicator(REPO / "indicators" / INDICATOR).spec.owner)
    try:
        period = Period.parse(WEEK, "weekly")
        library_run(library, actor, WEEK)  # warm: the sandbox backend, the data digests
        bare_papermill(period, root / "warm", data_root)
        os.environ.update(STATBOX_CATALOG=str(CATALOG), STATBOX_DATA_ROOT=str(data_root))
        papermill_api(period, root / "warm-api")
        bare, api, ours = [], [], []
        for index in range(args.repeat):  # interleaved: load changes weigh on all alike
            bare.append(bare_papermill(period, root / f"bare{index}", data_root))
            api.append(papermill_api(period, root / f"api{index}"))
            ours.append(library_run(library, actor, WEEK))
        b, a, o = statistics.median(bare), statistics.median(api), statistics.median(ours)
        print(f"{INDICATOR} {WEEK}, {args.repeat} runs each, interleaved, same machine, same run")
        print(f"  isolation: {library.runner.describe()}")
        print(f"  bare papermill CLI:  median {b:5.2f} s  (runs: {_list(bare)})")
        print(f"  papermill API:       median {a:5.2f} s  (runs: {_list(api)})")
        print(f"  Indicators.run:      median {o:5.2f} s  (runs: {_list(ours)})")
        print(f"  overhead: {o / b:.2f}x the bare papermill call (goal <= 1.2x)")
        print(f"            {o / a:.2f}x papermill's API in process (no CLI start)")
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(library.run, actor, INDICATOR, WEEK)
            stats = pstats.Stats(profile, stream=sys.stdout)
            stats.sort_stats("cumulative").print_stats(25)
        if args.skip_backfill:
            return 0
        last = Period.parse(FIRST_WEEK, "weekly")
        for _ in range(args.periods - 1):
            last = last.next()
        parallel = backfill(library, actor, last.label, args.workers)
        serial = backfill(library, actor, last.label, 1)
        again = backfill(library, actor, last.label, args.workers)
        mean = (parallel + again) / 2
        n = args.periods
        print(f"backfill of {n} weeks ({FIRST_WEEK} to {last.label}), {os.cpu_count()} cores")
        print(f"  one after another:  {serial:6.1f} s  ({serial / n:.2f} s a week)")
        print(
            f"  --workers {args.workers}:        {mean:6.1f} s  (mean of {parallel:.1f} s "
            f"before and {again:.1f} s after)"
        )
        print(f"  speed-up: {serial / mean:.2f}x one after another (goal >= 3x on 2 cores)")
        return 0
    finally:
        library.close()
        shutil.rmtree(root, ignore_errors=True)


def _list(values: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    sys.exit(main())
