"""SPC charts drawn as SVG, in Making Data Count's colours. Pure: a chart in, SVG text out.

Points are grey for common cause, blue for special cause improvement and orange for special
cause concern; the centre line is solid and the process limits dashed (stepped on a p-chart,
where each month has its own). A month with no data is marked "no data" and breaks the line.
Every text is XML-escaped; the SVG carries a <title> and <desc> for screen readers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from app.measures.spc import Chart, ChartKind, Point, Variation

COLOURS = {
    Variation.common_cause: "#7f7f7f",
    Variation.improvement: "#289de0",
    Variation.concern: "#fab428",
    Variation.neither: "#7b5fa6",
    None: "#7f7f7f",
}
INK = "#231f20"
LIMIT = "#8c8c8c"
GRID = "#e6e6e6"
WORDS = {
    Variation.common_cause: "common cause variation",
    Variation.improvement: "special cause variation: improvement",
    Variation.concern: "special cause variation: concern",
    Variation.neither: "special cause variation",
}
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 44, 84


def render_svg(
    chart: Chart,
    *,
    title: str,
    percent: bool = True,
    width: int = 760,
    height: int = 340,
) -> str:
    """The chart as a standalone SVG document (UTF-8 text)."""
    frame = _Frame(chart, percent=percent, width=width, height=height)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-title chart-desc" '
        f'font-family="Arial, Helvetica, sans-serif" font-size="11">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(_describe(chart, percent))}</desc>',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="20" font-size="14" font-weight="bold" fill="{INK}">'
        f"{escape(title)}</text>",
        f'<text x="{LEFT}" y="36" fill="{INK}">{escape(_subtitle(chart))}</text>',
        *frame.axes(),
        *frame.limits(),
        *frame.series(),
        *frame.legend(),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


def _subtitle(chart: Chart) -> str:
    kind = "p-chart (binomial limits)" if chart.kind is ChartKind.p else "XmR chart"
    start, stop = chart.baseline
    if not chart.points:
        return kind
    whole = (start, stop) == (0, len(chart.points))
    base = (
        "all months" if whole else f"{chart.points[start].label} to {chart.points[stop - 1].label}"
    )
    better = {"up": "higher is better", "down": "lower is better"}.get(
        chart.improvement.value if chart.improvement else "", "no direction"
    )
    return f"{kind}; limits from {base}; {better}"


def _describe(chart: Chart, percent: bool) -> str:
    latest = chart.latest
    if latest is None or latest.value is None:
        return "No data in these months."
    words = (
        WORDS.get(latest.variation, "not enough data for limits")
        if latest.variation
        else ("not enough data for limits")
    )
    return f"Latest month {latest.label}: {_format(latest.value, percent)}, {words}."


def _format(value: float, percent: bool) -> str:
    return f"{value * 100:.1f}%" if percent else f"{value:.3g}"


class _Frame:
    """Scales from data to the drawing, and the pieces of the drawing."""

    def __init__(self, chart: Chart, *, percent: bool, width: int, height: int) -> None:
        self.chart, self.percent = chart, percent
        self.width, self.height = width, height
        self.x0, self.x1 = LEFT, width - RIGHT
        self.y0, self.y1 = height - BOTTOM, TOP + 8
        numbers = [
            v
            for p in chart.points
            for v in (p.value, p.centre, p.lower, p.upper)
            if v is not None and math.isfinite(v)
        ]
        low, high = (min(numbers), max(numbers)) if numbers else (0.0, 1.0)
        if high - low < 1e-9:
            low, high = low - 0.05, high + 0.05
        pad = (high - low) * 0.08
        low, high = low - pad, high + pad
        if percent:  # a proportion: the axis stays within 0% to 100%
            low, high = max(0.0, low), min(1.0, high)
        self.ticks = [t for t in _ticks(low, high) if not percent or 0 <= t <= 1]
        self.low, self.high = self.ticks[0], self.ticks[-1]
        self.step = (self.x1 - self.x0) / max(1, len(chart.points))

    def x(self, i: int) -> float:
        return self.x0 + (i + 0.5) * self.step

    def y(self, value: float) -> float:
        """Values beyond the axis (an XmR limit below 0%) are drawn at its edge."""
        value = min(self.high, max(self.low, value))
        share = (value - self.low) / (self.high - self.low)
        return self.y0 - share * (self.y0 - self.y1)

    def axes(self) -> list[str]:
        out = []
        for tick in self.ticks:
            y = self.y(tick)
            out.append(
                f'<line x1="{self.x0}" y1="{y:.1f}" x2="{self.x1}" y2="{y:.1f}" stroke="{GRID}"/>'
            )
            out.append(
                f'<text x="{self.x0 - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{INK}">'
                f"{escape(self._tick_label(tick))}</text>"
            )
        every = max(1, math.ceil(len(self.chart.points) / 24))
        for i, point in enumerate(self.chart.points):
            if i % every:
                continue
            x, y = self.x(i), self.y0 + 14
            out.append(
                f'<text x="{x:.1f}" y="{y}" text-anchor="end" fill="{INK}" '
                f'transform="rotate(-45 {x:.1f} {y})">{escape(point.label)}</text>'
            )
        out.append(
            f'<line x1="{self.x0}" y1="{self.y0}" x2="{self.x1}" y2="{self.y0}" stroke="{INK}"/>'
        )
        return out

    def _tick_label(self, tick: float) -> str:
        if self.percent:
            return (
                f"{tick * 100:.0f}%"
                if abs(tick * 100 - round(tick * 100)) < 1e-6
                else (f"{tick * 100:.1f}%")
            )
        return f"{tick:g}"

    def limits(self) -> list[str]:
        out = []
        for attribute, dashed in (("centre", False), ("lower", True), ("upper", True)):
            values = [getattr(p, attribute) for p in self.chart.points]
            out.extend(self._steps(values, dashed=dashed, name=attribute))
        start, stop = self.chart.baseline
        if self.chart.points and (start, stop) != (0, len(self.chart.points)):
            x = self.x0 + stop * self.step
            out.append(
                f'<line x1="{x:.1f}" y1="{self.y1}" x2="{x:.1f}" y2="{self.y0}" stroke="{LIMIT}" '
                'stroke-dasharray="2 3"><title>end of baseline</title></line>'
            )
        return out

    def _steps(self, values: Sequence[float | None], *, dashed: bool, name: str) -> list[str]:
        """A line per run of months with a value: flat on an XmR chart, stepped on a p-chart."""
        style = f'stroke="{LIMIT if dashed else INK}" fill="none" stroke-width="1.2"'
        if dashed:
            style += ' stroke-dasharray="6 4"'
        out: list[str] = []
        run: list[str] = []
        for i, value in enumerate([*values, None]):
            if value is None or not math.isfinite(value):
                if run:
                    out.append(f'<polyline class="{name}" points="{" ".join(run)}" {style}/>')
                run = []
                continue
            left, right, y = self.x(i) - self.step / 2, self.x(i) + self.step / 2, self.y(value)
            run += [f"{left:.1f},{y:.1f}", f"{right:.1f},{y:.1f}"]
        return out

    def series(self) -> list[str]:
        out: list[str] = []
        run: list[str] = []
        for i, point in enumerate([*self.chart.points, None]):
            if point is None or point.value is None:
                if len(run) > 1:
                    out.append(
                        f'<polyline points="{" ".join(run)}" stroke="{INK}" fill="none" '
                        'stroke-width="1.5"/>'
                    )
                run = []
                if point is not None:
                    out.append(self._no_data(i, point))
                continue
            run.append(f"{self.x(i):.1f},{self.y(point.value):.1f}")
        for i, point in enumerate(self.chart.points):
            if point.value is not None:
                out.append(self._dot(i, point))
        return out

    def _dot(self, i: int, point: Point) -> str:
        assert point.value is not None
        colour = COLOURS[point.variation]
        hover = f"{point.label}: {_format(point.value, self.percent)}"
        if point.denominator:
            hover += f" ({point.numerator} of {point.denominator})"
        if point.variation is not None:
            hover += f"; {WORDS[point.variation]}"
        if point.signals:
            hover += (
                " ("
                + ", ".join(sorted(s.rule.value.replace("_", " ") for s in point.signals))
                + ")"
            )
        return (
            f'<circle cx="{self.x(i):.1f}" cy="{self.y(point.value):.1f}" r="4" '
            f'fill="{colour}" stroke="{INK}" stroke-width="0.5" '
            f"data-variation={quoteattr(point.variation or '')}>"
            f"<title>{escape(hover)}</title></circle>"
        )

    def _no_data(self, i: int, point: Point) -> str:
        x, y = self.x(i), self.y0 - 6
        return (
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="9" fill="{LIMIT}" text-anchor="start" '
            f'transform="rotate(-90 {x:.1f} {y:.1f})">no data<title>{escape(point.label)}: '
            "no data</title></text>"
        )

    def legend(self) -> list[str]:
        out, x, y = [], self.x0, self.height - 10
        for variation in (Variation.improvement, Variation.concern, Variation.common_cause):
            out.append(f'<circle cx="{x}" cy="{y - 4}" r="4" fill="{COLOURS[variation]}"/>')
            label = {
                Variation.improvement: "improvement",
                Variation.concern: "concern",
                Variation.common_cause: "common cause",
            }[variation]
            out.append(f'<text x="{x + 8}" y="{y}" fill="{INK}">{label}</text>')
            x += 100
        return out


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``low`` to ``high``."""
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks if len(ticks) >= 2 else [first, first + step]
