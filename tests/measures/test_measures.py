"""Every measure on a small world counted by hand (docs/measures.md has the rules).

The world is one unit in March and April 2026 (plus a second unit that must never be counted).
Each woman's comment says what she should count as; the expected values below are those counts.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from app.config import MeasuresSettings
from app.measures.months import Month
from app.measures.queries import Count, Scope, compute
from tests.measures.world import World

MARCH, APRIL = "2026-03", "2026-04"


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def build(session: Session) -> World:
    w = World(session)

    # Referrals first: readings name the referral their test led to.
    a, c, f = w.woman(), w.woman(), w.woman()
    c36, e = w.woman(), w.woman()
    r1 = w.referral(a, at("2026-03-10T10:00"), quit_date="2026-03-20", last_stage="12_week")
    r2 = w.referral(c, at("2026-03-12T10:00"), closed=True)  # opted out
    r2b = w.referral(c, at("2026-03-20T10:00"), quit_date="2026-04-02")  # referred again
    # 23:30 UTC on 31 March is 00:30 on 1 April in England (BST): an April referral.
    r3 = w.referral(f, at("2026-03-31T23:30"))
    r4 = w.referral(c36, at("2026-03-07T10:00"))

    # --- bookings in March (7 women) and April (1) ---
    # A: CO 6 although she says she does not smoke -> smoker by CO; tested.
    w.reading(
        a, "2026-03-10", kind="booking", co_ppm=6, status="non_smoker", advice=True, referral=r1
    )
    #    a second positive test in March, without advice: A still counts once, as advised.
    w.reading(a, "2026-03-20", co_ppm=7, status="smoker", advice=False, referral=r1)
    # B: CO 1, non-smoker -> known non-smoker; tested.
    b = w.woman()
    w.reading(b, "2026-03-11", kind="booking", co_ppm=1, status="non_smoker")
    # C: declined the test, says she smokes -> smoker by self-report; not tested.
    w.reading(c, "2026-03-12", kind="booking", status="smoker", referral=r2)
    # D: CO 2 but status unknown -> status unknown (left out of the denominator); tested.
    d = w.woman()
    w.reading(d, "2026-03-13", kind="booking", co_ppm=2, status="unknown")
    # E: booked on 14 March with no test; her test 4 days later is outside the window.
    w.contact(e, "booking", "2026-03-14")
    w.reading(e, "2026-03-18", co_ppm=8, status="smoker")  # positive, not referred, no advice
    # F: declined at booking (status unknown); a test 3 days later is inside the window.
    w.reading(f, "2026-03-15", kind="booking", status="unknown")
    w.reading(f, "2026-03-18", co_ppm=5, status="unknown", advice=False, referral=r3)
    # G: booked on 31 March (CO 1, non-smoker); says she smokes on 2 April, inside the window:
    #    a March booking, smoker. Her 2 April test is an April test.
    g = w.woman()
    w.reading(g, "2026-03-31", kind="booking", co_ppm=1, status="non_smoker")
    w.reading(g, "2026-04-02", status="smoker")
    # H: booked on 1 April: April.
    h = w.woman()
    w.reading(h, "2026-04-01", kind="booking", co_ppm=0, status="non_smoker")

    # --- 36 weeks in March (4 women) ---
    a36 = w.woman()
    w.reading(a36, "2026-03-05", kind="36_weeks", co_ppm=0, status="non_smoker")
    b36 = w.woman()
    w.reading(b36, "2026-03-06", kind="36_weeks", status="ex_smoker")  # declined, known
    w.reading(
        c36, "2026-03-07", kind="36_weeks", co_ppm=12, status="non_smoker", advice=True, referral=r4
    )
    d36 = w.woman()
    w.reading(d36, "2026-03-08", kind="36_weeks", status="unknown")  # declined, unknown

    # --- births: March smoker, non-smoker, unknown; April non-smoker ---
    w.woman(born_on="2026-03-02", satod="smoker")
    w.woman(born_on="2026-03-20", satod="non_smoker")
    w.woman(born_on="2026-03-31", satod="unknown")
    w.woman(born_on="2026-04-01", satod="non_smoker")

    # --- after the birth (born in February) ---
    p1, p2, p3, p4, p5 = (w.woman(born_on="2026-02-20", satod="smoker") for _ in range(5))
    w.postnatal_status(p1, "2026-03-03", "smoker")
    w.postnatal_status(p2, "2026-03-04", "non_smoker")
    w.reading(p2, "2026-03-09", kind="postnatal", co_ppm=5, status="unknown")  # smoker by CO
    w.postnatal_status(p3, "2026-03-05", "unknown")
    w.reading(p4, "2026-03-06", kind="postnatal", co_ppm=1, status="ex_smoker")
    w.postnatal_status(p5, "2026-02-27", "smoker")  # February

    # --- quit attempts, by the month of the quit date ---
    w.event(r1, "treatment_issued", treatment="nrt_patch")
    w.event(r1, "outcome_check", stage="28_day", result="co_confirmed_quit", co_ppm=3)
    w.event(r1, "outcome_check", stage="12_week", result="smoking", co_ppm=15)
    q2 = w.referral(
        w.woman(), at("2026-02-20T10:00"), quit_date="2026-03-05", closed=True, last_stage="28_day"
    )
    w.event(q2, "treatment_issued", treatment="e_cigarette")
    w.event(q2, "outcome_check", stage="28_day", result="lost_to_follow_up", co_ppm=None)
    q3 = w.referral(w.woman(), at("2026-02-25T10:00"), quit_date="2026-03-10")  # no outcome yet
    w.event(q3, "treatment_issued", treatment="nrt_short_acting")
    q4 = w.referral(w.woman(), at("2026-02-25T10:00"), quit_date="2026-03-15", last_stage="12_week")
    w.event(q4, "outcome_check", stage="12_week", result="self_reported_quit", co_ppm=None)
    q5 = w.referral(w.woman(), at("2026-02-01T10:00"), quit_date="2026-02-25", last_stage="28_day")
    w.event(q5, "outcome_check", stage="28_day", result="co_confirmed_quit", co_ppm=2)
    del r2b  # its quit date (2 April) makes it April's only attempt

    # --- staff: see test_staff_measures ---
    s1 = w.staff()
    w.training(s1, "co_monitoring", "2025-06-01", "2026-02-15")
    w.training(s1, "very_brief_advice", "2026-01-10")
    s2 = w.staff(started_on="2026-02-01")
    w.training(s2, "co_monitoring", "2026-02-20", "2027-02-20")
    w.training(s2, "very_brief_advice", "2026-01-01", "2026-03-31")  # expires on 31 March
    s3 = w.staff(started_on="2025-01-01", left_on="2026-03-01")
    w.training(s3, "very_brief_advice", "2025-12-01")

    # --- feedback ---
    for rating in (5, 4, 2, 3):
        w.feedback(rating, "2026-03-16")
    w.feedback(1, "2026-04-01")
    w.feedback(5, "2026-02-28")

    # --- another unit: never counted ---
    other = World(session)
    x = other.woman()
    other.reading(x, "2026-03-10", kind="booking", co_ppm=30, status="smoker")
    other.woman(born_on="2026-03-10", satod="smoker")
    other.feedback(1, "2026-03-10")
    other.staff()
    return w


@pytest.fixture
def counted(session: Session) -> dict[tuple[str, str], Count]:
    world = build(session)
    found = compute(
        session,
        scope=Scope([world.unit.id], Month(2026, 1), Month(2026, 4)),
        settings=MeasuresSettings(),
    )
    assert {unit for unit, _, _ in found} == {world.unit.id}
    return {(month, code): count for (_, month, code), count in found.items()}


EXPECTED = [
    # booking: A, B, C, D, E, F, G; smokers A, C, F, G; unknown D, E; tested A, B, D, F, G
    (MARCH, "smoking_at_booking", Count(4, 5, 2)),
    (MARCH, "co_test_at_booking", Count(5, 7)),
    (APRIL, "smoking_at_booking", Count(0, 1, 0)),
    (APRIL, "co_test_at_booking", Count(1, 1)),
    # 36 weeks: smoker C36 (CO 12); known A36, B36, C36; unknown D36; tested A36, C36
    (MARCH, "smoking_at_36_weeks", Count(1, 3, 1)),
    (MARCH, "co_test_at_36_weeks", Count(2, 4)),
    (MARCH, "smoking_at_delivery", Count(1, 2, 1)),
    (APRIL, "smoking_at_delivery", Count(0, 1, 0)),
    # positive in March: A, E, F, C36, P2 (postnatal CO 5); advised A, C36;
    # referred A, F, C36. Identified as smoking: those five and C (self-report).
    (MARCH, "brief_advice_when_positive", Count(2, 5)),
    (MARCH, "elevated_co_referred", Count(3, 5)),
    (MARCH, "smokers_referred", Count(4, 6)),
    (APRIL, "smokers_referred", Count(0, 1)),  # G says she smokes on 2 April: no referral
    # after the birth: P1 smoker, P2 smoker (by CO), P3 unknown, P4 ex-smoker
    (MARCH, "smoking_after_birth", Count(2, 3, 1)),
    # referred in March: A (quit date), C twice (one with a quit date), C36 (none)
    (MARCH, "quit_date_set", Count(2, 3)),
    (APRIL, "quit_date_set", Count(0, 1)),  # F, referred 00:30 on 1 April (BST)
    # quit dates in March: R1 (28-day quit, 12-week smoking, open), Q2 (lost, closed),
    # Q3 (open, no outcome), Q4 (12-week quit recorded, 28-day skipped, open)
    (MARCH, "quit_at_4_weeks", Count(1, 3, 1)),
    (MARCH, "quit_at_12_weeks", Count(1, 3, 1)),
    (MARCH, "quit_at_end_of_pregnancy", Count(0, 1, 3)),
    (MARCH, "nrt_prescribed", Count(2, 4)),
    (APRIL, "quit_at_4_weeks", Count(0, 0, 1)),
    (APRIL, "nrt_prescribed", Count(0, 1)),
    ("2026-02", "quit_at_4_weeks", Count(1, 1, 0)),  # Q5
    (MARCH, "feedback_positive", Count(2, 4)),
    (APRIL, "feedback_positive", Count(0, 1)),
    ("2026-02", "feedback_positive", Count(1, 1)),
]


@pytest.mark.parametrize(("month", "code", "expected"), EXPECTED)
def test_each_measure_matches_the_hand_count(
    counted: dict[tuple[str, str], Count], month: str, code: str, expected: Count
) -> None:
    assert counted[(month, code)] == expected


def test_staff_measures_count_staff_in_post_with_in_date_training(
    counted: dict[tuple[str, str], Count],
) -> None:
    # January: S1, S3 in post; CO: S1; VBA: S1, S3.
    # February: S1, S2, S3; CO: S2 (S1's expired on 15 Feb); VBA: all three.
    # March: S1, S2 (S3 left on 1 March); CO: S2; VBA: S1 (S2's expires on 31 March).
    assert [counted[(m, "staff_trained_co_monitoring")] for m in ("2026-01", "2026-02", MARCH)] == [
        Count(1, 2),
        Count(1, 3),
        Count(1, 2),
    ]
    assert [counted[(m, "staff_trained_brief_advice")] for m in ("2026-01", "2026-02", MARCH)] == [
        Count(2, 2),
        Count(3, 3),
        Count(1, 2),
    ]


def test_a_month_without_records_has_no_row_and_no_division(
    counted: dict[tuple[str, str], Count],
) -> None:
    assert ("2026-01", "smoking_at_booking") not in counted
    assert Count(0, 0, 1).proportion is None
    assert Count(1, 4).proportion == 0.25


def test_every_unit_at_once_counts_each_unit_apart(session: Session) -> None:
    world = build(session)
    found = compute(
        session, scope=Scope(None, Month(2026, 3), Month(2026, 3)), settings=MeasuresSettings()
    )
    mine = found[(world.unit.id, MARCH, "smoking_at_booking")]
    others = {
        k: v for k, v in found.items() if k[0] != world.unit.id and k[2] == "smoking_at_booking"
    }
    assert mine == Count(4, 5, 2)
    assert list(others.values()) == [Count(1, 1, 0)]


def test_only_the_measures_asked_for_are_counted(session: Session) -> None:
    world = build(session)
    found = compute(
        session,
        scope=Scope([world.unit.id], Month(2026, 3), Month(2026, 3)),
        settings=MeasuresSettings(),
        codes=["feedback_positive"],
    )
    assert found == {(world.unit.id, MARCH, "feedback_positive"): Count(2, 4)}


def test_the_thresholds_are_settings(session: Session) -> None:
    world = build(session)
    scope = Scope([world.unit.id], Month(2026, 3), Month(2026, 3))
    usual = compute(session, scope=scope, settings=MeasuresSettings())
    strict = compute(
        session,
        scope=scope,
        settings=MeasuresSettings(
            elevated_co_ppm=7, status_window_days=4, positive_feedback_from=5
        ),
    )
    key = (world.unit.id, MARCH)
    assert usual[(*key, "smoking_at_booking")] == Count(4, 5, 2)
    # At 7 ppm A (6) and F (5) are no longer smokers by CO; F's status becomes unknown.
    # A 4-day window brings E's test (8 ppm, smoker) in: E is a smoker and tested.
    assert strict[(*key, "smoking_at_booking")] == Count(3, 5, 2)
    assert strict[(*key, "co_test_at_booking")] == Count(6, 7)
    assert strict[(*key, "feedback_positive")] == Count(1, 4)


# --- the edge cases, one at a time ---------------------------------------------------------------


def _booking(session: Session, world: World) -> Count:
    found = compute(
        session,
        scope=Scope([world.unit.id], Month(2026, 5), Month(2026, 6)),
        settings=MeasuresSettings(),
        codes=["smoking_at_booking", "co_test_at_booking"],
    )
    return found[(world.unit.id, "2026-05", "smoking_at_booking")]


def test_a_test_4_days_from_the_booking_does_not_count_and_3_days_does(session: Session) -> None:
    w = World(session)
    late, early = w.woman(), w.woman()
    w.contact(late, "booking", "2026-05-10")
    w.reading(late, "2026-05-14", co_ppm=9, status="smoker")  # 4 days after: not at booking
    w.contact(early, "booking", "2026-05-10")
    w.reading(early, "2026-05-07", co_ppm=9, status="smoker")  # 3 days before: at booking
    assert _booking(session, w) == Count(1, 1, 1)


def test_unknown_status_is_left_out_of_the_denominator_and_counted_apart(session: Session) -> None:
    w = World(session)
    for status in ("unknown", "unknown", "non_smoker"):
        w.reading(w.woman(), "2026-05-10", kind="booking", co_ppm=1, status=status)
    count = _booking(session, w)
    assert count == Count(0, 1, 2)
    assert count.proportion == 0.0


def test_a_declined_test_is_no_co_test_but_her_own_word_still_counts(session: Session) -> None:
    w = World(session)
    w.reading(w.woman(), "2026-05-10", kind="booking", status="smoker")  # declined
    found = compute(
        session,
        scope=Scope([w.unit.id], Month(2026, 5), Month(2026, 5)),
        settings=MeasuresSettings(),
    )
    assert found[(w.unit.id, "2026-05", "smoking_at_booking")] == Count(1, 1, 0)
    assert found[(w.unit.id, "2026-05", "co_test_at_booking")] == Count(0, 1)


def test_a_booking_on_the_last_day_of_a_month_belongs_to_it(session: Session) -> None:
    w = World(session)
    w.reading(w.woman(), "2026-05-31", kind="booking", co_ppm=1, status="non_smoker")
    w.reading(w.woman(), "2026-06-01", kind="booking", co_ppm=5, status="non_smoker")
    found = compute(
        session,
        scope=Scope([w.unit.id], Month(2026, 5), Month(2026, 6)),
        settings=MeasuresSettings(),
        codes=["smoking_at_booking"],
    )
    assert found[(w.unit.id, "2026-05", "smoking_at_booking")] == Count(0, 1, 0)
    assert found[(w.unit.id, "2026-06", "smoking_at_booking")] == Count(1, 1, 0)
