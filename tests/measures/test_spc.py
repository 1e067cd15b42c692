"""SPC against worked examples: the limits by hand, and every rule firing and not firing.

Most examples share one baseline: 11, 9, 11, 9, 11, 9, 11, 9 (months 0-7), so the mean is 10,
every moving range is 2, the limits are 10 +/- 2.66 x 2 = 4.68 to 15.32, and two thirds of the
way to them is 10 +/- 3.5467 (6.4533 and 13.5467). Later points are judged against them.
"""

from __future__ import annotations

import math

import pytest

from app.measures.definitions import Improvement
from app.measures.spc import ChartKind, Rule, Side, Signal, SpcRules, Variation, p_chart, xmr

BASELINE = [11.0, 9.0, 11.0, 9.0, 11.0, 9.0, 11.0, 9.0]


def chart_of(after: list[float | None], **options: object) -> list[frozenset[Signal]]:
    values: list[float | None] = [*BASELINE, *after]
    chart = xmr(
        [f"m{i}" for i in range(len(values))],
        values,
        baseline=range(len(BASELINE)),
        **options,  # type: ignore[arg-type]
    )
    return [p.signals for p in chart.points[len(BASELINE) :]]


def rules_in(signals: list[frozenset[Signal]]) -> set[Rule]:
    return {s.rule for point in signals for s in point}


# --- XmR limits --------------------------------------------------------------------------------


def test_xmr_limits_by_hand() -> None:
    # Baseline 10, 12, 11, 13, 12, 11: mean 69 / 6 = 11.5; moving ranges 2, 1, 2, 1, 1:
    # mean 7 / 5 = 1.4; limits 11.5 +/- 2.66 x 1.4 = 11.5 +/- 3.724.
    values: list[float | None] = [10, 12, 11, 13, 12, 11, 30]
    chart = xmr([str(i) for i in range(7)], values, baseline=range(6))
    assert chart.kind is ChartKind.xmr
    assert chart.centre == pytest.approx(11.5)
    assert chart.mean_moving_range == pytest.approx(1.4)
    last = chart.points[-1]
    assert (last.lower, last.upper) == (pytest.approx(7.776), pytest.approx(15.224))
    assert last.upper_two_thirds == pytest.approx(11.5 + 3.724 * 2 / 3)
    assert last.moving_range == 19
    assert chart.points[0].moving_range is None
    assert last.signals == {Signal(Rule.outside_limits, Side.high)}
    assert all(not p.signals for p in chart.points[:-1])
    assert chart.baseline == (0, 6)


def test_without_a_baseline_every_point_sets_the_limits() -> None:
    chart = xmr(["a", "b", "c"], [1.0, 3.0, 2.0])
    assert chart.centre == pytest.approx(2.0)
    assert chart.mean_moving_range == pytest.approx(1.5)  # (2 + 1) / 2
    assert chart.points[0].upper == pytest.approx(2.0 + 2.66 * 1.5)


def test_a_month_without_data_is_skipped_not_zero() -> None:
    chart = xmr(["a", "b", "c", "d"], [10.0, None, 12.0, 11.0])
    assert chart.centre == pytest.approx(11.0)
    assert [p.moving_range for p in chart.points] == [None, None, 2.0, 1.0]
    assert chart.points[1].variation is None and not chart.points[1].signals
    assert chart.latest is chart.points[3]


def test_fewer_than_two_points_give_no_limits() -> None:
    chart = xmr(["a", "b"], [5.0, None])
    assert chart.centre is None
    assert chart.points[0].upper is None and chart.points[0].variation is None


# --- the rules ---------------------------------------------------------------------------------


def test_a_point_outside_the_limits_fires_and_one_inside_does_not() -> None:
    assert chart_of([15.4]) == [{Signal(Rule.outside_limits, Side.high)}]
    assert chart_of([4.6]) == [{Signal(Rule.outside_limits, Side.low)}]
    assert chart_of([15.3]) == [frozenset()]  # below 15.32, and alone beyond two thirds


def test_a_run_of_seven_on_one_side_fires() -> None:
    signals = chart_of([12.0] * 7)
    assert all(point == {Signal(Rule.shift, Side.high)} for point in signals)


def test_a_run_of_six_does_not_unless_the_setting_says_six() -> None:
    assert rules_in(chart_of([12.0] * 6)) == set()
    six = chart_of([12.0] * 6, rules=SpcRules(run_length=6))
    assert all(point == {Signal(Rule.shift, Side.high)} for point in six)


def test_a_point_on_the_centre_line_ends_a_run() -> None:
    assert rules_in(chart_of([12, 12, 12, 10, 12, 12, 12])) == set()


def test_seven_points_rising_fire_a_trend() -> None:
    # The last baseline point (9) starts it: 9, 9.5, 10, 10.5, 11, 11.5, 12.
    values: list[float | None] = [*BASELINE, 9.5, 10, 10.5, 11, 11.5, 12]
    chart = xmr([str(i) for i in range(len(values))], values, baseline=range(8))
    flagged = [i for i, p in enumerate(chart.points) if p.signals]
    assert flagged == list(range(7, 14))
    assert all(chart.points[i].signals == {Signal(Rule.trend, Side.high)} for i in flagged)


def test_six_rising_or_a_repeated_value_is_no_trend() -> None:
    assert rules_in(chart_of([9.5, 10, 10.5, 11, 11.4])) == set()  # 9 and five more: six
    assert rules_in(chart_of([9.5, 10, 10, 10.5, 11, 11.5, 12])) == set()


def test_seven_falling_fire_a_trend_low() -> None:
    values: list[float | None] = [*BASELINE[:-1], 11.0, 10.5, 10, 9.5, 9, 8.5, 8]
    chart = xmr([str(i) for i in range(len(values))], values, baseline=range(6))
    assert {s for p in chart.points for s in p.signals} == {Signal(Rule.trend, Side.low)}


def test_two_of_three_beyond_two_thirds_fire() -> None:
    assert chart_of([14, 10, 14]) == [
        {Signal(Rule.two_of_three, Side.high)},
        frozenset(),
        {Signal(Rule.two_of_three, Side.high)},
    ]


def test_two_of_four_or_on_opposite_sides_do_not() -> None:
    assert rules_in(chart_of([14, 10, 10, 14])) == set()
    assert rules_in(chart_of([14, 10, 6])) == set()


# --- what a signal means --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("improvement", "value", "expected"),
    [
        (Improvement.up, 16.0, Variation.improvement),
        (Improvement.down, 16.0, Variation.concern),
        (Improvement.down, 4.0, Variation.improvement),
        (None, 16.0, Variation.neither),
        (Improvement.up, 10.5, Variation.common_cause),
    ],
)
def test_variation_follows_the_direction_of_improvement(
    improvement: Improvement | None, value: float, expected: Variation
) -> None:
    values: list[float | None] = [*BASELINE, value]
    chart = xmr([str(i) for i in range(9)], values, baseline=range(8), improvement=improvement)
    assert chart.points[-1].variation is expected
    assert chart.latest is chart.points[-1]


# --- p-charts -----------------------------------------------------------------------------------


def test_p_chart_limits_by_hand() -> None:
    # p = (10 + 20 + 15 + 60) / (100 + 200 + 100 + 200) = 105 / 600 = 0.175.
    # n = 100: sigma = sqrt(0.175 x 0.825 / 100) = 0.0379967 -> 0.0610 to 0.2890.
    # n = 200: sigma = 0.0268677 -> 0.0944 to 0.2556; 60 / 200 = 0.30 is above it.
    chart = p_chart(list("abcd"), [10, 20, 15, 60], [100, 200, 100, 200])
    assert chart.kind is ChartKind.p
    assert chart.centre == pytest.approx(0.175)
    first, second, _, last = chart.points
    assert (first.lower, first.upper) == (
        pytest.approx(0.061010, abs=1e-6),
        pytest.approx(0.288990, abs=1e-6),
    )
    assert (second.lower, second.upper) == (
        pytest.approx(0.094397, abs=1e-6),
        pytest.approx(0.255603, abs=1e-6),
    )
    assert second.lower_two_thirds == pytest.approx(0.175 - 2 * math.sqrt(0.175 * 0.825 / 200))
    assert (last.value, last.numerator, last.denominator) == (0.30, 60, 200)
    assert last.signals == {Signal(Rule.outside_limits, Side.high)}
    # 0.10 of 200 is beyond two sigma low, but 0.30 is high: no 2-of-3 on one side.
    assert all(not p.signals for p in chart.points[:3])


def test_p_chart_limits_stay_within_0_and_1_and_skip_empty_months() -> None:
    chart = p_chart(list("abc"), [0, 1, 0], [10, 40, 0])
    assert chart.centre == pytest.approx(1 / 50)
    assert chart.points[0].lower == 0.0
    assert chart.points[2].value is None and chart.points[2].upper is None


def test_p_chart_with_a_fixed_baseline() -> None:
    chart = p_chart(list("abc"), [5, 15, 90], [100, 100, 100], baseline=range(2))
    assert chart.centre == pytest.approx(0.10)
    assert chart.points[2].signals == {Signal(Rule.outside_limits, Side.high)}
    assert chart.baseline == (0, 2)


def test_p_chart_refuses_a_numerator_above_its_denominator() -> None:
    with pytest.raises(ValueError, match="numerator"):
        p_chart(["a"], [3], [2])


def test_a_baseline_outside_the_points_is_refused() -> None:
    with pytest.raises(ValueError, match="baseline"):
        xmr(["a", "b"], [1.0, 2.0], baseline=range(1, 5))
