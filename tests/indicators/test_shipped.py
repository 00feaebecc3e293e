"""The two shipped indicators (``indicators/``) give the courses' figures on the sample data.

Each notebook runs under plain ``papermill`` (the CLI, as an analyst would run it, no Statbox
runner) for every period of its backfill, against the checkout's sample data through the
catalog. The expected figures are computed here by the courses' own method functions
(``curriculum/ais-port-calls/portcalls.py``, ``curriculum/scanner-price-indices/grader/
checks.py``) over the course's whole period, so a change in either side's method shows here.
Every output also passes the core's series check (``check_output``) as a run would.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from statbox.classroom.people import Actor
from statbox.courses.run import _close_thread_event_loop as close_thread_event_loop
from statbox.indicators.library import Indicators
from statbox.indicators.periods import Period, between
from statbox.indicators.series import check_output
from statbox.indicators.spec import LoadedIndicator, load_indicators
from statbox.settings.model import load_settings
from tests.conftest import REPO

INDICATORS = REPO / "indicators"
CATALOG = REPO / "catalogs" / "statbox.yaml"
AIS_COURSE = REPO / "curriculum" / "ais-port-calls"
SCANNER_COURSE = REPO / "curriculum" / "scanner-price-indices"
AIS_COURSE_PERIOD = ("2024-03-04", "2024-03-31")  # lesson 2's default `period`
NO_AIS_DATA = "2024-W20"  # after the sample's last report
NO_SCANNER_DATA = "2024-03"  # after the sample's last week
AT_ONCE = 3
"""Notebooks run at once: a kernel's start waits on I/O as much as on CPU."""


def module_from(path: Path) -> ModuleType:
    """A course's method module, by its file (courses are folders, not packages)."""
    spec = importlib.util.spec_from_file_location(f"course_{path.parent.name}_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Run:
    error: str | None  # papermill's, when the notebook failed
    output: bytes | None


def run_papermill(loaded: LoadedIndicator, period: Period, work: Path) -> Run:
    """Plain papermill, as an analyst would call it (its API: a CLI process per run costs
    the test ~2 s of CPU each to import papermill again)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    work.mkdir(parents=True)
    output = work / "series.csv"
    parameters = {**loaded.parameters(period), "output": str(output)}
    error = None
    try:
        papermill.execute_notebook(
            str(loaded.notebook),
            str(work / "executed.ipynb"),
            parameters=parameters,
            kernel_name="python3",
            progress_bar=False,
            log_output=False,
            execution_timeout=300,
        )
    except PapermillExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}"
    finally:
        close_thread_event_loop()  # nbclient's loop in this worker thread
    return Run(error, output.read_bytes() if output.exists() else None)


@pytest.fixture(scope="module")
def data_env(repo_samples: Path) -> Iterator[None]:
    """The kernels' environment (they inherit this process's), as a user's server has it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STATBOX_CATALOG", str(CATALOG))
        patch.setenv("STATBOX_DATA_ROOT", str(repo_samples))
        yield


@pytest.fixture(scope="module")
def shipped() -> dict[str, LoadedIndicator]:
    return load_indicators(INDICATORS)


def backfill(loaded: LoadedIndicator) -> list[Period]:
    declared = loaded.spec.period
    assert declared.backfill is not None, f"{loaded.id} declares no backfill"
    return between(declared.backfill.first, declared.backfill.last, declared.frequency)


@pytest.fixture(scope="module")
def runs(shipped, data_env, tmp_path_factory) -> dict[tuple[str, str], Run]:
    """Every backfill period of both indicators, and one period without data each."""
    jobs = [(loaded, period) for loaded in shipped.values() for period in backfill(loaded)]
    jobs.append((shipped["ais-port-calls"], Period.parse(NO_AIS_DATA, "weekly")))
    jobs.append((shipped["food-price-index"], Period.parse(NO_SCANNER_DATA, "monthly")))
    root = tmp_path_factory.mktemp("papermill")

    def one(job: tuple[LoadedIndicator, Period]) -> Run:
        loaded, period = job
        return run_papermill(loaded, period, root / loaded.id / period.label)

    with ThreadPoolExecutor(AT_ONCE) as pool:
        done = list(pool.map(one, jobs))
    return {
        (loaded.id, period.label): run for (loaded, period), run in zip(jobs, done, strict=True)
    }


def observations(run: Run, loaded: LoadedIndicator, period: str) -> pd.DataFrame:
    """The run's output, checked as the runner checks it, as a frame."""
    assert run.error is None, f"{loaded.id} {period}: the notebook failed: {run.error}"
    assert run.output is not None, f"{loaded.id} {period}: no {loaded.spec.series.output}"
    rows = check_output(run.output, loaded.spec.series, period)
    frame = pd.DataFrame(rows)
    frame["OBS_VALUE"] = frame["OBS_VALUE"].astype(float)
    return frame


def test_the_two_indicators_load_with_the_sample_period_as_backfill(shipped, repo_samples):
    assert sorted(shipped) == ["ais-port-calls", "food-price-index"]
    ais, food = shipped["ais-port-calls"], shipped["food-price-index"]
    assert (ais.spec.period.frequency, food.spec.period.frequency) == ("weekly", "monthly")
    days = [p.name.removeprefix("date=") for p in (repo_samples / "ais" / "positions").iterdir()]
    weeks = sorted(set(pd.to_datetime(pd.Series(days)).dt.strftime("%G-W%V")))
    assert [p.label for p in backfill(ais)] == weeks
    transactions = pd.read_parquet(repo_samples / "scanner" / "transactions", columns=["week"])
    thursdays = pd.to_datetime(transactions["week"]) + pd.Timedelta(days=3)
    assert [p.label for p in backfill(food)] == sorted(set(thursdays.dt.strftime("%Y-%m")))


def course_port_calls(repo_samples: Path) -> pd.DataFrame:
    """Lesson 2's weekly arrivals and gross tonnage per port, over the course's whole period,
    with lesson 1's ``detect_port_calls``: (week, port_id) -> PORT_CALLS, GROSS_TONNAGE."""
    import intake

    portcalls = module_from(AIS_COURSE / "portcalls.py")
    catalog = intake.from_yaml_file(str(CATALOG))
    first, last = AIS_COURSE_PERIOD
    positions = catalog["ais.positions"].read(filters=[("date", ">=", first), ("date", "<=", last)])
    ports = catalog["ais.ports"].read()
    ports = ports[ports["country"].isin(["KE", "TZ"])].reset_index(drop=True)
    vessels = catalog["ais.vessels"].read()
    calls = portcalls.detect_port_calls(positions, ports)
    calls = calls[portcalls.is_merchant(calls["ship_type"])]
    calls = calls.merge(vessels[["mmsi", "gross_tonnage"]], on="mmsi", how="left")
    first_report = calls["mmsi"].map(positions.groupby("mmsi")["timestamp"].min())
    arrivals = calls[calls["arrival"].ne(first_report)]
    weekly = arrivals.assign(week=arrivals["arrival"].dt.strftime("%G-W%V"))
    weekly = weekly.groupby(["week", "port_id"]).agg(
        PORT_CALLS=("mmsi", "size"), GROSS_TONNAGE=("gross_tonnage", "sum")
    )
    every = pd.MultiIndex.from_product([sorted(weekly.index.levels[0]), ports["port_id"]])
    return weekly.reindex(every, fill_value=0).astype(float)


def test_weekly_port_calls_are_the_course_figures_week_by_week(
    shipped, runs, data_env, repo_samples
):
    expected = course_port_calls(repo_samples)
    loaded = shipped["ais-port-calls"]
    for period in backfill(loaded):
        got = observations(runs[(loaded.id, period.label)], loaded, period.label)
        assert set(got["UNIT_MEASURE"] + "/" + got["INDICATOR"]) == {
            "NUMBER/PORT_CALLS",
            "GT/GROSS_TONNAGE",
        }
        assert set(got["OBS_STATUS"]) == {"A"} and set(got["FREQ"]) == {"W"}
        table = got.pivot(index="REF_AREA", columns="INDICATOR", values="OBS_VALUE")
        course = expected.loc[period.label][table.columns]
        pd.testing.assert_frame_equal(
            table.sort_index(), course.sort_index(), check_names=False, obj=period.label
        )
        assert course["PORT_CALLS"].sum() > 0, f"{period}: the course counts no call"


def test_a_week_without_reports_writes_zero_for_every_port(shipped, runs, data_env):
    import intake

    loaded = shipped["ais-port-calls"]
    got = observations(runs[(loaded.id, NO_AIS_DATA)], loaded, NO_AIS_DATA)
    ports = intake.from_yaml_file(str(CATALOG))["ais.ports"].read()
    region = sorted(ports.loc[ports["country"].isin(["KE", "TZ"]), "port_id"])
    assert sorted(got["REF_AREA"].unique()) == region
    assert len(got) == 2 * len(region) and set(got["OBS_VALUE"]) == {0.0}


def food_sales(repo_samples: Path) -> pd.DataFrame:
    """The sample's food sales, each week in its Thursday's month (``month``)."""
    transactions = pd.read_parquet(repo_samples / "scanner" / "transactions")
    products = pd.read_parquet(repo_samples / "scanner" / "products")
    thursday = (pd.to_datetime(transactions["week"]) + pd.Timedelta(days=3)).dt.strftime("%Y-%m")
    sales = transactions.assign(month=thursday).merge(products[["gtin", "coicop"]], on="gtin")
    return sales[sales["coicop"].str.startswith("01")]


def course_food_index(food: pd.DataFrame, month: str) -> dict[str, float]:
    """GEKS-Törnqvist of ``month`` against January 2023 = 100, with the course's
    ``geks_tornqvist`` over the window's monthly unit values, for all food and for each
    subclass: {COICOP code: index}."""
    checks = module_from(SCANNER_COURSE / "grader" / "checks.py")
    sales = food[food["month"].between("2023-01", month)]
    result = {}
    for code, group in [("01", sales), *sales.groupby("coicop")]:
        cells = group.groupby(["month", "gtin"])[["turnover", "quantity"]].sum()
        prices = (cells["turnover"] / cells["quantity"]).unstack()
        index = checks.geks_tornqvist(prices, cells["turnover"].unstack())
        result["CP" + code.replace(".", "")] = float(index[-1] * 100)
    return result


def test_monthly_food_index_is_the_course_geks_month_by_month(shipped, runs, repo_samples):
    loaded = shipped["food-price-index"]
    food = food_sales(repo_samples)
    changes = set()
    for period in backfill(loaded):
        got = observations(runs[(loaded.id, period.label)], loaded, period.label)
        assert set(got["REF_AREA"]) == {"RW"} and set(got["UNIT_MEASURE"]) == {"IX"}
        values = dict(zip(got["COICOP"], got["OBS_VALUE"], strict=True))
        expected = course_food_index(food, period.label)
        assert values.keys() == expected.keys()
        for code, value in expected.items():
            assert values[code] == pytest.approx(value, rel=1e-9), f"{period} {code}"
        changes.add(round(values["CP01"], 6))
    assert len(changes) == len(backfill(loaded)), "the index should move from month to month"
    first = observations(runs[(loaded.id, "2023-01")], loaded, "2023-01")
    assert set(first["OBS_VALUE"]) == {100.0}


def test_a_month_without_sales_fails_and_writes_nothing(shipped, runs):
    run = runs[("food-price-index", NO_SCANNER_DATA)]
    assert run.output is None
    assert (
        run.error
        == f"ValueError: no food sales in {NO_SCANNER_DATA}: the index of this month is unknown"
    )


@pytest.mark.usefixtures("sandbox")
def test_a_library_run_in_the_sandbox_publishes_what_papermill_wrote(
    shipped, runs, repo_samples, tmp_path
):
    """What ``make up`` backfills: each indicator run by the library in the grading sandbox
    (its own uid, no network, only its declared sources) gives plain papermill's figures."""
    tmp_path.chmod(0o755)
    owners = sorted({loaded.spec.owner for loaded in shipped.values()})
    config = tmp_path / "statbox.yaml"
    config.write_text(
        f"paths: {{indicators: {INDICATORS}, curriculum: {REPO / 'curriculum'}, "
        f"state_dir: {tmp_path / 'state'}, catalog: {CATALOG}, data_root: {repo_samples}}}\n"
        f"roles: {{analyst: {{users: [{', '.join(owners)}]}}}}\n"
        "indicators: {retries: 0}\n"
    )
    library = Indicators.from_settings(load_settings(config))
    try:
        for indicator_id, period in [
            ("ais-port-calls", "2024-W12"),
            ("food-price-index", "2023-12"),
        ]:
            loaded = shipped[indicator_id]
            record = library.run(Actor.user(loaded.spec.owner), indicator_id, period)
            assert record.outcome == "succeeded", f"{indicator_id} {period}: {record.error}"
            assert sorted(s.entry for s in record.sources) == sorted(loaded.spec.sources)
            published = library.observations(Actor.user("admin"), indicator_id)
            papermill = observations(runs[(indicator_id, period)], loaded, period)
            assert pd.DataFrame(published).astype({"OBS_VALUE": float}).equals(papermill)
    finally:
        library.close()
