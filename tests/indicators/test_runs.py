"""Runs with real kernels in the real grading sandbox: vintages, revisions, retries, the
series schema, and the attacks a notebook can make on the runner and the host."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from statbox.indicators.library import Indicators
from statbox.indicators.runner import Runner
from statbox.indicators.store import IndicatorStore
from tests.indicators.conftest import ANA, READ_PRICES, WRITE, Site, write_indicator

pytestmark = [pytest.mark.certify, pytest.mark.usefixtures("sandbox")]


@contextlib.contextmanager
def changed(path: Path, text: str) -> Iterator[None]:
    """``path`` holds ``text`` for the block, then what it held before."""
    before = path.read_bytes()
    path.write_text(text)
    try:
        yield
    finally:
        path.write_bytes(before)


def store(site: Site, indicator_id: str) -> IndicatorStore:
    return IndicatorStore(site.state, indicator_id)


def test_backfill_gives_a_vintage_per_period_and_a_rerun_a_revision(site: Site) -> None:
    library = site.indicators
    records = library.backfill(ANA, "shop-weekly", "2026-W01", "2026-W03", workers=2)
    assert [(r.period, r.outcome, r.vintage) for r in records] == [
        ("2026-W01", "succeeded", 1),
        ("2026-W02", "succeeded", 1),
        ("2026-W03", "succeeded", 1),
    ]
    first = records[1]
    notebook = site.root / "indicators" / "shop-weekly" / "indicator.ipynb"
    assert first.code_sha256 == hashlib.sha256(notebook.read_bytes()).hexdigest()
    assert first.parameters == {"week": "2026-W02"} and first.trigger == "backfill"
    assert first.attempts == 1 and first.requested_by == "ana"
    [source] = first.sources
    assert source.entry == "scanner.shop_prices"
    digest = hashlib.sha256(site.prices.read_bytes()).hexdigest()
    assert source.files == {"scanner/shop_prices/prices.csv": digest}
    executed = json.loads(
        (store(site, "shop-weekly").run_dir(first.run_id) / "executed.ipynb").read_text()
    )
    assert "injected-parameters" in executed["cells"][1]["metadata"]["tags"]
    assert library.revisions(ANA, "shop-weekly") == []

    # The data of week 2 is revised: a re-run makes vintage 2 and shows the revision.
    lines = site.prices.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("S0,2,"))
    old = float(lines[index].split(",")[2])
    lines[index] = f"S0,2,{old + 10:.2f}"
    with changed(site.prices, "\n".join(lines) + "\n"):
        rerun = library.run(ANA, "shop-weekly", "2026-W02")
    assert (rerun.outcome, rerun.vintage, rerun.trigger) == ("succeeded", 2, "manual")
    assert rerun.sources[0].files != source.files  # the data version read is recorded
    [revision] = library.revisions(ANA, "shop-weekly")
    assert revision.period == "2026-W02" and revision.key["REF_AREA"] == "S0"
    assert (revision.from_vintage, revision.to_vintage) == (1, 2)
    assert (revision.old, revision.new) == (old, round(old + 10, 2))
    latest = library.observations(ANA, "shop-weekly")
    assert len(latest) == 3 * 7
    s0 = next(r for r in latest if r["TIME_PERIOD"] == "2026-W02" and r["REF_AREA"] == "S0")
    assert float(s0["OBS_VALUE"]) == round(old + 10, 2)
    first_published = library.observations(ANA, "shop-weekly", vintage="first")
    assert s0 not in first_published
    runs = library.runs(ANA, "shop-weekly")
    assert runs[0].run_id == rerun.run_id and len(runs) == 4


def test_corrupted_input_fails_after_retries_and_publishes_nothing(site: Site) -> None:
    with changed(site.prices, "\x00\x01 not, a price\nfile\n"):
        record = site.indicators.run(ANA, "shop-weekly", "2026-W05")
    retries = site.loaded.settings.indicators.retries
    assert record.outcome == "failed" and record.attempts == 1 + retries
    assert record.vintage is None and "raised" in (record.error or "")
    assert store(site, "shop-weekly").vintages("2026-W05") == []
    assert record.run_id in [r.run_id for r in site.indicators.runs(ANA, "shop-weekly")]


@pytest.mark.parametrize(
    "indicator_id, reason",
    [
        ("shop-wrong-column", "missing OBS_STATUS; unexpected STATUS"),
        ("shop-other-period", "TIME_PERIOD '2020-W01' is not the run's period 2026-W02"),
        # what the notebook leaves at `output` is opened without following links, and only a
        # regular file under the size cap is read
        ("shop-link", "series.csv is not a regular file"),
        ("shop-huge", "series.csv is larger than 16 MiB"),
    ],
)
def test_output_breaking_the_series_fails_with_the_reason(
    site: Site, indicator_id: str, reason: str
) -> None:
    record = site.indicators.run(ANA, indicator_id, "2026-W02")
    assert record.outcome == "failed" and reason in (record.error or ""), record.error
    assert store(site, indicator_id).periods() == []
    assert not (store(site, indicator_id).run_dir(record.run_id) / "series.csv").exists()


ATTACK = """\
import os, socket
found = []
for path in {paths!r}:
    try:
        if os.path.isdir(path):
            found.append((path, os.listdir(path)))
        else:
            with open(path, "rb") as handle:
                found.append((path, handle.read(40)))
    except OSError:
        pass
try:
    with open({prices!r}, "a") as handle:
        handle.write("S9,1,1.0\\n")
    found.append("wrote to the data")
except OSError:
    pass
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    found.append("reached the host's loopback")
except OSError:
    pass
try:
    socket.create_connection(("1.1.1.1", 53), timeout=3).close()
    found.append("reached the internet")
except OSError:
    pass
assert not found, found
"""


def test_a_run_reads_no_secret_no_other_state_and_reaches_no_network(site: Site) -> None:
    """The notebook looks for what it must never get; found, the run fails with the list.
    Every file is world-readable: only the sandbox's allow-list keeps them out."""
    secrets = site.state / "secrets" / "hub.key"
    other = store(site, "other").root / "vintages" / "2026-W01" / "1.csv"
    for path, text in ((secrets, "hub-secret\n"), (other, "private,vintage\n")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)
    for directory in (site.state, secrets.parent, *other.parents):
        if site.state in (directory, *directory.parents):
            directory.chmod(0o755)
    margins = site.data_root / "scanner" / "shop_margins" / "margins.csv"
    paths = [str(secrets), str(other.parent), str(margins), str(site.root / "statbox.yaml")]
    paths += [str(site.state / "indicators"), "/etc/shadow", str(Path.cwd() / ".git")]
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        body = ATTACK.format(paths=paths, prices=str(site.prices), port=listener.getsockname()[1])
        write_indicator(
            site.root / "indicators", "shop-attack", "pilot", body + READ_PRICES + WRITE
        )
        record = site.indicators.run(ANA, "shop-attack", "2026-W02")
        assert record.outcome == "succeeded", record.error

        with open(site.prices) as handle:
            assert all(row["shop"] != "S9" for row in csv.DictReader(handle))

        # The same notebook without the sandbox finds them: the attack is real.
        runner = site.indicators.runner
        unsandboxed = Runner(
            "rlimits", runner.limits, data_root=site.data_root, catalog=runner.catalog
        )
        bare = Indicators(
            site.loaded.settings, site.root / "indicators", site.root / "bare", unsandboxed
        )
        try:
            with changed(site.prices, site.prices.read_text()):  # it appends to the data
                leaked = bare.run(ANA, "shop-attack", "2026-W02")
        finally:
            bare.close()
        assert leaked.outcome == "failed" and "hub-secret" in (leaked.error or "")
    finally:
        listener.close()


LINGER = """\
import os, subprocess, sys
# a run must not inherit anything from an earlier one: files in /tmp, processes
assert not os.path.exists("/tmp/planted"), "a file planted by an earlier run is here"
with open("/tmp/planted", "w") as handle:
    handle.write("for the next run")
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", {marker!r}],
                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""


def test_a_run_leaves_nothing_behind_for_the_next(site: Site) -> None:
    """A detached process and a planted file do not outlive the run that made them."""
    marker = f"statbox-linger-{os.getpid()}"
    body = LINGER.format(marker=marker) + READ_PRICES + WRITE
    write_indicator(site.root / "indicators", "shop-linger", "pilot", body)
    try:
        for week in ("2026-W01", "2026-W02"):
            record = site.indicators.run(ANA, "shop-linger", week)
            assert record.outcome == "succeeded", record.error
            assert lingering(marker) == []
    finally:
        for process in lingering(marker):
            process.kill()


def lingering(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if marker in (process.info["cmdline"] or []):
                found.append(process)
    return found
