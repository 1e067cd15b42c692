"""The referral state machine: every legal move, a sample of illegal ones, and bad event data."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from referral.lifecycle import (
    Assessment,
    Close,
    ContactAttempt,
    Event,
    EventKind,
    IllegalTransition,
    InvalidEvent,
    LifecyclePolicy,
    NotEngaged,
    OptOut,
    OutcomeCheck,
    OutcomeResult,
    OutcomeStage,
    QuitDateSet,
    ReasonAdded,
    ReferralState,
    ReferralStatus,
    TreatmentIssued,
    allowed_events,
    apply,
    replay,
)

S = ReferralStatus
POLICY = LifecyclePolicy()
OPENED_AT = dt.datetime(2026, 6, 1, 10, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 6, 2, 11, 0, tzinfo=dt.UTC)
QUIT_DATE = dt.date(2026, 6, 10)

_LAST_STAGE = {
    S.outcome_28_day: OutcomeStage.day_28,
    S.outcome_12_week: OutcomeStage.week_12,
    S.outcome_end_of_pregnancy: OutcomeStage.end_of_pregnancy,
    S.outcome_after_birth: OutcomeStage.after_birth,
}
_HAS_QUIT_DATE = {S.quit_date_set, *_LAST_STAGE}
_CLOSED = {S.opted_out, S.uncontactable, S.not_engaged, S.completed}


def state(status: ReferralStatus = S.pending, **overrides: Any) -> ReferralState:
    values: dict[str, Any] = {
        "opened_at": OPENED_AT,
        "status": status,
        "quit_date": QUIT_DATE if status in _HAS_QUIT_DATE else None,
        "last_outcome_stage": _LAST_STAGE.get(status),
    }
    values.update(overrides)
    return ReferralState(**values)


def outcome(stage: str, result: str = "smoking", co_ppm: int | None = None) -> OutcomeCheck:
    return OutcomeCheck(stage=OutcomeStage(stage), result=OutcomeResult(result), co_ppm=co_ppm)


CALL = ContactAttempt(reached=True)
MISSED = ContactAttempt(reached=False)
OPT_OUT = OptOut(reason="does not want support")
NRT = TreatmentIssued(treatment="nrt_patch")
REASON = ReasonAdded(reasons=("co_elevated",))

LEGAL: list[tuple[ReferralStatus, Event, ReferralStatus]] = [
    (S.pending, CALL, S.contacted),
    (S.pending, MISSED, S.pending),
    (S.pending, OPT_OUT, S.opted_out),
    (S.pending, REASON, S.pending),
    (S.contacted, MISSED, S.contacted),
    (S.contacted, Assessment(), S.engaged),
    (S.contacted, OPT_OUT, S.opted_out),
    (S.contacted, NotEngaged(), S.not_engaged),
    (S.contacted, REASON, S.contacted),
    (S.engaged, CALL, S.engaged),
    (S.engaged, NRT, S.engaged),
    (S.engaged, QuitDateSet(QUIT_DATE), S.quit_date_set),
    (S.engaged, OPT_OUT, S.opted_out),
    (S.engaged, NotEngaged(), S.not_engaged),
    (S.engaged, REASON, S.engaged),
    (S.quit_date_set, CALL, S.quit_date_set),
    (S.quit_date_set, NRT, S.quit_date_set),
    (S.quit_date_set, QuitDateSet(dt.date(2026, 6, 20)), S.quit_date_set),
    (S.quit_date_set, outcome("28_day", "co_confirmed_quit", 3), S.outcome_28_day),
    (S.quit_date_set, outcome("12_week"), S.outcome_12_week),
    (S.quit_date_set, outcome("end_of_pregnancy"), S.outcome_end_of_pregnancy),
    (S.quit_date_set, outcome("after_birth"), S.completed),
    (S.quit_date_set, OPT_OUT, S.opted_out),
    (S.quit_date_set, REASON, S.quit_date_set),
    (S.outcome_28_day, CALL, S.outcome_28_day),
    (S.outcome_28_day, NRT, S.outcome_28_day),
    (S.outcome_28_day, outcome("12_week", "self_reported_quit"), S.outcome_12_week),
    (S.outcome_28_day, outcome("end_of_pregnancy"), S.outcome_end_of_pregnancy),
    (S.outcome_28_day, OPT_OUT, S.opted_out),
    (S.outcome_28_day, Close(), S.completed),
    (S.outcome_28_day, REASON, S.outcome_28_day),
    (S.outcome_12_week, CALL, S.outcome_12_week),
    (S.outcome_12_week, NRT, S.outcome_12_week),
    (S.outcome_12_week, outcome("end_of_pregnancy"), S.outcome_end_of_pregnancy),
    (S.outcome_12_week, OPT_OUT, S.opted_out),
    (S.outcome_12_week, Close(), S.completed),
    (S.outcome_12_week, REASON, S.outcome_12_week),
    (S.outcome_end_of_pregnancy, CALL, S.outcome_end_of_pregnancy),
    (S.outcome_end_of_pregnancy, NRT, S.outcome_end_of_pregnancy),
    (S.outcome_end_of_pregnancy, outcome("after_birth", "lost_to_follow_up"), S.completed),
    (S.outcome_end_of_pregnancy, OPT_OUT, S.opted_out),
    (S.outcome_end_of_pregnancy, Close(), S.completed),
    (S.outcome_end_of_pregnancy, REASON, S.outcome_end_of_pregnancy),
    (S.outcome_after_birth, CALL, S.outcome_after_birth),
    (S.outcome_after_birth, NRT, S.outcome_after_birth),
    (S.outcome_after_birth, OPT_OUT, S.opted_out),
    (S.outcome_after_birth, Close(), S.completed),
    (S.outcome_after_birth, REASON, S.outcome_after_birth),
]


@pytest.mark.parametrize(
    ("from_status", "event", "to_status"),
    LEGAL,
    ids=[f"{before}-{event.kind}-{after}" for before, event, after in LEGAL],
)
def test_legal_move(from_status: ReferralStatus, event: Event, to_status: ReferralStatus) -> None:
    after = apply(state(from_status), event, POLICY, now=NOW)
    assert after.status is to_status
    assert after.closed_at == (NOW if to_status in _CLOSED else None)


def test_legal_moves_cover_every_allowed_event() -> None:
    covered = {(before, event.kind) for before, event, _ in LEGAL}
    allowed = {(status, kind) for status in S for kind in allowed_events(state(status))}
    assert covered == allowed


@pytest.mark.parametrize(
    ("status", "event", "allowed"),
    [
        (S.pending, QuitDateSet(QUIT_DATE), "contact_attempt, opt_out, reason_added"),
        (S.pending, Assessment(), "contact_attempt, opt_out, reason_added"),
        (S.pending, NotEngaged(), "contact_attempt, opt_out, reason_added"),
        (S.pending, Close(), "contact_attempt, opt_out, reason_added"),
        (
            S.contacted,
            QuitDateSet(QUIT_DATE),
            "contact_attempt, assessment, opt_out, not_engaged, reason_added",
        ),
        (
            S.engaged,
            Close(),
            "contact_attempt, treatment_issued, quit_date_set, opt_out, not_engaged, reason_added",
        ),
        (
            S.quit_date_set,
            NotEngaged(),
            "contact_attempt, treatment_issued, quit_date_set, outcome_check, opt_out, "
            "reason_added",
        ),
        (
            S.outcome_28_day,
            QuitDateSet(QUIT_DATE),
            "contact_attempt, treatment_issued, outcome_check, opt_out, close, reason_added",
        ),
        (
            S.outcome_after_birth,
            outcome("after_birth"),
            "contact_attempt, treatment_issued, opt_out, close, reason_added",
        ),
        (S.completed, OPT_OUT, "none (the referral is closed)"),
        (S.opted_out, CALL, "none (the referral is closed)"),
        (S.uncontactable, REASON, "none (the referral is closed)"),
        (S.not_engaged, Assessment(), "none (the referral is closed)"),
        (S.completed, outcome("after_birth"), "none (the referral is closed)"),
    ],
)
def test_illegal_move_names_status_and_allowed_events(
    status: ReferralStatus, event: Event, allowed: str
) -> None:
    before = state(status)
    with pytest.raises(IllegalTransition) as caught:
        apply(before, event, POLICY, now=NOW)
    assert str(caught.value) == (
        f"cannot record {event.kind} while the referral is {status}; allowed: {allowed}"
    )
    assert caught.value.allowed == allowed_events(before)
    assert caught.value.status is status
    assert caught.value.kind is event.kind


def test_two_failed_attempts_leave_it_pending() -> None:
    after = replay(OPENED_AT, [(MISSED, NOW), (MISSED, NOW)], POLICY)
    assert (after.status, after.failed_contact_attempts, after.closed_at) == (S.pending, 2, None)


def test_third_failed_attempt_makes_her_uncontactable() -> None:
    third = NOW + dt.timedelta(days=2)
    after = replay(OPENED_AT, [(MISSED, NOW), (MISSED, NOW), (MISSED, third)], POLICY)
    assert (after.status, after.failed_contact_attempts, after.closed_at) == (
        S.uncontactable,
        3,
        third,
    )


def test_max_contact_attempts_comes_from_the_policy() -> None:
    policy = LifecyclePolicy(max_contact_attempts=5)
    after = replay(OPENED_AT, [(MISSED, NOW)] * 4, policy)
    assert after.status is S.pending
    assert apply(after, MISSED, policy, now=NOW).status is S.uncontactable


def test_reaching_her_after_failed_attempts_counts_as_contact() -> None:
    after = replay(OPENED_AT, [(MISSED, NOW), (MISSED, NOW), (CALL, NOW)], POLICY)
    assert (after.status, after.failed_contact_attempts) == (S.contacted, 2)
    assert apply(after, MISSED, POLICY, now=NOW) == after


def test_quit_date_before_the_referral_opened_is_rejected() -> None:
    with pytest.raises(InvalidEvent) as caught:
        apply(state(S.engaged), QuitDateSet(dt.date(2026, 5, 31)), POLICY, now=NOW)
    assert caught.value.field == "quit_date"
    assert str(caught.value) == (
        "quit_date: is 31 May 2026, before the referral opened on 1 June 2026: "
        "choose that day or later"
    )


def test_quit_date_on_the_day_it_opened_is_accepted() -> None:
    after = apply(state(S.engaged), QuitDateSet(dt.date(2026, 6, 1)), POLICY, now=NOW)
    assert after.quit_date == dt.date(2026, 6, 1)


def test_quit_date_is_compared_with_the_local_opening_date() -> None:
    # 23:30 UTC on 31 March 2026 is 00:30 on 1 April in London (BST).
    opened = state(S.engaged, opened_at=dt.datetime(2026, 3, 31, 23, 30, tzinfo=dt.UTC))
    assert apply(opened, QuitDateSet(dt.date(2026, 4, 1)), POLICY, now=NOW).quit_date
    with pytest.raises(InvalidEvent, match=r"^quit_date: "):
        apply(opened, QuitDateSet(dt.date(2026, 3, 31)), POLICY, now=NOW)


def test_quit_date_more_than_the_policy_days_ahead_is_rejected() -> None:
    # NOW is 2 June 2026: 90 days on is 31 August.
    engaged = state(S.engaged)
    assert apply(engaged, QuitDateSet(dt.date(2026, 8, 31)), POLICY, now=NOW).quit_date
    with pytest.raises(InvalidEvent) as caught:
        apply(engaged, QuitDateSet(dt.date(2030, 1, 1)), POLICY, now=NOW)
    assert caught.value.field == "quit_date"
    assert str(caught.value) == (
        "quit_date: is 1 January 2030, more than 90 days from today: "
        "choose 31 August 2026 or earlier"
    )
    week = LifecyclePolicy(quit_date_max_days_ahead=7)
    with pytest.raises(InvalidEvent, match=r"^quit_date: is 10 June 2026, more than 7 days"):
        apply(engaged, QuitDateSet(dt.date(2026, 6, 10)), week, now=NOW)


def test_quit_date_ahead_is_counted_from_today_in_england() -> None:
    # 23:30 UTC on 2 June 2026 is 00:30 on 3 June in London (BST).
    late = dt.datetime(2026, 6, 2, 23, 30, tzinfo=dt.UTC)
    today_only = LifecyclePolicy(quit_date_max_days_ahead=0)
    after = apply(state(S.engaged), QuitDateSet(dt.date(2026, 6, 3)), today_only, now=late)
    assert after.quit_date == dt.date(2026, 6, 3)
    with pytest.raises(InvalidEvent, match=r"^quit_date: is 4 June 2026"):
        apply(state(S.engaged), QuitDateSet(dt.date(2026, 6, 4)), today_only, now=late)


@pytest.mark.parametrize("status", [S.pending, S.contacted, S.engaged])
def test_outcome_without_a_quit_date_is_rejected(status: ReferralStatus) -> None:
    with pytest.raises(InvalidEvent) as caught:
        apply(state(status), outcome("28_day"), POLICY, now=NOW)
    assert str(caught.value) == "quit_date: set a quit date before recording an outcome"


@pytest.mark.parametrize(
    ("result", "co_ppm", "error"),
    [
        ("co_confirmed_quit", 0, None),
        ("co_confirmed_quit", 9, None),
        ("co_confirmed_quit", 10, "co_ppm: 10 ppm does not confirm a quit"),
        ("co_confirmed_quit", 30, "co_ppm: 30 ppm does not confirm a quit"),
        ("co_confirmed_quit", None, "co_ppm: is needed for a CO-confirmed quit: enter it in ppm"),
        ("self_reported_quit", None, None),
        ("self_reported_quit", 9, "co_ppm: 9 ppm confirms the quit"),
        ("self_reported_quit", 10, "co_ppm: 10 ppm does not confirm a quit"),
        ("smoking", None, None),
        ("smoking", 2, None),
        ("smoking", 25, None),
        ("lost_to_follow_up", None, None),
        ("lost_to_follow_up", 4, "co_ppm: must be empty when she was lost to follow-up"),
    ],
)
def test_outcome_result_must_agree_with_co(
    result: str, co_ppm: int | None, error: str | None
) -> None:
    event = outcome("28_day", result, co_ppm)
    if error is None:
        after = apply(state(S.quit_date_set), event, POLICY, now=NOW)
        assert (after.status, after.last_outcome_stage) == (S.outcome_28_day, OutcomeStage.day_28)
        return
    with pytest.raises(InvalidEvent, match=f"^{error}") as caught:
        apply(state(S.quit_date_set), event, POLICY, now=NOW)
    assert caught.value.field == "co_ppm"


def test_co_confirmed_cut_off_comes_from_the_policy() -> None:
    policy = LifecyclePolicy(co_confirmed_quit_below_ppm=8)
    with pytest.raises(InvalidEvent, match="needs below 8 ppm"):
        apply(state(S.quit_date_set), outcome("28_day", "co_confirmed_quit", 8), policy, now=NOW)


@pytest.mark.parametrize("co_ppm", [-1, 501])
def test_co_out_of_range_is_rejected(co_ppm: int) -> None:
    with pytest.raises(InvalidEvent) as caught:
        outcome("28_day", "smoking", co_ppm)
    assert caught.value.field == "co_ppm"


@pytest.mark.parametrize(
    ("status", "stage"),
    [
        (S.outcome_28_day, "28_day"),
        (S.outcome_12_week, "28_day"),
        (S.outcome_12_week, "12_week"),
        (S.outcome_end_of_pregnancy, "12_week"),
    ],
)
def test_outcome_stages_cannot_repeat_or_go_back(status: ReferralStatus, stage: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        apply(state(status), outcome(stage), POLICY, now=NOW)
    assert caught.value.field == "stage"
    assert "record one of" in caught.value.message


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: OutcomeCheck(stage="4_week", result="smoking"), "stage"),  # type: ignore[arg-type]
        (lambda: OutcomeCheck(stage="28_day", result="quit"), "result"),  # type: ignore[arg-type]
        (lambda: OptOut(reason="  "), "reason"),
        (lambda: TreatmentIssued(treatment=""), "treatment"),
        (lambda: ReasonAdded(reasons=()), "reasons"),
        (lambda: ReasonAdded(reasons=("",)), "reasons"),
    ],
)
def test_bad_event_data_names_the_field(make: Any, field: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        make()
    assert caught.value.field == field


def test_reason_added_keeps_reasons_once_in_order() -> None:
    before = state(S.contacted, reasons=("self_reported_smoker",))
    event = ReasonAdded(reasons=("co_elevated", "self_reported_smoker", "co_elevated"))
    after = apply(before, event, POLICY, now=NOW)
    assert after.reasons == ("self_reported_smoker", "co_elevated")
    assert after.status is S.contacted


def test_replay_of_a_whole_referral() -> None:
    day = dt.timedelta(days=1)
    events: list[tuple[Event, dt.datetime]] = [
        (MISSED, OPENED_AT + day),
        (CALL, OPENED_AT + 2 * day),
        (Assessment(), OPENED_AT + 3 * day),
        (QuitDateSet(QUIT_DATE), OPENED_AT + 3 * day),
        (NRT, OPENED_AT + 3 * day),
        (outcome("28_day", "co_confirmed_quit", 2), OPENED_AT + 40 * day),
        (outcome("12_week", "co_confirmed_quit", 1), OPENED_AT + 95 * day),
        (outcome("end_of_pregnancy", "self_reported_quit"), OPENED_AT + 150 * day),
        (outcome("after_birth", "smoking", 14), OPENED_AT + 200 * day),
    ]
    after = replay(OPENED_AT, events, POLICY, reasons=("co_elevated",))
    assert after.status is S.completed
    assert after.closed_at == OPENED_AT + 200 * day
    assert after.last_outcome_stage is OutcomeStage.after_birth
    assert (after.quit_date, after.failed_contact_attempts, after.reasons) == (
        QUIT_DATE,
        1,
        ("co_elevated",),
    )
    assert allowed_events(after) == ()


def test_times_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match=r"^now: "):
        apply(state(), CALL, POLICY, now=dt.datetime(2026, 6, 2, 11, 0))
    with pytest.raises(ValueError, match=r"^opened_at: "):
        ReferralState(opened_at=dt.datetime(2026, 6, 1, 10, 0))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"max_contact_attempts": 0}, "max_contact_attempts"),
        ({"co_confirmed_quit_below_ppm": 0}, "co_confirmed_quit_below_ppm"),
        ({"co_confirmed_quit_below_ppm": 501}, "co_confirmed_quit_below_ppm"),
        ({"quit_date_max_days_ahead": -1}, "quit_date_max_days_ahead"),
    ],
)
def test_nonsense_policy_raises_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        LifecyclePolicy(**overrides)


def test_event_kinds_match_their_classes() -> None:
    assert {
        ContactAttempt.kind,
        Assessment.kind,
        TreatmentIssued.kind,
        QuitDateSet.kind,
        OutcomeCheck.kind,
        OptOut.kind,
        NotEngaged.kind,
        Close.kind,
        ReasonAdded.kind,
    } == set(EventKind)
