"""The referral rules at their edges: thresholds, dates, history, and the advice given."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from referral.rules import (
    AdviceCode,
    Policy,
    ReadingFacts,
    ReadingOutcome,
    ReasonCode,
    SmokingStatus,
    evaluate,
)

POLICY = Policy(version="2026-11-1")
TESTED_ON = dt.date(2026, 6, 15)

R = ReasonCode
A = AdviceCode


def facts(**overrides: Any) -> ReadingFacts:
    values: dict[str, Any] = {
        "outcome": "measured",
        "co_ppm": 1,
        "smoking_status": "non_smoker",
        "tested_on": TESTED_ON,
    }
    values.update(overrides)
    return ReadingFacts(**values)


def codes(facts: ReadingFacts, policy: Policy = POLICY) -> tuple[tuple[R, ...], tuple[A, ...]]:
    decision = evaluate(facts, policy)
    assert decision.refer == bool(decision.reasons)
    return decision.reasons, tuple(advice.code for advice in decision.advice)


@pytest.mark.parametrize(
    ("co_ppm", "reasons", "advice"),
    [
        (0, (), (A.co_normal,)),
        (2, (), (A.co_normal,)),
        (3, (), (A.co_source_check,)),
        (4, (R.co_elevated,), (A.co_source_check, A.referral_made)),
        (10, (R.co_elevated,), (A.co_source_check, A.referral_made)),
        (11, (R.co_elevated,), (A.co_poisoning_risk, A.co_source_check, A.referral_made)),
        (72, (R.co_elevated,), (A.co_poisoning_risk, A.co_source_check, A.referral_made)),
        (
            73,
            (R.co_elevated,),
            (A.co_urgent, A.co_poisoning_risk, A.co_source_check, A.referral_made),
        ),
    ],
)
@pytest.mark.parametrize("status", ["non_smoker", "ex_smoker"])
def test_says_she_does_not_smoke(
    status: str, co_ppm: int, reasons: tuple[R, ...], advice: tuple[A, ...]
) -> None:
    assert codes(facts(co_ppm=co_ppm, smoking_status=status)) == (reasons, advice)


@pytest.mark.parametrize(
    ("co_ppm", "reasons", "advice"),
    [
        (0, (R.self_reported_smoker,), (A.referral_made,)),
        (2, (R.self_reported_smoker,), (A.referral_made,)),
        (3, (R.self_reported_smoker,), (A.referral_made,)),
        (4, (R.co_elevated, R.self_reported_smoker), (A.referral_made,)),
        (10, (R.co_elevated, R.self_reported_smoker), (A.referral_made,)),
        (11, (R.co_elevated, R.self_reported_smoker), (A.referral_made,)),
        (72, (R.co_elevated, R.self_reported_smoker), (A.referral_made,)),
        (73, (R.co_elevated, R.self_reported_smoker), (A.co_urgent, A.referral_made)),
    ],
)
def test_self_reported_smoker(co_ppm: int, reasons: tuple[R, ...], advice: tuple[A, ...]) -> None:
    assert codes(facts(co_ppm=co_ppm, smoking_status="smoker")) == (reasons, advice)


@pytest.mark.parametrize(
    ("co_ppm", "reasons", "advice"),
    [
        (3, (), (A.co_normal,)),
        (4, (R.co_elevated,), (A.referral_made,)),
        (11, (R.co_elevated,), (A.referral_made,)),
        (73, (R.co_elevated,), (A.co_urgent, A.referral_made)),
    ],
)
def test_unknown_status_gets_no_source_advice(
    co_ppm: int, reasons: tuple[R, ...], advice: tuple[A, ...]
) -> None:
    assert codes(facts(co_ppm=co_ppm, smoking_status="unknown")) == (reasons, advice)


@pytest.mark.parametrize(
    ("days_ago", "reasons", "advice"),
    [
        (0, (R.recently_stopped,), (A.co_normal, A.referral_made)),
        (13, (R.recently_stopped,), (A.co_normal, A.referral_made)),
        (14, (R.recently_stopped,), (A.co_normal, A.referral_made)),
        (15, (), (A.co_normal,)),
        (-1, (), (A.co_normal,)),  # a stop date after the test is a plan, not a quit
    ],
)
def test_recently_stopped(days_ago: int, reasons: tuple[R, ...], advice: tuple[A, ...]) -> None:
    stopped = TESTED_ON - dt.timedelta(days=days_ago)
    result = codes(facts(smoking_status="ex_smoker", co_ppm=1, stopped_smoking_on=stopped))
    assert result == (reasons, advice)


def test_recently_stopped_window_comes_from_the_policy() -> None:
    policy = Policy(version="v", recently_stopped_days=28)
    stopped = TESTED_ON - dt.timedelta(days=28)
    assert codes(facts(smoking_status="ex_smoker", stopped_smoking_on=stopped), policy)[0] == (
        R.recently_stopped,
    )


@pytest.mark.parametrize(
    ("outcome", "status", "reasons", "advice"),
    [
        ("declined", "smoker", (R.self_reported_smoker,), (A.declined_test, A.referral_made)),
        ("declined", "non_smoker", (), (A.declined_test,)),
        ("declined", "unknown", (), (A.declined_test,)),
        ("no_monitor", "smoker", (R.self_reported_smoker,), (A.no_monitor, A.referral_made)),
        ("no_monitor", "unknown", (), (A.no_monitor,)),
        ("no_monitor", "ex_smoker", (), (A.no_monitor,)),
    ],
)
def test_no_reading(
    outcome: str, status: str, reasons: tuple[R, ...], advice: tuple[A, ...]
) -> None:
    assert codes(facts(outcome=outcome, co_ppm=None, smoking_status=status)) == (reasons, advice)


@pytest.mark.parametrize(
    ("earlier", "status", "reasons", "advice"),
    [
        (
            ("uncontactable",),
            "non_smoker",
            (R.previously_not_engaged,),
            (A.co_normal, A.referral_made),
        ),
        (
            ("not_engaged",),
            "non_smoker",
            (R.previously_not_engaged,),
            (A.co_normal, A.referral_made),
        ),
        (
            ("completed", "not_engaged"),
            "smoker",
            (R.self_reported_smoker, R.previously_not_engaged),
            (A.referral_made,),
        ),
        (("completed",), "non_smoker", (), (A.co_normal,)),
        (("opted_out",), "non_smoker", (), (A.co_normal, A.offer_referral)),
        (("opted_out",), "smoker", (R.self_reported_smoker,), (A.referral_made,)),
        (
            ("opted_out", "uncontactable"),
            "non_smoker",
            (R.previously_not_engaged,),
            (A.co_normal, A.referral_made),
        ),
    ],
)
def test_earlier_referrals_in_this_pregnancy(
    earlier: tuple[str, ...], status: str, reasons: tuple[R, ...], advice: tuple[A, ...]
) -> None:
    result = codes(facts(smoking_status=status, earlier_referral_outcomes=earlier))
    assert result == (reasons, advice)


def test_open_referral_still_refers_and_says_the_result_was_added() -> None:
    decision = evaluate(facts(co_ppm=8, smoking_status="smoker", has_open_referral=True), POLICY)
    assert decision.refer
    assert decision.reasons == (R.co_elevated, R.self_reported_smoker)
    assert [a.code for a in decision.advice] == [A.referral_made]
    assert "already has an open referral" in decision.advice[0].text


def test_open_referral_means_no_new_offer_after_an_opt_out() -> None:
    result = codes(facts(earlier_referral_outcomes=("opted_out",), has_open_referral=True))
    assert result == ((), (A.co_normal,))


@pytest.mark.parametrize(
    ("co_ppm", "status", "reasons", "advice"),
    [
        (4, "non_smoker", (), (A.co_source_check,)),
        (4, "unknown", (), (A.co_normal,)),
        (4, "smoker", (R.self_reported_smoker,), (A.referral_made,)),
        (5, "non_smoker", (R.co_elevated,), (A.co_source_check, A.referral_made)),
        (5, "unknown", (R.co_elevated,), (A.referral_made,)),
    ],
)
def test_custom_threshold_moves_the_edge(
    co_ppm: int, status: str, reasons: tuple[R, ...], advice: tuple[A, ...]
) -> None:
    policy = Policy(version="trust-5ppm", threshold_ppm=5)
    assert codes(facts(co_ppm=co_ppm, smoking_status=status), policy) == (reasons, advice)


def test_advice_text_uses_the_policy_thresholds() -> None:
    policy = Policy(version="v", threshold_ppm=5)
    decision = evaluate(facts(co_ppm=2, smoking_status="unknown"), policy)
    assert "below 5 ppm" in decision.advice[0].text


def test_gas_safety_numbers_given_for_possible_poisoning() -> None:
    decision = evaluate(facts(co_ppm=11), POLICY)
    text = decision.advice[0].text
    assert decision.advice[0].code is A.co_poisoning_risk
    assert "0800 300 363" in text
    assert "0800 111 999" in text


def test_urgent_advice_names_toxbase() -> None:
    assert "TOXBASE" in evaluate(facts(co_ppm=73), POLICY).advice[0].text


def test_policy_version_is_carried_into_the_decision() -> None:
    assert evaluate(facts(), Policy(version="2026-11-1")).policy_version == "2026-11-1"
    assert evaluate(facts(), Policy(version="trust-b-3")).policy_version == "trust-b-3"


def test_strings_are_accepted_for_enum_fields() -> None:
    reading = facts(outcome="declined", co_ppm=None, smoking_status="smoker")
    assert reading.outcome is ReadingOutcome.declined
    assert reading.smoking_status is SmokingStatus.smoker


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"outcome": "measured", "co_ppm": None}, "co_ppm"),
        ({"outcome": "declined", "co_ppm": 5}, "co_ppm"),
        ({"outcome": "no_monitor", "co_ppm": 0}, "co_ppm"),
        ({"co_ppm": -1}, "co_ppm"),
        ({"co_ppm": 501}, "co_ppm"),
        ({"outcome": "refused"}, "outcome"),
        ({"smoking_status": "vaper"}, "smoking_status"),
        ({"earlier_referral_outcomes": ("pending",)}, "earlier_referral_outcomes"),
        ({"earlier_referral_outcomes": ("lost",)}, "earlier_referral_outcomes"),
    ],
)
def test_invalid_facts_raise_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        facts(**overrides)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"version": ""}, "version"),
        ({"version": "x" * 33}, "version"),
        ({"threshold_ppm": 0}, "threshold_ppm"),
        ({"threshold_ppm": -4}, "threshold_ppm"),
        ({"source_check_ppm": -1}, "source_check_ppm"),
        ({"poisoning_risk_above_ppm": -1}, "poisoning_risk_above_ppm"),
        ({"urgent_above_ppm": -1}, "urgent_above_ppm"),
        ({"urgent_above_ppm": 500}, "urgent_above_ppm"),
        ({"recently_stopped_days": -1}, "recently_stopped_days"),
        ({"poisoning_risk_above_ppm": 72}, "poisoning_risk_above_ppm"),
        ({"source_check_ppm": 11}, "source_check_ppm"),
        ({"threshold_ppm": 4.5}, "threshold_ppm"),
    ],
)
def test_nonsense_policy_raises_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {"version": "v"} | overrides
    with pytest.raises(ValueError, match=rf"^{field}: "):
        Policy(**values)


@given(
    co_ppm=st.integers(min_value=0, max_value=500),
    status=st.sampled_from(list(SmokingStatus)),
    threshold_ppm=st.integers(min_value=1, max_value=20),
)
def test_co_elevated_iff_at_or_above_threshold(
    co_ppm: int, status: SmokingStatus, threshold_ppm: int
) -> None:
    policy = Policy(version="v", threshold_ppm=threshold_ppm)
    decision = evaluate(facts(co_ppm=co_ppm, smoking_status=status), policy)
    assert (ReasonCode.co_elevated in decision.reasons) == (co_ppm >= threshold_ppm)
    assert decision.refer == bool(decision.reasons)
    assert len(set(decision.reasons)) == len(decision.reasons)
    assert (AdviceCode.referral_made in [a.code for a in decision.advice]) == decision.refer
