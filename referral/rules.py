"""The referral rules engine: facts about one CO test in, a referral decision and advice out.

Pure: no I/O, no clock, no settings. The caller passes the facts (including the date of the test)
and a :class:`Policy` built from the trust's settings, and stores ``Decision.policy_version`` with
the decision so that a later change of thresholds can be traced.

Clinical sources (see DOMAIN.md): NICE NG209 recommendation 1.18 and the UKHSA midwives' CO
algorithm (refer at 4 ppm or more; a woman who says she does not smoke with 3 ppm or more needs
help finding the source), NICE PH26 / NG209 (above 10 ppm in a non-smoker: possible CO poisoning),
and the Vyaire MicroCO manual (above 72 ppm, about 12 % COHb: suspected CO poisoning).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import TypeVar

from referral.lifecycle import CLOSED_STATUSES, CO_PPM_MAX, ReferralStatus


class ReadingOutcome(enum.StrEnum):
    measured = "measured"
    declined = "declined"
    no_monitor = "no_monitor"


class SmokingStatus(enum.StrEnum):
    smoker = "smoker"
    ex_smoker = "ex_smoker"
    non_smoker = "non_smoker"
    unknown = "unknown"


class ReasonCode(enum.StrEnum):
    """Why a referral is made. Declaration order is the order reasons are reported in."""

    co_elevated = "co_elevated"
    self_reported_smoker = "self_reported_smoker"
    recently_stopped = "recently_stopped"
    previously_not_engaged = "previously_not_engaged"


class AdviceCode(enum.StrEnum):
    """What the midwife should say or do now. Declaration order is the order advice is given in."""

    co_urgent = "co_urgent"
    co_poisoning_risk = "co_poisoning_risk"
    co_source_check = "co_source_check"
    co_normal = "co_normal"
    declined_test = "declined_test"
    no_monitor = "no_monitor"
    referral_made = "referral_made"
    offer_referral = "offer_referral"


_E = TypeVar("_E", bound=enum.StrEnum)

# She told us she does not smoke: a raised reading then points to a source other than her smoking.
_SAYS_DOES_NOT_SMOKE = frozenset({SmokingStatus.non_smoker, SmokingStatus.ex_smoker})
_NEVER_ENGAGED = frozenset({ReferralStatus.uncontactable, ReferralStatus.not_engaged})


def _require_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be {minimum} or more, got {value}")


@dataclass(frozen=True, kw_only=True)
class Policy:
    """Thresholds for the rules, filled from the trust's settings.

    All CO values are exhaled CO in ppm as read from the monitor. ``version`` (at most 32
    characters, the width of ``referral.policy_version``) has no default on purpose: a decision
    must always name the settings it was made under.
    """

    version: str
    threshold_ppm: int = 4  # refer at >= this (NICE NG209 1.18)
    source_check_ppm: int = 3  # says she does not smoke, >= this: find the source (NG209)
    poisoning_risk_above_ppm: int = 10  # says she does not smoke, > this: possible CO poisoning
    urgent_above_ppm: int = 72  # > this, about 12 % COHb: suspected CO poisoning (MicroCO)
    recently_stopped_days: int = 14  # stopped this many days ago or fewer: refer (NG209)

    def __post_init__(self) -> None:
        if not self.version.strip() or len(self.version) > 32:
            raise ValueError("version: give a policy version of 1 to 32 characters")
        _require_int("threshold_ppm", self.threshold_ppm, minimum=1)
        _require_int("source_check_ppm", self.source_check_ppm, minimum=0)
        _require_int("poisoning_risk_above_ppm", self.poisoning_risk_above_ppm, minimum=0)
        _require_int("urgent_above_ppm", self.urgent_above_ppm, minimum=0)
        _require_int("recently_stopped_days", self.recently_stopped_days, minimum=0)
        if self.urgent_above_ppm >= CO_PPM_MAX:
            raise ValueError(f"urgent_above_ppm: must be below {CO_PPM_MAX}, the monitor's range")
        if self.poisoning_risk_above_ppm >= self.urgent_above_ppm:
            raise ValueError("poisoning_risk_above_ppm: must be below urgent_above_ppm")
        if self.source_check_ppm > self.poisoning_risk_above_ppm:
            raise ValueError("source_check_ppm: must not be above poisoning_risk_above_ppm")


@dataclass(frozen=True, kw_only=True)
class ReadingFacts:
    """One CO test outcome and what is known about her and this pregnancy's referrals.

    ``co_ppm`` (0-500 ppm, the monitors' range) is given if and only if ``outcome`` is measured.
    ``tested_on`` is the local date of the test. ``earlier_referral_outcomes`` holds the closing
    statuses of this pregnancy's earlier referrals, in any order. Strings are accepted for the
    enum fields and checked.
    """

    outcome: ReadingOutcome
    smoking_status: SmokingStatus
    tested_on: dt.date
    co_ppm: int | None = None
    stopped_smoking_on: dt.date | None = None
    earlier_referral_outcomes: tuple[str, ...] = ()  # ReferralStatus values, coerced
    has_open_referral: bool = False

    def __post_init__(self) -> None:
        # Frozen, so coercion goes through object.__setattr__; a bad string fails here, by name.
        object.__setattr__(self, "outcome", _enum(ReadingOutcome, "outcome", self.outcome))
        status = _enum(SmokingStatus, "smoking_status", self.smoking_status)
        object.__setattr__(self, "smoking_status", status)
        earlier = tuple(
            _enum(ReferralStatus, "earlier_referral_outcomes", value)
            for value in self.earlier_referral_outcomes
        )
        if not set(earlier) <= CLOSED_STATUSES:
            raise ValueError(
                "earlier_referral_outcomes: give only closing statuses "
                f"({', '.join(sorted(CLOSED_STATUSES))}); an open referral is has_open_referral"
            )
        object.__setattr__(self, "earlier_referral_outcomes", earlier)
        measured = self.outcome is ReadingOutcome.measured
        if measured and self.co_ppm is None:
            raise ValueError("co_ppm: a measured test needs its reading in ppm")
        if not measured and self.co_ppm is not None:
            raise ValueError(f"co_ppm: leave it empty when the outcome is {self.outcome}")
        if self.co_ppm is not None:
            _require_int("co_ppm", self.co_ppm, minimum=0)
            if self.co_ppm > CO_PPM_MAX:
                raise ValueError(f"co_ppm: must be {CO_PPM_MAX} or less, got {self.co_ppm}")


def _enum(kind: type[_E], name: str, value: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise ValueError(f"{name}: {value!r} is not one of {choices}") from None


@dataclass(frozen=True)
class Advice:
    code: AdviceCode
    text: str


@dataclass(frozen=True, kw_only=True)
class Decision:
    refer: bool
    reasons: tuple[ReasonCode, ...]
    advice: tuple[Advice, ...]
    policy_version: str


def evaluate(facts: ReadingFacts, policy: Policy) -> Decision:
    """Decide whether to refer her to stop-smoking support, and what to tell her now.

    Reasons (any one refers; NICE NG209 1.18 and DOMAIN.md):

    - ``co_elevated``: measured CO >= ``policy.threshold_ppm`` (4 ppm).
    - ``self_reported_smoker``: she says she smokes, whatever the test outcome, declined included.
    - ``recently_stopped``: she stopped 0 to ``policy.recently_stopped_days`` (14) days before
      ``tested_on``, whatever her recorded status. A stop date after the test date is a plan, not
      a quit, so it is not "recently stopped" (a smoker is referred anyway).
    - ``previously_not_engaged``: an earlier referral in this pregnancy ended uncontactable or
      not_engaged; this alone refers her again.

    ``refer`` is true exactly when there is a reason. If she already has an open referral,
    ``refer`` is still true: the caller adds the reasons to that referral as an event instead of
    opening a second one, and the ``referral_made`` advice says so.

    Advice, most urgent first: ``co_urgent`` (> 72 ppm, any status), ``co_poisoning_risk`` (says
    she does not smoke, > 10 ppm), ``co_source_check`` (says she does not smoke, >= 3 ppm),
    ``co_normal`` (below the threshold, no source check, and not a self-reported smoker: a low
    reading in a smoker only reflects the last few hours and must not reassure her),
    ``declined_test``, ``no_monitor``, ``referral_made`` (the opt-out script), and
    ``offer_referral`` (she opted out earlier, nothing refers her now and nothing is open).
    """
    reasons = _reasons(facts, policy)
    refer = bool(reasons)
    advice = _reading_advice(facts, policy) + _referral_advice(facts, refer)
    return Decision(refer=refer, reasons=reasons, advice=advice, policy_version=policy.version)


def _reasons(facts: ReadingFacts, policy: Policy) -> tuple[ReasonCode, ...]:
    found: list[ReasonCode] = []
    if facts.co_ppm is not None and facts.co_ppm >= policy.threshold_ppm:
        found.append(ReasonCode.co_elevated)
    if facts.smoking_status is SmokingStatus.smoker:
        found.append(ReasonCode.self_reported_smoker)
    if facts.stopped_smoking_on is not None:
        days_since = (facts.tested_on - facts.stopped_smoking_on).days
        if 0 <= days_since <= policy.recently_stopped_days:
            found.append(ReasonCode.recently_stopped)
    if _NEVER_ENGAGED.intersection(facts.earlier_referral_outcomes):
        found.append(ReasonCode.previously_not_engaged)
    return tuple(found)


def _reading_advice(facts: ReadingFacts, policy: Policy) -> tuple[Advice, ...]:
    if facts.outcome is ReadingOutcome.declined:
        return (_advice(AdviceCode.declined_test, policy),)
    if facts.outcome is ReadingOutcome.no_monitor or facts.co_ppm is None:
        return (_advice(AdviceCode.no_monitor, policy),)
    co_ppm = facts.co_ppm
    says_non_smoker = facts.smoking_status in _SAYS_DOES_NOT_SMOKE
    codes: list[AdviceCode] = []
    if co_ppm > policy.urgent_above_ppm:
        codes.append(AdviceCode.co_urgent)
    if says_non_smoker and co_ppm > policy.poisoning_risk_above_ppm:
        codes.append(AdviceCode.co_poisoning_risk)
    if says_non_smoker and co_ppm >= policy.source_check_ppm:
        codes.append(AdviceCode.co_source_check)
    elif co_ppm < policy.threshold_ppm and facts.smoking_status is not SmokingStatus.smoker:
        codes.append(AdviceCode.co_normal)
    return tuple(_advice(code, policy) for code in codes)


def _referral_advice(facts: ReadingFacts, refer: bool) -> tuple[Advice, ...]:
    if refer and facts.has_open_referral:
        return (Advice(AdviceCode.referral_made, _ADDED_TO_OPEN_REFERRAL),)
    if refer:
        return (Advice(AdviceCode.referral_made, _REFERRAL_MADE),)
    if ReferralStatus.opted_out in facts.earlier_referral_outcomes and not facts.has_open_referral:
        return (Advice(AdviceCode.offer_referral, _OFFER_REFERRAL),)
    return ()


def _advice(code: AdviceCode, policy: Policy) -> Advice:
    texts = {
        AdviceCode.co_urgent: (
            f"Reading above {policy.urgent_above_ppm} ppm: suspected carbon monoxide poisoning. "
            "Escalate now to the obstetric team or emergency department and check TOXBASE."
        ),
        AdviceCode.co_poisoning_risk: (
            f"She says she does not smoke and her reading is above "
            f"{policy.poisoning_risk_above_ppm} ppm: she may be breathing in carbon monoxide. "
            "Give her the HSE gas safety advice line, 0800 300 363. If she smells gas or "
            "thinks there is a leak, she should call the gas emergency line, 0800 111 999."
        ),
        AdviceCode.co_source_check: (
            f"She says she does not smoke but her reading is {policy.source_check_ppm} ppm or "
            "more: help her find the source - second-hand smoke, faulty gas appliances or "
            "heating, traffic fumes."
        ),
        AdviceCode.co_normal: (
            f"Reading below {policy.threshold_ppm} ppm: she is unlikely to be exposed to "
            "tobacco smoke or carbon monoxide."
        ),
        AdviceCode.declined_test: (
            "She declined the CO test: record that, still give very brief advice on smoking "
            "(ask, advise, act), and offer the test again at her next appointment."
        ),
        AdviceCode.no_monitor: (
            "No working CO monitor: ask whether she smokes and record her status, test her at "
            "the next contact, and report the monitor."
        ),
    }
    return Advice(code, texts[code])


_REFERRAL_MADE = (
    "Tell her: 'We refer everyone in this situation to the stop-smoking service, who will "
    "contact you for support. It's free, and you can say no.' If she does not want it, record "
    "that she opted out and why."
)
_ADDED_TO_OPEN_REFERRAL = (
    "She already has an open referral to the stop-smoking service: today's result has been "
    "added to it. Encourage her to keep in touch with her advisor; she can still opt out."
)
_OFFER_REFERRAL = (
    "She opted out of an earlier referral in this pregnancy. Ask whether she would like "
    "support from the stop-smoking service now, and refer her if she does."
)
