"""Statistical process control charts as NHS England's "Making Data Count" draws them. Pure.

XmR chart (a value per month): centre line = mean of the baseline values; moving range =
|x(i) - x(i-1)| between consecutive points; limits = mean +/- 2.66 x mean moving range of the
baseline. p-chart (a proportion per month with its own denominator): centre = the baseline's
pooled proportion p = sum(numerators) / sum(denominators); limits per point p +/- 3 sqrt(p(1-p)/n),
held within 0 and 1.

Special cause (each rule can fire on its own):

- ``outside_limits``: a point above the upper or below the lower limit;
- ``shift``: ``run_length`` (7; some tools use 6) or more points in a row above, or below, the
  centre line (a point on the line ends the run);
- ``trend``: ``trend_length`` (7) or more points in a row each higher, or each lower, than the one
  before (an equal value ends it);
- ``two_of_three``: 2 of 3 points in a row beyond two thirds of the way from the centre to a limit,
  on the same side (a point beyond the limit counts).

Months with no data are left out: they neither end nor extend a run. The limits come from the
baseline (by default every point); fixing a baseline judges later points against its limits.
Whether a signal is an improvement or a concern depends on the measure's direction.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from app.measures.definitions import Improvement

XMR_LIMIT_FACTOR = 2.66  # 3 / d2, d2 = 1.128 for moving ranges of two points
TWO_THIRDS = 2 / 3


class Rule(enum.StrEnum):
    outside_limits = "outside_limits"
    shift = "shift"
    trend = "trend"
    two_of_three = "two_of_three"


class Side(enum.StrEnum):
    high = "high"
    low = "low"


class Variation(enum.StrEnum):
    common_cause = "common_cause"
    improvement = "special_cause_improvement"
    concern = "special_cause_concern"
    neither = "special_cause_neither"  # no direction of improvement, or signals both ways


class ChartKind(enum.StrEnum):
    xmr = "xmr"
    p = "p"


@dataclass(frozen=True)
class SpcRules:
    run_length: int = 7
    trend_length: int = 7

    def __post_init__(self) -> None:
        if self.run_length < 2 or self.trend_length < 2:
            raise ValueError("run_length and trend_length must be 2 or more")


@dataclass(frozen=True)
class Signal:
    rule: Rule
    side: Side


@dataclass(frozen=True)
class Point:
    label: str
    value: float | None  # None: no data this month
    centre: float | None
    lower: float | None
    upper: float | None
    lower_two_thirds: float | None
    upper_two_thirds: float | None
    signals: frozenset[Signal]
    variation: Variation | None  # None when there is no value or no limits
    moving_range: float | None = None  # XmR only
    numerator: int | None = None  # p-chart only
    denominator: int | None = None

    @property
    def rules(self) -> frozenset[Rule]:
        return frozenset(signal.rule for signal in self.signals)


@dataclass(frozen=True)
class Chart:
    kind: ChartKind
    points: tuple[Point, ...]
    centre: float | None
    baseline: tuple[int, int]  # points [start, end) the centre and limits come from
    improvement: Improvement | None
    rules: SpcRules
    mean_moving_range: float | None = None  # XmR only

    @property
    def latest(self) -> Point | None:
        """The last month with data: what a dashboard's variation icon shows."""
        return next((p for p in reversed(self.points) if p.value is not None), None)


# --- the charts ----------------------------------------------------------------------------------


def _baseline(size: int, baseline: range | None) -> range:
    chosen = range(size) if baseline is None else baseline
    if chosen.step != 1 or chosen.start < 0 or chosen.stop > size or chosen.start >= chosen.stop:
        raise ValueError(f"baseline must be a run of points within 0..{size}, got {chosen}")
    return chosen


def xmr(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    baseline: range | None = None,
    improvement: Improvement | None = None,
    rules: SpcRules = SpcRules(),
) -> Chart:
    """An XmR chart of ``values`` (None for a month with no data), limits from ``baseline``."""
    if len(labels) != len(values):
        raise ValueError("labels and values must be the same length")
    base = _baseline(len(values), baseline)
    present = [i for i, v in enumerate(values) if v is not None]
    moving: dict[int, float] = {}
    base_ranges: list[float] = []
    for before, after in pairwise(present):
        moving[after] = abs(_f(values[after]) - _f(values[before]))
        if before in base and after in base:
            base_ranges.append(moving[after])
    base_values = [_f(values[i]) for i in present if i in base]
    centre = sum(base_values) / len(base_values) if len(base_values) >= 2 else None
    mr_bar = sum(base_ranges) / len(base_ranges) if centre is not None and base_ranges else None
    n = len(values)
    if centre is None or mr_bar is None:
        limits = _Limits.none(n)
    else:
        half = XMR_LIMIT_FACTOR * mr_bar
        limits = _Limits.constant(n, centre, half, half * TWO_THIRDS)
    points = _judge(labels, values, limits, rules, improvement)
    points = [replace(p, moving_range=moving.get(i)) for i, p in enumerate(points)]
    return Chart(
        ChartKind.xmr,
        tuple(points),
        centre,
        (base.start, base.stop),
        improvement,
        rules,
        mean_moving_range=mr_bar,
    )


def p_chart(
    labels: Sequence[str],
    numerators: Sequence[int],
    denominators: Sequence[int],
    *,
    baseline: range | None = None,
    improvement: Improvement | None = None,
    rules: SpcRules = SpcRules(),
) -> Chart:
    """A p-chart: each month's proportion against binomial limits for its own denominator."""
    if not len(labels) == len(numerators) == len(denominators):
        raise ValueError("labels, numerators and denominators must be the same length")
    if any(d < 0 or not 0 <= x <= d for x, d in zip(numerators, denominators, strict=True)):
        raise ValueError("each numerator must be from 0 to its denominator")
    base = _baseline(len(labels), baseline)
    values = [x / d if d else None for x, d in zip(numerators, denominators, strict=True)]
    total = sum(denominators[i] for i in base)
    with_data = sum(1 for i in base if denominators[i])
    centre = sum(numerators[i] for i in base) / total if total and with_data >= 2 else None
    limits = _Limits.none(len(labels))
    if centre is not None:
        limits = _Limits.binomial(centre, denominators)
    points = _judge(labels, values, limits, rules, improvement)
    points = [
        replace(p, numerator=x, denominator=d)
        for p, x, d in zip(points, numerators, denominators, strict=True)
    ]
    return Chart(ChartKind.p, tuple(points), centre, (base.start, base.stop), improvement, rules)


# --- limits --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Limits:
    centre: list[float | None]
    lower: list[float | None]
    upper: list[float | None]
    lower_two_thirds: list[float | None]
    upper_two_thirds: list[float | None]

    @classmethod
    def none(cls, n: int) -> _Limits:
        empty: list[float | None] = [None] * n
        return cls(empty, empty, empty, empty, empty)

    @classmethod
    def constant(cls, n: int, centre: float, half: float, two_thirds: float) -> _Limits:
        def repeat(value: float) -> list[float | None]:
            return [value] * n

        return cls(
            repeat(centre),
            repeat(centre - half),
            repeat(centre + half),
            repeat(centre - two_thirds),
            repeat(centre + two_thirds),
        )

    @classmethod
    def binomial(cls, p: float, denominators: Sequence[int]) -> _Limits:
        sigmas = [math.sqrt(p * (1 - p) / d) if d else None for d in denominators]

        def at(k: float, sign: int) -> list[float | None]:
            return [None if s is None else min(1.0, max(0.0, p + sign * k * s)) for s in sigmas]

        return cls(
            [p if s is not None else None for s in sigmas],
            at(3, -1),
            at(3, 1),
            at(2, -1),
            at(2, 1),
        )


# --- the rules -----------------------------------------------------------------------------------


def _judge(
    labels: Sequence[str],
    values: Sequence[float | None],
    limits: _Limits,
    rules: SpcRules,
    improvement: Improvement | None,
) -> list[Point]:
    signals = detect(values, limits, rules)
    points = []
    for i, label in enumerate(labels):
        has_limits = values[i] is not None and limits.centre[i] is not None
        points.append(
            Point(
                label=label,
                value=values[i],
                centre=limits.centre[i],
                lower=limits.lower[i],
                upper=limits.upper[i],
                lower_two_thirds=limits.lower_two_thirds[i],
                upper_two_thirds=limits.upper_two_thirds[i],
                signals=frozenset(signals[i]),
                variation=_variation(signals[i], improvement) if has_limits else None,
            )
        )
    return points


def detect(values: Sequence[float | None], limits: _Limits, rules: SpcRules) -> list[set[Signal]]:
    """The special-cause signals at each point (empty for months with no data or no limits)."""
    found: list[set[Signal]] = [set() for _ in values]
    present = [i for i, v in enumerate(values) if v is not None and limits.centre[i] is not None]
    for i in present:
        value, upper, lower = _f(values[i]), limits.upper[i], limits.lower[i]
        if upper is not None and value > upper:
            found[i].add(Signal(Rule.outside_limits, Side.high))
        if lower is not None and value < lower:
            found[i].add(Signal(Rule.outside_limits, Side.low))
    _runs(values, limits, present, rules.run_length, found)
    _trends(values, present, rules.trend_length, found)
    _two_of_three(values, limits, present, found)
    return found


def _side_of_centre(value: float, centre: float) -> Side | None:
    if value > centre:
        return Side.high
    if value < centre:
        return Side.low
    return None


def _runs(
    values: Sequence[float | None],
    limits: _Limits,
    present: list[int],
    length: int,
    found: list[set[Signal]],
) -> None:
    sides = [_side_of_centre(_f(values[i]), _f(limits.centre[i])) for i in present]
    for start, stop, side in _stretches(sides):
        if side is not None and stop - start >= length:
            for k in range(start, stop):
                found[present[k]].add(Signal(Rule.shift, side))


def _trends(
    values: Sequence[float | None], present: list[int], length: int, found: list[set[Signal]]
) -> None:
    steps: list[Side | None] = []  # step k goes from present[k] to present[k + 1]
    for before, after in pairwise(present):
        steps.append(_side_of_centre(_f(values[after]), _f(values[before])))
    for start, stop, side in _stretches(steps):
        if side is not None and stop - start + 1 >= length:  # n steps join n + 1 points
            for k in range(start, stop + 1):
                found[present[k]].add(Signal(Rule.trend, side))


def _two_of_three(
    values: Sequence[float | None], limits: _Limits, present: list[int], found: list[set[Signal]]
) -> None:
    def beyond(i: int, side: Side) -> bool:
        value = _f(values[i])
        if side is Side.high:
            line = limits.upper_two_thirds[i]
            return line is not None and value > line
        line = limits.lower_two_thirds[i]
        return line is not None and value < line

    for k in range(len(present) - 2):
        window = present[k : k + 3]
        for side in Side:
            hits = [i for i in window if beyond(i, side)]
            if len(hits) >= 2:
                for i in hits:
                    found[i].add(Signal(Rule.two_of_three, side))


def _stretches(items: Sequence[Side | None]) -> list[tuple[int, int, Side | None]]:
    """Maximal runs of equal items as (start, stop, item)."""
    runs: list[tuple[int, int, Side | None]] = []
    start = 0
    for k in range(1, len(items) + 1):
        if k == len(items) or items[k] != items[start]:
            runs.append((start, k, items[start]))
            start = k
    return runs


def _variation(signals: set[Signal], improvement: Improvement | None) -> Variation:
    sides = {signal.side for signal in signals}
    if not sides:
        return Variation.common_cause
    if improvement is None or len(sides) > 1:
        return Variation.neither
    (side,) = sides
    better = Side.high if improvement is Improvement.up else Side.low
    return Variation.improvement if side is better else Variation.concern


def _f(value: float | None) -> float:
    assert value is not None
    return value
