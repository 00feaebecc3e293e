"""indicator.yaml problems (one line each, with line numbers), periods, and who sees, runs
and promotes what. No kernel: these run anywhere."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from statbox.classroom.errors import NotAllowed, NotFound
from statbox.errors import BadInput
from statbox.indicators.periods import Period, between, latest_complete
from statbox.indicators.spec import IndicatorError, load_indicator
from tests.indicators.conftest import ADMIN, ANA, BEA, INDICATOR, TRAINEE, Site, notebook

BAD = """\
id: shop-bad
title: ""
owner: ana
stage: draft
notebook: ../elsewhere.ipynb
sources: [prices]
schedule:
  cron: "0 6 * *"
  timezone: Mars/Olympus
period:
  frequency: daily
series:
  dimensions:
    ref_area: {}
  colour: blue
"""


def test_a_bad_indicator_file_gives_one_line_per_problem_with_its_line(tmp_path: Path) -> None:
    folder = tmp_path / "shop-bad"
    folder.mkdir()
    (folder / "indicator.yaml").write_text(BAD)
    with pytest.raises(IndicatorError) as caught:
        load_indicator(folder)
    lines = str(caught.value).splitlines()
    file = folder / "indicator.yaml"
    expected = {
        "title": 2,
        "stage": 4,
        "notebook": 5,
        "sources": 6,
        "schedule.cron": 8,
        "schedule.timezone": 9,
        "period.frequency": 11,
        "series.dimensions": 13,
        "series.colour": 15,
    }
    for key, line in expected.items():
        assert any(text.startswith(f"{file}:{line}: {key}: ") for text in lines), (key, lines)
    assert len(lines) == len(expected)
    assert caught.value.exit_code == 2


def test_the_folder_must_match_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "shop-renamed"
    folder.mkdir()
    (folder / "indicator.yaml").write_text(INDICATOR.format(id="shop-weekly", stage="pilot"))
    (folder / "indicator.ipynb").write_text(notebook("pass").replace("week = ", "wk = "))
    with pytest.raises(IndicatorError) as caught:
        load_indicator(folder)
    text = str(caught.value)
    assert ":1: id: 'shop-weekly' differs from the folder's name 'shop-renamed'" in text
    assert "period.parameters.week: 'week' is not a parameter of indicator.ipynb" in text


def test_periods() -> None:
    week = Period.parse("2024-W10")
    assert (week.start, week.end, week.label) == (date(2024, 3, 4), date(2024, 3, 10), "2024-W10")
    assert Period.parse("2020-W53").next().label == "2021-W01"
    month = Period.parse("2024-02")
    assert (month.end, month.next().label) == (date(2024, 2, 29), "2024-03")
    assert [p.label for p in between("2024-11", "2025-01")] == ["2024-11", "2024-12", "2025-01"]
    monday = datetime(2024, 3, 11, 5, 0, tzinfo=UTC)
    assert latest_complete("weekly", monday, "Europe/London").label == "2024-W10"
    # already Monday 11 March in Tokyo, still Sunday 10 March in Los Angeles
    sunday_evening = datetime(2024, 3, 10, 20, 0, tzinfo=UTC)
    assert latest_complete("weekly", sunday_evening, "Asia/Tokyo").label == "2024-W10"
    assert latest_complete("weekly", sunday_evening, "America/Los_Angeles").label == "2024-W09"
    for bad in ("2024-W54", "2024-13", "2024W10"):
        with pytest.raises(BadInput):
            Period.parse(bad)
    with pytest.raises(BadInput, match="before"):
        between("2024-W10", "2024-W09")


def test_who_sees_runs_and_promotes(site: Site) -> None:
    library = site.indicators
    everyone = {"shop-weekly", "shop-wrong-column"}
    # poc: only its owner, admins and promoters; pilot: anyone signed in; anonymous: none yet
    assert "shop-poc" in {v.id for v in library.list(ANA)}
    assert "shop-poc" in {v.id for v in library.list(ADMIN)}
    assert "shop-poc" in {v.id for v in library.list(BEA)}
    assert everyone <= {v.id for v in library.list(TRAINEE)}
    assert "shop-poc" not in {v.id for v in library.list(TRAINEE)}
    assert library.list(None) == []
    for who in (None, TRAINEE):
        with pytest.raises(NotFound):
            library.get(who, "shop-poc")
        with pytest.raises(NotFound):
            library.observations(who, "shop-poc")
        with pytest.raises(NotFound):
            library.download(who, "shop-poc", "csv")

    # a trainee may neither promote nor run; a promoter may promote, not run
    with pytest.raises(NotFound):
        library.promote(TRAINEE, "shop-poc", "production")
    with pytest.raises(NotAllowed):
        library.promote(TRAINEE, "shop-weekly", "production")
    with pytest.raises(NotAllowed):
        library.promote(ANA, "shop-poc", "production")  # owners do not promote their own
    with pytest.raises(NotAllowed):
        library.run(TRAINEE, "shop-weekly", "2026-W01")
    with pytest.raises(NotAllowed):
        library.backfill(BEA, "shop-poc", "2026-W01", "2026-W02")
    assert library.get(TRAINEE, "shop-weekly").stage == "pilot"

    # promoted to production by an admin: public; demoted by a promoter: hidden again
    assert library.promote(ADMIN, "shop-poc", "production") == "production"
    assert [v.id for v in library.list(None)] == ["shop-poc"]
    view = library.get(TRAINEE, "shop-poc")
    assert [h["by"] for h in view.stage_history] == ["admin"]
    assert library.promote(BEA, "shop-poc", "poc") == "poc"
    assert library.list(None) == []
    with pytest.raises(BadInput):
        library.promote(ADMIN, "shop-poc", "final")


def test_anonymous_sees_nothing_when_indicators_are_not_public(site: Site) -> None:
    from statbox.indicators.library import Indicators

    settings = site.loaded.settings
    private = settings.model_copy(
        update={"indicators": settings.indicators.model_copy(update={"public": False})}
    )
    library = site.indicators
    library.promote(ADMIN, "shop-weekly", "production")
    try:
        assert "shop-weekly" in {v.id for v in library.list(None)}
        hidden = Indicators(private, library.root, library.state_dir, library.runner)
        assert hidden.list(None) == []
        with pytest.raises(NotFound):
            hidden.get(None, "shop-weekly")
    finally:
        library.promote(ADMIN, "shop-weekly", "pilot")


HEADER = "FREQ,REF_AREA,INDICATOR,TIME_PERIOD,OBS_VALUE,UNIT_MEASURE,OBS_STATUS\n"
GOOD = "W,S1,PRICE,2026-W02,61.5,EUR,A\n"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("FREQ,REF_AREA\n" + GOOD, "missing INDICATOR, TIME_PERIOD"),
        (HEADER + GOOD.replace("PRICE", "COST"), "row 2: INDICATOR 'COST' is not one of PRICE"),
        (HEADER + GOOD.replace("61.5", "n/a"), "row 2: OBS_VALUE 'n/a' is not a number"),
        (HEADER + GOOD.replace("61.5", "nan"), "row 2: OBS_VALUE 'nan' is not a number"),
        (HEADER + GOOD.replace("2026-W02", "2026-W03"), "row 2: TIME_PERIOD '2026-W03' is not"),
        (HEADER + GOOD + GOOD, "row 3: the key W.S1.PRICE.2026-W02 repeats row 2"),
        (HEADER + GOOD.replace(",S1,", ",,"), "row 2: REF_AREA is empty"),
        (HEADER + "W,S1\n", "row 2: 2 values, expected 7"),
        (HEADER, "no observations"),
        ("", "the output is empty"),
    ],
)
def test_an_output_breaking_the_series_is_refused_with_the_reason(
    site: Site, text: str, reason: str
) -> None:
    from statbox.indicators.series import OutputProblem, check_output

    series = site.indicators.get(ANA, "shop-weekly").spec.series
    assert check_output((HEADER + GOOD).encode(), series, "2026-W02")[0]["OBS_VALUE"] == "61.5"
    with pytest.raises(OutputProblem, match=re.escape(reason)):
        check_output(text.encode(), series, "2026-W02")
