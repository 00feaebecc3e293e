"""The indicator page's figures and figures of speech: inline SVG drawn on the server, and the
latest value of each series with its change.

No JavaScript and nothing fetched: the page's Content-Security-Policy allows neither, and a
reader with scripts off sees the same plot. One figure per value of the last dimension (for
the AIS indicator: port calls, gross tonnage; their magnitudes differ), a line per series
(the other dimensions' values), periods along the x axis in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 16, 36
MAX_LINES = 10
"""Lines per figure: the largest series by latest value; the downloads have the rest."""
COLOURS = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
"""Tableau 10: distinguishable, and legible to most colour-blind readers with the legend."""


@dataclass(frozen=True)
class Line:
    label: str
    points: dict[str, float]
    """TIME_PERIOD -> value (missing and non-numeric values are left out)."""


@dataclass(frozen=True)
class Figure:
    title: str
    periods: list[str]
    lines: list[Line]
    hidden: int
    """Series left out of the figure (more than MAX_LINES)."""

    def svg(self, more: str = "+{hidden} more (downloads)") -> str:
        """The figure as SVG; ``more`` says how many series were left out (the page passes
        it in the reader's language, ``{hidden}`` standing for the count)."""
        return render_svg(self, more)


@dataclass(frozen=True)
class Latest:
    """The latest value of one series and its change from the period before."""

    series: str
    period: str
    value: float
    previous: float | None

    @property
    def change(self) -> float | None:
        return None if self.previous is None else self.value - self.previous

    @property
    def percent(self) -> float | None:
        if self.previous in (None, 0) or self.change is None:
            return None
        return 100.0 * self.change / abs(self.previous)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _series(
    rows: list[dict[str, str]], dimensions: list[str], measure: str
) -> dict[tuple[str, ...], dict[str, float]]:
    """Values by series key (every dimension but FREQ) and period."""
    keys = [d for d in dimensions if d not in ("FREQ", "TIME_PERIOD")]
    found: dict[tuple[str, ...], dict[str, float]] = {}
    for row in rows:
        value = _number(row.get(measure, ""))
        if value is None:
            continue
        key = tuple(str(row.get(d, "")) for d in keys)
        found.setdefault(key, {})[str(row.get("TIME_PERIOD", ""))] = value
    return found


def figures(rows: list[dict[str, str]], dimensions: list[str], measure: str) -> list[Figure]:
    """One figure per value of the last dimension; a line per series within it."""
    series = _series(rows, dimensions, measure)
    groups: dict[str, list[Line]] = {}
    for key, points in series.items():
        group, label = (key[-1], " · ".join(key[:-1])) if len(key) > 1 else ("", " · ".join(key))
        groups.setdefault(group, []).append(Line(label or group or measure, points))
    result = []
    for group, lines in sorted(groups.items()):
        periods = sorted({p for line in lines for p in line.points})
        lines.sort(key=lambda line: (-line.points[max(line.points)], line.label))
        result.append(
            Figure(group or measure, periods, lines[:MAX_LINES], max(0, len(lines) - MAX_LINES))
        )
    return result


def latest(rows: list[dict[str, str]], dimensions: list[str], measure: str) -> list[Latest]:
    """Each series' latest value and its change from the period before it, by series."""
    result = []
    for key, points in sorted(_series(rows, dimensions, measure).items()):
        periods = sorted(points)
        last = periods[-1]
        before = points[periods[-2]] if len(periods) > 1 else None
        result.append(Latest(" · ".join(key), last, points[last], before))
    return result


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values spanning [low, high] for the y axis."""
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= step * factor:
            step *= factor
            break
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value <= high + step / 2:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def render_svg(figure: Figure, more: str = "+{hidden} more (downloads)") -> str:
    """The figure as an ``<svg>`` element (title and legend included), all text escaped."""
    values = [v for line in figure.lines for v in line.points.values()]
    ticks = _ticks(min([0.0, *values]), max(values or [1.0]))
    low, high = ticks[0], ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    count = len(figure.periods)

    def x(index: int) -> float:
        return LEFT + (plot_w * index / (count - 1) if count > 1 else plot_w / 2)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - (value - low) / ((high - low) or 1))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(figure.title)}">',
        f"<title>{escape(figure.title)}</title>",
        '<g font-size="11" font-family="system-ui,sans-serif" fill="#333">',
    ]
    for tick in ticks:
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            'stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>'
        )
    every = max(1, math.ceil(count / 8))
    for index, period in enumerate(figure.periods):
        if index % every == 0 or index == count - 1:
            parts.append(
                f'<text x="{x(index):.1f}" y="{HEIGHT - BOTTOM + 16}" '
                f'text-anchor="middle">{escape(period)}</text>'
            )
    for number, line in enumerate(figure.lines):
        colour = COLOURS[number % len(COLOURS)]
        points = [
            (x(i), y(line.points[p])) for i, p in enumerate(figure.periods) if p in line.points
        ]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(
            f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="2" '
            f'points="{path}"><title>{escape(line.label)}</title></polyline>'
        )
        parts.extend(
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{colour}"/>' for px, py in points
        )
        legend_y = TOP + 6 + 15 * number
        parts.append(
            f'<rect x="{WIDTH - RIGHT + 10}" y="{legend_y - 8}" width="10" height="10" '
            f'fill="{colour}"/><text x="{WIDTH - RIGHT + 25}" y="{legend_y + 1}">'
            f"{escape(line.label[:22])}</text>"
        )
    if figure.hidden:
        parts.append(
            f'<text x="{WIDTH - RIGHT + 10}" y="{TOP + 6 + 15 * len(figure.lines) + 4}" '
            f'fill="#666">{escape(str(more).replace("{hidden}", str(figure.hidden)))}</text>'
        )
    parts.append("</g></svg>")
    return "".join(parts)
