"""The change package's measures: what each counts, which way is better, and where it comes from.

The exact inclusion rules are in docs/measures.md and implemented in ``app.measures.queries``;
this module is the catalogue both share (codes are stable: they are the export's ``measure``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Improvement(enum.StrEnum):
    """Which direction of change is an improvement (Making Data Count colours points by it)."""

    up = "up"
    down = "down"


class Unknown(enum.StrEnum):
    """What a measure's ``unknown`` count holds: records left out of the denominator."""

    none = "none"
    status_unknown = "status_unknown"
    outcome_awaited = "outcome_awaited"


@dataclass(frozen=True)
class Measure:
    code: str
    title: str
    numerator: str
    denominator: str
    month: str  # what places a record in a month
    improvement: Improvement
    unknown: Unknown = Unknown.none
    mandatory: bool = False  # the change package's mandatory data (else supporting data)


MEASURES: tuple[Measure, ...] = (
    Measure(
        "smoking_at_booking",
        "Smoking at booking",
        "women who smoke at booking (self-reported smoker, or CO at or above 4 ppm)",
        "women booked whose smoking status is known",
        "the booking appointment",
        Improvement.down,
        Unknown.status_unknown,
        mandatory=True,
    ),
    Measure(
        "smoking_at_delivery",
        "Smoking at time of delivery (SATOD)",
        "women recorded as smokers at delivery",
        "women who gave birth whose status at delivery is known",
        "the birth",
        Improvement.down,
        Unknown.status_unknown,
        mandatory=True,
    ),
    Measure(
        "smoking_at_36_weeks",
        "Smoking at 36 weeks",
        "women who smoke at the 36-week appointment (self-reported, or CO at or above 4 ppm)",
        "women seen at 36 weeks whose smoking status is known",
        "the 36-week appointment",
        Improvement.down,
        Unknown.status_unknown,
        mandatory=True,
    ),
    Measure(
        "co_test_at_booking",
        "CO test at booking",
        "women with a CO reading within 3 days of their booking appointment",
        "women booked",
        "the booking appointment",
        Improvement.up,
        mandatory=True,
    ),
    Measure(
        "co_test_at_36_weeks",
        "CO test at 36 weeks",
        "women with a CO reading within 3 days of their 36-week appointment",
        "women seen at 36 weeks",
        "the 36-week appointment",
        Improvement.up,
        mandatory=True,
    ),
    Measure(
        "brief_advice_when_positive",
        "Tested positive and given very brief advice",
        "women with a CO reading at or above 4 ppm recorded with very brief advice given",
        "women with a CO reading at or above 4 ppm",
        "the test",
        Improvement.up,
    ),
    Measure(
        "smoking_after_birth",
        "Smoking after the birth",
        "women who smoke after the birth (self-reported, or CO at or above 4 ppm)",
        "women with a postnatal smoking status that is known",
        "the postnatal record",
        Improvement.down,
        Unknown.status_unknown,
    ),
    Measure(
        "staff_trained_co_monitoring",
        "Staff trained in CO monitoring",
        "staff in post holding in-date CO monitoring training",
        "staff in post on the register",
        "the last day of the month",
        Improvement.up,
        mandatory=True,
    ),
    Measure(
        "staff_trained_brief_advice",
        "Staff trained in very brief advice",
        "staff in post holding in-date very brief advice training",
        "staff in post on the register",
        "the last day of the month",
        Improvement.up,
        mandatory=True,
    ),
    Measure(
        "elevated_co_referred",
        "Elevated CO referred for specialist support",
        "women with a CO reading at or above 4 ppm whose reading led to a referral",
        "women with a CO reading at or above 4 ppm",
        "the test",
        Improvement.up,
        mandatory=True,
    ),
    Measure(
        "smokers_referred",
        "Referred to specialist stop-smoking support",
        "women identified as smoking (self-report or CO) whose test led to a referral",
        "women identified as smoking at a test (self-reported smoker, or CO at or above 4 ppm)",
        "the test",
        Improvement.up,
        mandatory=True,
    ),
    Measure(
        "quit_date_set",
        "Quit date set with specialist support",
        "women referred who set a quit date on that referral",
        "women referred",
        "the referral",
        Improvement.up,
        mandatory=True,
    ),
    Measure(
        "quit_at_4_weeks",
        "Quit at 4 weeks",
        "quit attempts with a 28-day outcome of a CO-confirmed or self-reported quit",
        "quit attempts (quit dates set), lost to follow-up counted as smoking",
        "the quit date",
        Improvement.up,
        Unknown.outcome_awaited,
    ),
    Measure(
        "quit_at_12_weeks",
        "Quit at 12 weeks",
        "quit attempts with a 12-week outcome of a CO-confirmed or self-reported quit",
        "quit attempts (quit dates set), lost to follow-up counted as smoking",
        "the quit date",
        Improvement.up,
        Unknown.outcome_awaited,
    ),
    Measure(
        "quit_at_end_of_pregnancy",
        "Quit at end of pregnancy",
        "quit attempts with an end-of-pregnancy outcome of a CO-confirmed or self-reported quit",
        "quit attempts (quit dates set), lost to follow-up counted as smoking",
        "the quit date",
        Improvement.up,
        Unknown.outcome_awaited,
    ),
    Measure(
        "nrt_prescribed",
        "Prescribed nicotine replacement therapy",
        "quit attempts with NRT issued (patch, short-acting or combination)",
        "quit attempts (quit dates set)",
        "the quit date",
        Improvement.up,
    ),
    Measure(
        "feedback_positive",
        "Service-user feedback: rated good",
        "feedback on the stop-smoking service rated 4 or 5 out of 5",
        "feedback received",
        "the day the feedback was received",
        Improvement.up,
    ),
)

BY_CODE: dict[str, Measure] = {measure.code: measure for measure in MEASURES}
CODES: tuple[str, ...] = tuple(BY_CODE)
