"""``statbox indicator``: what the operator types, the exit codes and messages it gets (no
kernel: the runs themselves are tested in test_runs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from statbox.cli import main
from tests.certify.sampledata import CATALOG
from tests.indicators.conftest import NOTEBOOKS, SETTINGS, write_indicator


@pytest.fixture
def config(tmp_path: Path) -> str:
    for indicator_id in ("shop-weekly", "shop-poc"):
        stage, body = NOTEBOOKS[indicator_id]
        write_indicator(tmp_path / "indicators", indicator_id, stage, body)
    (tmp_path / "curriculum").mkdir()
    settings = SETTINGS.format(catalog=CATALOG, data_root=tmp_path / "data")
    (tmp_path / "statbox.yaml").write_text(settings)
    return str(tmp_path / "statbox.yaml")


def test_list_promote_and_refusals(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["indicator", "list", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "shop-poc" in out and "shop-weekly" in out
    assert main(["indicator", "list", "--config", config, "--as", "tom"]) == 0
    assert "shop-poc" not in capsys.readouterr().out

    assert main(["indicator", "promote", "shop-weekly", "production", "--config", config,
                 "--as", "tom"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("statbox: only admins and members of indicators.promoters (board)")
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert main(["indicator", "promote", "shop-weekly", "production", "--config", config]) == 0
    assert "shop-weekly is now production" in capsys.readouterr().out
    assert main(["indicator", "show", "shop-weekly", "--config", config]) == 0
    assert "stage production by (operator)" in capsys.readouterr().out

    assert main(["indicator", "run", "nowhere", "--config", config]) == 2
    assert capsys.readouterr().err == (
        "statbox: no indicator 'nowhere' (see `statbox indicator list`)\n"
    )
    assert (
        main(["indicator", "run", "shop-weekly", "--period", "2099-W01", "--config", config]) == 2
    )
    assert "2099-W01 is not over yet" in capsys.readouterr().err
    assert main(["indicator", "backfill", "shop-weekly", "--first", "2026-W03",
                 "--last", "2026-W01", "--config", config]) == 2  # fmt: skip
    assert "before --first" in capsys.readouterr().err


def test_a_bad_indicator_file_is_one_line_per_problem_exit_2(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    file = Path(config).parent / "indicators" / "shop-poc" / "indicator.yaml"
    text = file.read_text().replace("stage: poc", "stage: draft")
    file.write_text(text.replace('cron: "0 6 * * 1"', 'cron: "every monday"'))
    assert main(["indicator", "list", "--config", config]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"statbox: {file}:7: stage: 'draft': Input should be 'poc', 'pilot' or 'production'",
        f"statbox: {file}:11: schedule.cron: 'every monday': must be five cron fields: "
        "minute hour day month weekday",
    ]
