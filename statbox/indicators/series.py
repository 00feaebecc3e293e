"""Checking a run's output CSV against the series its indicator declares.

Invariant: :func:`check_output` returns the observations only when the CSV has exactly the
declared columns in order (dimensions, TIME_PERIOD, the measure, attributes), every code is
in its code list, every value is a finite number, every TIME_PERIOD is the run's period and
no key (dimensions + TIME_PERIOD) repeats; otherwise it raises :class:`OutputProblem` naming
the first thing wrong (row numbers count the header as row 1, as a spreadsheet shows them).
"""

from __future__ import annotations

import csv
import io
import math
import re

from statbox.indicators.spec import Series

MAX_ROWS = 100_000
"""Most observations one run may publish: parsing stops there, so an output cannot make the
service hold more than about a hundred megabytes of rows (an indicator has far fewer)."""


FREE_ID = re.compile(r"[A-Za-z0-9_$][A-Za-z0-9_@$-]{0,99}")
"""A free-text dimension value (a port, a shop): an SDMX id (letters, digits, ``_@$-``; no
``.``, the key separator), not starting with ``@`` or ``-``: a value a spreadsheet opening the
CSV download would run as a formula (``=``, ``+``, ``-``, ``@``), or markup, is refused."""
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""What a free-text attribute value may not start with (a spreadsheet formula)."""


class OutputProblem(ValueError):
    """The output breaks the declared series (the message is the reason, one line)."""


def check_output(data: bytes, series: Series, period: str) -> list[dict[str, str]]:
    """The observations in ``data`` (a CSV), checked; see the module docstring."""
    try:
        return _check(data, series, period)
    except csv.Error as exc:
        raise OutputProblem(f"the output is not CSV: {exc}") from None


def _check(data: bytes, series: Series, period: str) -> list[dict[str, str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise OutputProblem("the output is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    expected = series.columns
    if header is None:
        raise OutputProblem(f"the output is empty; expected the columns {','.join(expected)}")
    header = [h.strip() for h in header]
    if header != expected:
        missing = [c for c in expected if c not in header]
        extra = [c for c in header if c not in expected]
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing)}")
        if extra:
            detail.append(f"unexpected {', '.join(extra)}")
        if not detail:
            detail.append("columns out of order")
        raise OutputProblem(
            f"output columns {','.join(header)}: {'; '.join(detail)} "
            f"(expected {','.join(expected)})"
        )
    codes = {
        name: set(component.codes)
        for name, component in [*series.dimensions.items(), *series.attributes.items()]
        if component.codes is not None
    }
    key_columns = [*series.dimensions, "TIME_PERIOD"]
    seen: dict[tuple[str, ...], int] = {}
    rows: list[dict[str, str]] = []
    for number, values in enumerate(reader, start=2):
        if not values:
            continue
        if len(values) != len(expected):
            raise OutputProblem(f"row {number}: {len(values)} values, expected {len(expected)}")
        if len(rows) >= MAX_ROWS:
            raise OutputProblem(f"more than {MAX_ROWS} observations")
        row = dict(zip(expected, values, strict=True))
        for name, allowed in codes.items():
            if row[name] not in allowed and not (name in series.attributes and row[name] == ""):
                raise OutputProblem(
                    f"row {number}: {name} {row[name]!r} is not one of {', '.join(sorted(allowed))}"
                )
        for name, component in series.dimensions.items():
            if not row[name].strip():
                raise OutputProblem(f"row {number}: {name} is empty")
            if component.codes is None and not FREE_ID.fullmatch(row[name]):
                raise OutputProblem(
                    f"row {number}: {name} {row[name][:40]!r} is not an id (letters, digits, "
                    "_ @ $ -; first a letter, digit, _ or $; at most 100)"
                )
        for name, component in series.attributes.items():
            text = row[name]
            if component.codes is None and (
                text.startswith(FORMULA_START) or any(ord(c) < 32 for c in text)
            ):
                raise OutputProblem(
                    f"row {number}: {name} {text[:40]!r} starts like a spreadsheet formula "
                    "or holds a control character"
                )
        if row["TIME_PERIOD"] != period:
            raise OutputProblem(
                f"row {number}: TIME_PERIOD {row['TIME_PERIOD']!r} is not the run's period {period}"
            )
        try:
            value = float(row[series.measure])
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise OutputProblem(
                f"row {number}: {series.measure} {row[series.measure][:40]!r} is not a number"
            )
        key = tuple(row[c] for c in key_columns)
        if key in seen:
            raise OutputProblem(f"row {number}: the key {'.'.join(key)} repeats row {seen[key]}")
        seen[key] = number
        rows.append(row)
    if not rows:
        raise OutputProblem("the output has no observations")
    return rows


def to_csv(rows: list[dict[str, str]], columns: list[str]) -> bytes:
    """Observations as CSV text with ``columns`` (a header line, then one line each)."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()
