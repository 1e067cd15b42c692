"""The life of one referral to stop-smoking support, as a pure state machine.

``apply(state, event, policy, now=...)`` returns the next state or raises:
:class:`IllegalTransition` when the event cannot happen in the current status (the app answers
409), :class:`InvalidEvent` when the event's data is wrong (422). No I/O and no clock: the
caller passes ``now``.

The path follows the tobacco dependence pathway in DOMAIN.md: pending -> contacted (first contact)
-> engaged (assessment and care plan) -> quit_date_set -> outcomes at 28 days, 12 weeks, end of
pregnancy and after the birth -> completed. She may opt out at any point while it is open.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import ClassVar, TypeVar, assert_never
from zoneinfo import ZoneInfo

from app.clock import LONDON, long_date

CO_PPM_MAX = 500  # top of the range of the handheld monitors in use (Bedfont piCO, MicroCO)


class ReferralStatus(enum.StrEnum):
    pending = "pending"
    contacted = "contacted"
    engaged = "engaged"
    quit_date_set = "quit_date_set"
    outcome_28_day = "outcome_28_day"
    outcome_12_week = "outcome_12_week"
    outcome_end_of_pregnancy = "outcome_end_of_pregnancy"
    outcome_after_birth = "outcome_after_birth"
    opted_out = "opted_out"
    uncontactable = "uncontactable"
    not_engaged = "not_engaged"
    completed = "completed"


CLOSED_STATUSES = frozenset(
    {
        ReferralStatus.opted_out,
        ReferralStatus.uncontactable,
        ReferralStatus.not_engaged,
        ReferralStatus.completed,
    }
)


class EventKind(enum.StrEnum):
    """Declaration order is the order allowed events are listed in."""

    contact_attempt = "contact_attempt"
    assessment = "assessment"
    treatment_issued = "treatment_issued"
    quit_date_set = "quit_date_set"
    outcome_check = "outcome_check"
    opt_out = "opt_out"
    not_engaged = "not_engaged"
    close = "close"
    reason_added = "reason_added"


class OutcomeStage(enum.StrEnum):
    """Follow-up points, in the order they must be recorded."""

    day_28 = "28_day"
    week_12 = "12_week"
    end_of_pregnancy = "end_of_pregnancy"
    after_birth = "after_birth"


class OutcomeResult(enum.StrEnum):
    """Tobacco dependence dataset outcome codes 1-4 (seen in an NHS prototype; unconfirmed)."""

    co_confirmed_quit = "co_confirmed_quit"
    self_reported_quit = "self_reported_quit"
    smoking = "smoking"
    lost_to_follow_up = "lost_to_follow_up"


class IllegalTransition(Exception):
    """The event cannot be recorded in the referral's current status."""

    def __init__(self, status: ReferralStatus, kind: EventKind, allowed: tuple[EventKind, ...]):
        self.status = status
        self.kind = kind
        self.allowed = allowed
        listed = ", ".join(allowed) if allowed else "none (the referral is closed)"
        super().__init__(f"cannot record {kind} while the referral is {status}; allowed: {listed}")


class InvalidEvent(Exception):
    """The event's data is wrong; ``field`` names the value to fix.

    ``message`` follows the field's name: the API answers ``{field, message}`` and the pages
    show "<the field's label> <message>.", so it reads on from a name ("is needed for ...").
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


_E = TypeVar("_E", bound=enum.StrEnum)


def _enum(kind: type[_E], field: str, value: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise InvalidEvent(field, f"{value!r} is not one of {choices}") from None


def _require_text(field: str, value: str) -> None:
    if not value.strip():
        raise InvalidEvent(field, "must not be blank")


def _require_aware(name: str, value: dt.datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: must be timezone-aware")


@dataclass(frozen=True, kw_only=True)
class LifecyclePolicy:
    """Settings for the lifecycle, filled from the trust's settings.

    ``max_contact_attempts``: failed first-contact attempts before she is uncontactable and goes
    back to the midwife (DOMAIN.md, "several attempts"; 3 by default).
    ``co_confirmed_quit_below_ppm``: a quit is CO-confirmed when exhaled CO is below this, in ppm
    (10; NHS stop smoking services statistics). ``quit_date_max_days_ahead``: a quit date may be
    at most this many days after today (90 by default; a trust setting, no national limit), so
    that a mistyped year is refused. ``tz``: where dates such as the quit date and today live.
    """

    max_contact_attempts: int = 3
    co_confirmed_quit_below_ppm: int = 10
    quit_date_max_days_ahead: int = 90
    tz: ZoneInfo = LONDON

    def __post_init__(self) -> None:
        if self.max_contact_attempts < 1:
            raise ValueError("max_contact_attempts: must be 1 or more")
        if not 1 <= self.co_confirmed_quit_below_ppm <= CO_PPM_MAX:
            raise ValueError(f"co_confirmed_quit_below_ppm: must be 1 to {CO_PPM_MAX} ppm")
        if self.quit_date_max_days_ahead < 0:
            raise ValueError("quit_date_max_days_ahead: must be 0 or more")


@dataclass(frozen=True)
class ContactAttempt:
    reached: bool
    kind: ClassVar[EventKind] = EventKind.contact_attempt


@dataclass(frozen=True)
class Assessment:
    kind: ClassVar[EventKind] = EventKind.assessment


@dataclass(frozen=True)
class TreatmentIssued:
    treatment: str  # e.g. "nrt_patch", "nrt_gum", "e_cigarette"
    kind: ClassVar[EventKind] = EventKind.treatment_issued

    def __post_init__(self) -> None:
        _require_text("treatment", self.treatment)


@dataclass(frozen=True)
class QuitDateSet:
    quit_date: dt.date
    kind: ClassVar[EventKind] = EventKind.quit_date_set


@dataclass(frozen=True)
class OutcomeCheck:
    stage: OutcomeStage
    result: OutcomeResult
    co_ppm: int | None = None
    kind: ClassVar[EventKind] = EventKind.outcome_check

    def __post_init__(self) -> None:
        object.__setattr__(self, "stage", _enum(OutcomeStage, "stage", self.stage))
        object.__setattr__(self, "result", _enum(OutcomeResult, "result", self.result))
        if self.co_ppm is not None and not 0 <= self.co_ppm <= CO_PPM_MAX:
            raise InvalidEvent("co_ppm", f"must be 0 to {CO_PPM_MAX} ppm, got {self.co_ppm}")


@dataclass(frozen=True)
class OptOut:
    reason: str  # "declined to say" is a reason; a blank is not
    kind: ClassVar[EventKind] = EventKind.opt_out

    def __post_init__(self) -> None:
        _require_text("reason", self.reason)


@dataclass(frozen=True)
class NotEngaged:
    kind: ClassVar[EventKind] = EventKind.not_engaged


@dataclass(frozen=True)
class Close:
    kind: ClassVar[EventKind] = EventKind.close


@dataclass(frozen=True)
class ReasonAdded:
    reasons: tuple[str, ...]  # ReasonCode values from referral.rules
    kind: ClassVar[EventKind] = EventKind.reason_added

    def __post_init__(self) -> None:
        if not self.reasons or not all(reason.strip() for reason in self.reasons):
            raise InvalidEvent("reasons", "give at least one reason, none blank")


Event = (
    ContactAttempt
    | Assessment
    | TreatmentIssued
    | QuitDateSet
    | OutcomeCheck
    | OptOut
    | NotEngaged
    | Close
    | ReasonAdded
)


@dataclass(frozen=True, kw_only=True)
class ReferralState:
    """Where a referral stands. ``opened_at`` and ``closed_at`` are timezone-aware."""

    opened_at: dt.datetime
    status: ReferralStatus = ReferralStatus.pending
    reasons: tuple[str, ...] = ()
    failed_contact_attempts: int = 0  # counted only before first contact
    quit_date: dt.date | None = None
    last_outcome_stage: OutcomeStage | None = None
    closed_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        _require_aware("opened_at", self.opened_at)
        object.__setattr__(self, "status", ReferralStatus(self.status))

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES


_K, _S = EventKind, ReferralStatus


def _with_always(*kinds: EventKind) -> tuple[EventKind, ...]:
    # Any open referral can log a call, take her opt-out, or gain a new reason to be open.
    wanted = {_K.contact_attempt, _K.opt_out, _K.reason_added, *kinds}
    return tuple(kind for kind in EventKind if kind in wanted)


_ALLOWED: dict[ReferralStatus, tuple[EventKind, ...]] = {
    _S.pending: _with_always(),
    _S.contacted: _with_always(_K.assessment, _K.not_engaged),
    _S.engaged: _with_always(_K.treatment_issued, _K.quit_date_set, _K.not_engaged),
    _S.quit_date_set: _with_always(_K.treatment_issued, _K.quit_date_set, _K.outcome_check),
    _S.outcome_28_day: _with_always(_K.treatment_issued, _K.outcome_check, _K.close),
    _S.outcome_12_week: _with_always(_K.treatment_issued, _K.outcome_check, _K.close),
    _S.outcome_end_of_pregnancy: _with_always(_K.treatment_issued, _K.outcome_check, _K.close),
    # apply() completes the referral on the after-birth outcome; a stored one can only close.
    _S.outcome_after_birth: _with_always(_K.treatment_issued, _K.close),
}
_STAGE_STATUS = {
    OutcomeStage.day_28: ReferralStatus.outcome_28_day,
    OutcomeStage.week_12: ReferralStatus.outcome_12_week,
    OutcomeStage.end_of_pregnancy: ReferralStatus.outcome_end_of_pregnancy,
    OutcomeStage.after_birth: ReferralStatus.outcome_after_birth,
}
_STAGES = tuple(OutcomeStage)


def allowed_events(state: ReferralState) -> tuple[EventKind, ...]:
    """The events that may be recorded now, in :class:`EventKind` order; none once closed."""
    return _ALLOWED.get(state.status, ())


def apply(
    state: ReferralState, event: Event, policy: LifecyclePolicy, *, now: dt.datetime
) -> ReferralState:
    """Record ``event`` at ``now`` (timezone-aware) and return the referral's next state.

    Moves: a contact attempt that reached her takes pending to contacted; the
    ``policy.max_contact_attempts``-th (3rd) failed attempt before any contact closes it as
    uncontactable. Later attempts are allowed and change nothing. Assessment: contacted to
    engaged. Quit date: engaged to quit_date_set, and may be moved again before any outcome; it
    must not be before the referral opened, nor more than ``policy.quit_date_max_days_ahead``
    (90) days after ``now`` (both as dates in ``policy.tz``). Outcome checks need a
    quit date and go forward through 28 days, 12 weeks, end of pregnancy and after the birth;
    stages may be skipped (a late referral may reach the end of pregnancy before 12 weeks) but
    not repeated or reversed. The after-birth outcome completes the referral; ``close`` completes
    it after any outcome. Opt-out is allowed while open; not_engaged from contacted or engaged.
    Treatment and added reasons change no status. Closed referrals accept nothing.

    Raises ``InvalidEvent`` naming the field for wrong data, ``IllegalTransition`` otherwise.
    """
    _require_aware("now", now)
    if isinstance(event, OutcomeCheck) and state.is_open and state.quit_date is None:
        raise InvalidEvent("quit_date", "set a quit date before recording an outcome")
    allowed = allowed_events(state)
    if event.kind not in allowed:
        raise IllegalTransition(state.status, event.kind, allowed)
    match event:
        case ContactAttempt():
            return _contact_attempt(state, event, policy, now)
        case Assessment():
            return replace(state, status=ReferralStatus.engaged)
        case QuitDateSet():
            return _quit_date_set(state, event, policy, now)
        case OutcomeCheck():
            return _outcome_check(state, event, policy, now)
        case OptOut():
            return _close(state, ReferralStatus.opted_out, now)
        case NotEngaged():
            return _close(state, ReferralStatus.not_engaged, now)
        case Close():
            return _close(state, ReferralStatus.completed, now)
        case ReasonAdded():
            added = tuple(r for r in dict.fromkeys(event.reasons) if r not in state.reasons)
            return replace(state, reasons=state.reasons + added)
        case TreatmentIssued():
            return state
        case _:
            assert_never(event)


def replay(
    opened_at: dt.datetime,
    events: Iterable[tuple[Event, dt.datetime]],
    policy: LifecyclePolicy,
    *,
    reasons: tuple[str, ...] = (),
) -> ReferralState:
    """Rebuild a referral's state from its events, each with the moment it happened, in order."""
    state = ReferralState(opened_at=opened_at, reasons=reasons)
    for event, occurred_at in events:
        state = apply(state, event, policy, now=occurred_at)
    return state


def _close(state: ReferralState, status: ReferralStatus, now: dt.datetime) -> ReferralState:
    return replace(state, status=status, closed_at=now)


def _contact_attempt(
    state: ReferralState, event: ContactAttempt, policy: LifecyclePolicy, now: dt.datetime
) -> ReferralState:
    if state.status is not ReferralStatus.pending:
        return state
    if event.reached:
        return replace(state, status=ReferralStatus.contacted)
    failed = replace(state, failed_contact_attempts=state.failed_contact_attempts + 1)
    if failed.failed_contact_attempts >= policy.max_contact_attempts:
        return _close(failed, ReferralStatus.uncontactable, now)
    return failed


def _quit_date_set(
    state: ReferralState, event: QuitDateSet, policy: LifecyclePolicy, now: dt.datetime
) -> ReferralState:
    quit_on = event.quit_date
    opened_on = state.opened_at.astimezone(policy.tz).date()
    if quit_on < opened_on:
        raise InvalidEvent(
            "quit_date",
            f"is {long_date(quit_on)}, before the referral opened on {long_date(opened_on)}: "
            "choose that day or later",
        )
    days = policy.quit_date_max_days_ahead
    latest = now.astimezone(policy.tz).date() + dt.timedelta(days=days)
    if quit_on > latest:
        raise InvalidEvent(
            "quit_date",
            f"is {long_date(quit_on)}, more than {days} days from today: "
            f"choose {long_date(latest)} or earlier",
        )
    return replace(state, status=ReferralStatus.quit_date_set, quit_date=quit_on)


def _outcome_check(
    state: ReferralState, event: OutcomeCheck, policy: LifecyclePolicy, now: dt.datetime
) -> ReferralState:
    last = state.last_outcome_stage
    later = _STAGES if last is None else _STAGES[_STAGES.index(last) + 1 :]
    if event.stage not in later:
        raise InvalidEvent(
            "stage",
            f"{event.stage} cannot follow {last}; record one of: {', '.join(later)}",
        )
    _check_outcome_co(event, policy.co_confirmed_quit_below_ppm)
    recorded = replace(state, last_outcome_stage=event.stage)
    if event.stage is OutcomeStage.after_birth:
        return _close(recorded, ReferralStatus.completed, now)
    return replace(recorded, status=_STAGE_STATUS[event.stage])


def _check_outcome_co(event: OutcomeCheck, below_ppm: int) -> None:
    """Reject results that the CO reading contradicts, rather than silently changing them.

    A CO-confirmed quit needs a reading below ``below_ppm`` (10 ppm, NHS stop smoking services
    statistics). A reading at or above it means she is recorded as smoking; a reading below it
    with a self-reported quit should be recorded as CO-confirmed. Lost to follow-up has no reading.
    """
    co_ppm, result = event.co_ppm, event.result
    if result is OutcomeResult.co_confirmed_quit and co_ppm is None:
        raise InvalidEvent("co_ppm", "is needed for a CO-confirmed quit: enter it in ppm")
    if result is OutcomeResult.lost_to_follow_up and co_ppm is not None:
        raise InvalidEvent("co_ppm", "must be empty when she was lost to follow-up")
    quitting = result in (OutcomeResult.co_confirmed_quit, OutcomeResult.self_reported_quit)
    if co_ppm is None or not quitting:
        return
    if co_ppm >= below_ppm:
        raise InvalidEvent(
            "co_ppm",
            f"{co_ppm} ppm does not confirm a quit (needs below {below_ppm} ppm); "
            "record the result as smoking",
        )
    if result is OutcomeResult.self_reported_quit:
        raise InvalidEvent(
            "co_ppm",
            f"{co_ppm} ppm confirms the quit; record the result as co_confirmed_quit",
        )
