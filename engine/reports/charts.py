"""Server-rendered SVG charts: no chart service, no script. Each chart is a string of SVG that names
itself (``<title>`` and ``<desc>``, ``role="img"``), says every value in words (a ``<title>`` on each
bar and point, read by screen readers and shown on hover) and keys its colours in a legend with the
series' names, so no value is told by colour alone. A page shows the same numbers as a table beside it.

Every text is escaped (codes come from authors' catalogues); the number of categories is bounded.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

__all__ = ["MAX_CATEGORIES", "SERIES_COLOURS", "URGENCY_COLOURS", "demand_chart", "line_chart", "stacked_bars"]

MAX_CATEGORIES = 400  # weeks in five years, plus a margin: past it a chart is refused
# NHS identity colours, one per urgency (the legend names each one).
URGENCY_COLOURS = {
    "emergency": "#d5281b",
    "urgent": "#ed8b00",
    "soon": "#005eb8",
    "routine": "#007f3b",
    "unknown": "#768692",
}
SERIES_COLOURS = ("#005eb8", "#d5281b", "#007f3b", "#330072", "#ed8b00", "#768692")
_DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4")  # a second cue besides colour, per line
_LEGEND_ROW = 20
_LEGEND_LINE = 14  # a legend name's next line
_LEGEND_CHARS = 20  # what fits in the 134 px right of the plot at 12 px
_QUOTE = {'"': "&quot;"}  # escaping an attribute's value
_WIDTH, _HEIGHT = 780, 400
_LEFT, _RIGHT, _TOP, _BOTTOM = 100, 170, 36, 110
_CHART_ID = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_FONT = 'font-family="Frutiger W01, Arial, sans-serif" font-size="12"'


def _nice_max(value: float) -> float:
    """A round number at or above ``value`` for the top of the axis."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return next(step * magnitude for step in (1, 2, 2.5, 5, 10) if step * magnitude >= value)


def _number(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.2f}".rstrip("0")


def _legend_lines(names: Sequence[str]) -> list[list[str]]:
    """Each legend name in lines that fit right of the plot (a measure's name is longer than that)."""
    return [textwrap.wrap(name, _LEGEND_CHARS) or [""] for name in names]


def _legend_bottom(names: Sequence[str]) -> int:
    """Where the legend's last entry ends."""
    return _TOP + sum(_LEGEND_ROW + (len(lines) - 1) * _LEGEND_LINE for lines in _legend_lines(names))


def _frame(
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    top: float,
    unit: str,
    legend: Sequence[str] = (),
) -> list[str]:
    """The SVG's opening, its title and description, the axes, gridlines and category labels; taller
    than the plot when the ``legend``'s names need it (a patient may have many concerns)."""
    if not _CHART_ID.match(chart_id):
        raise ValueError("a chart id is lower-case letters, digits and hyphens")
    if len(labels) > MAX_CATEGORIES:
        raise ValueError(f"a chart draws at most {MAX_CATEGORIES} categories")
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    height = max(_HEIGHT, _legend_bottom(legend) + _LEGEND_ROW)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="cp-chart" role="img" viewBox="0 0 {_WIDTH} {height}" '
        f'width="100%" aria-labelledby="{chart_id}-title {chart_id}-desc" {_FONT}>',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(description)}</desc>',
        f'<text x="{_LEFT}" y="20" font-weight="bold">{escape(unit)}</text>',
    ]
    for step in range(5):
        value = top * step / 4
        y = _TOP + plot_h - plot_h * step / 4
        parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d8dde0"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(value)}</text>')
    every = 1 if len(labels) <= 24 else math.ceil(len(labels) / 12)  # every label fits up to 24
    for index, label in enumerate(labels):
        if index % every == 0:
            x = _LEFT + (index + 0.5) * plot_w / max(len(labels), 1)
            parts.append(
                f'<text x="{x:.1f}" y="{_TOP + plot_h + 16}" text-anchor="end" '
                f'transform="rotate(-35 {x:.1f} {_TOP + plot_h + 16})">{escape(label)}</text>'
            )
    parts.append(f'<line x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{_TOP + plot_h}" stroke="#4c6272"/>')
    parts.append(
        f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{_TOP + plot_h}" y2="{_TOP + plot_h}" stroke="#4c6272"/>'
    )
    return parts


def _legend(names: Sequence[str], colours: Sequence[str], dashes: Sequence[str] | None = None) -> list[str]:
    parts = ['<g class="cp-chart-legend">']
    y = _TOP + 8
    for index, (lines, colour) in enumerate(zip(_legend_lines(names), colours, strict=True)):
        x = _WIDTH - _RIGHT + 16
        if dashes is None:
            parts.append(f'<rect x="{x}" y="{y - 9}" width="12" height="12" fill="{colour}"/>')
        else:
            dash = f' stroke-dasharray="{dashes[index]}"' if dashes[index] else ""
            parts.append(
                f'<line x1="{x - 2}" x2="{x + 14}" y1="{y - 3}" y2="{y - 3}" stroke="{colour}" stroke-width="3"{dash}/>'
            )
        more = "".join(f'<tspan x="{x + 20}" dy="{_LEGEND_LINE}">{escape(line)}</tspan>' for line in lines[1:])
        parts.append(f'<text x="{x + 20}" y="{y + 1}">{escape(lines[0])}{more}</text>')
        y += _LEGEND_ROW + (len(lines) - 1) * _LEGEND_LINE
    parts.append("</g>")
    return parts


def stacked_bars(
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[int | None]],
    colours: Mapping[str, str] | None = None,
    unit: str = "",
) -> str:
    """Bars per category (``labels``), each stacked from ``series`` (name -> one count per label;
    None: suppressed, not drawn, and said so in the bar's words).

    Raises:
        ValueError: a series whose length is not the labels', or more than :data:`MAX_CATEGORIES` labels.
    """
    if any(len(values) != len(labels) for values in series.values()):
        raise ValueError("every series needs one value per label")
    totals = [sum(values[i] or 0 for values in series.values()) for i in range(len(labels))]
    top = _nice_max(max(totals, default=0))
    parts = _frame(chart_id, title, description, labels, top, unit, legend=list(series))
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    slot = plot_w / max(len(labels), 1)
    names = list(series)
    fills = [(colours or {}).get(name, SERIES_COLOURS[i % len(SERIES_COLOURS)]) for i, name in enumerate(names)]
    for index, label in enumerate(labels):
        base: float = _TOP + plot_h
        words = [f"{name} {'suppressed' if series[name][index] is None else series[name][index]}" for name in names]
        parts.append(f"<g><title>{escape(label)}: {escape(', '.join(words))}</title>")
        for name, fill in zip(names, fills, strict=True):
            value = series[name][index] or 0
            height = plot_h * value / top
            if height > 0:
                parts.append(
                    f'<rect x="{_LEFT + index * slot + slot * 0.15:.1f}" y="{base - height:.1f}" '
                    f'width="{slot * 0.7:.1f}" height="{height:.1f}" fill="{fill}"/>'
                )
                base -= height
        parts.append("</g>")
    return "".join([*parts, *_legend(names, fills), "</svg>"])


def line_chart(
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    top: float | None = None,
    unit: str = "",
) -> str:
    """A line per series (name -> one value per label; None: a gap), each in a group that names it
    (``data-series``). ``top``: the axis' top (default: a round number above the largest value).
    Colour and dash pattern together tell up to 36 lines apart; the legend names every one.

    Raises:
        ValueError: a series whose length is not the labels', or more than :data:`MAX_CATEGORIES` labels.
    """
    if any(len(values) != len(labels) for values in series.values()):
        raise ValueError("every series needs one value per label")
    highest = max((v for values in series.values() for v in values if v is not None), default=0)
    top = top if top is not None else _nice_max(highest)
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    slot = plot_w / max(len(labels), 1)
    names = list(series)
    colours = [SERIES_COLOURS[i % len(SERIES_COLOURS)] for i in range(len(names))]
    # The seventh line takes the first colour with the second dash, and so on: no two of 36 look alike.
    dashes = [_DASHES[(i + i // len(SERIES_COLOURS)) % len(_DASHES)] for i in range(len(names))]
    parts = _frame(chart_id, title, description, labels, top, unit, legend=names)
    for name, colour, dash in zip(names, colours, dashes, strict=True):
        parts.append(f'<g class="cp-chart-series" data-series="{escape(name, _QUOTE)}">')
        points = [
            (_LEFT + (i + 0.5) * slot, _TOP + plot_h - plot_h * v / top, labels[i], v)
            for i, v in enumerate(series[name])
            if v is not None
        ]
        runs: list[list[tuple[float, float]]] = [[]]
        for i, value in enumerate(series[name]):
            if value is None:
                runs.append([])
            else:
                runs[-1].append((_LEFT + (i + 0.5) * slot, _TOP + plot_h - plot_h * value / top))
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        for run in runs:
            if len(run) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5"{dashed}/>')
        for x, y, label, value in points:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"><title>{escape(name)}, '
                f"{escape(label)}: {_number(value)}</title></circle>"
            )
        parts.append("</g>")
    return "".join([*parts, *_legend(names, colours, dashes), "</svg>"])


def demand_chart(chart_id: str, title: str, description: str, referrals: Mapping[str, Mapping[str, int]]) -> str:
    """Referrals per service (``referrals``: service -> urgency -> count), a bar per service stacked by
    urgency in the manager page's colours, busiest service first.

    Raises:
        ValueError: as :func:`stacked_bars` does.
    """
    services = sorted(referrals, key=lambda service: (-sum(referrals[service].values()), service))
    urgencies = [u for u in URGENCY_COLOURS if any(referrals[s].get(u) for s in services)]
    urgencies += sorted({u for s in services for u in referrals[s]} - set(urgencies))
    return stacked_bars(
        chart_id,
        title,
        description,
        services,
        {u: [referrals[s].get(u, 0) for s in services] for u in urgencies},
        URGENCY_COLOURS,
        unit="referrals",
    )
