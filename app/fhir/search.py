"""FHIR search on Observations: by the woman's NHS number, code and date, audited like a read.

Unknown parameters are refused (400) rather than ignored: a filter silently dropped would show
the caller more women's records than asked for.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.clock import LONDON
from app.fhir.errors import BadSearch
from app.fhir.observations import CO_CODE, NHS_NUMBER_SYSTEM
from app.identity.principal import Principal
from app.pregnancies.models import Pregnancy
from app.pregnancies.nhs_number import InvalidNhsNumberError, normalise_nhs_number
from app.readings.models import Reading
from app.readings.service import RECORD_TYPE

PATIENT_PARAMS = ("patient.identifier", "subject:identifier", "patient:identifier")
DEFAULT_COUNT = 50
MAX_COUNT = 100
IGNORED = {"_format", "_pretty"}


@dataclass
class ObservationQuery:
    nhs_numbers: list[str] = field(default_factory=list)
    matches_code: bool = True
    dates: list[ColumnElement[bool]] = field(default_factory=list)
    count: int = DEFAULT_COUNT


def parse_count(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= MAX_COUNT:
        raise BadSearch(f"_count must be a whole number from 0 to {MAX_COUNT}.")
    return int(value)


def _nhs_number(value: str, *, allow_synthetic: bool) -> str:
    system, bar, number = value.rpartition("|")
    if bar and system not in ("", NHS_NUMBER_SYSTEM):
        raise BadSearch(f"Search patients by identifier {NHS_NUMBER_SYSTEM}|<NHS number>.")
    try:
        return normalise_nhs_number(number, allow_synthetic=allow_synthetic)
    except InvalidNhsNumberError as error:
        raise BadSearch(f"The NHS number searched for {error}.") from None


def _code_matches(value: str) -> bool:
    for token in value.split(","):
        system, bar, code = token.rpartition("|")
        if code == CO_CODE[1] and (not bar or system in ("", CO_CODE[0])):
            return True
    return False


def _bounds(text: str) -> tuple[dt.datetime, dt.datetime]:
    """The instant range a FHIR date or dateTime stands for; a bare day is England's day."""
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            start = dt.datetime.combine(day, dt.time(), tzinfo=LONDON)
            end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=LONDON)
            return start, end
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise BadSearch(
            "date takes a day (2026-11-26) or a time with a zone (2026-11-26T10:15:00Z), "
            "optionally prefixed eq, gt, ge, lt or le."
        )
    return moment, moment + dt.timedelta(seconds=1)


def _date_clause(value: str) -> ColumnElement[bool]:
    prefix = value[:2] if value[:2].isalpha() else "eq"
    text = value[2:] if value[:2].isalpha() else value
    start, end = _bounds(text)
    column = Reading.measured_at
    clauses: dict[str, ColumnElement[bool]] = {
        "eq": (column >= start) & (column < end),
        "ge": column >= start,
        "gt": column >= end,
        "le": column < end,
        "lt": column < start,
    }
    if prefix not in clauses:
        raise BadSearch("date takes the prefixes eq, gt, ge, lt and le.")
    return clauses[prefix]


def parse_observation_query(
    params: list[tuple[str, str]], *, allow_synthetic: bool
) -> ObservationQuery:
    query = ObservationQuery()
    for name, value in params:
        if name in PATIENT_PARAMS:
            query.nhs_numbers.append(_nhs_number(value, allow_synthetic=allow_synthetic))
        elif name == "code":
            query.matches_code = query.matches_code and _code_matches(value)
        elif name == "date":
            query.dates.append(_date_clause(value))
        elif name == "_count":
            query.count = parse_count(value)
        elif name not in IGNORED:
            raise BadSearch(
                f"The search parameter {name!r} is not supported here; use "
                f"{', '.join(PATIENT_PARAMS)}, code, date or _count."
            )
    return query


def _visible(principal: Principal) -> Select[Reading, Pregnancy]:
    """What a reader may see, as for one reading: a machine its own, a midwife her unit's."""
    statement = select(Reading, Pregnancy).join(Pregnancy, Pregnancy.id == Reading.pregnancy_id)
    if principal.is_client:
        return statement.where(Reading.api_client_id == principal.id)
    return statement.where(Pregnancy.unit_id == principal.organisation_id)


def list_observations(
    session: Session, *, principal: Principal, query: ObservationQuery
) -> tuple[list[tuple[Reading, Pregnancy]], int]:
    """Matching readings, latest first, and how many match; each one returned is audited."""
    if not query.matches_code:
        return [], 0
    statement = _visible(principal)
    for number in query.nhs_numbers:
        statement = statement.where(Pregnancy.nhs_number == number)
    for clause in query.dates:
        statement = statement.where(clause)
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    result = session.execute(
        statement.order_by(Reading.measured_at.desc(), Reading.id.desc()).limit(query.count)
    )
    rows = [(reading, pregnancy) for reading, pregnancy in result]
    for reading, pregnancy in rows:
        audit.record(
            session,
            actor=principal,
            action=audit.Action.search,
            record_type=RECORD_TYPE,
            record_id=reading.id,
            subject_pregnancy_id=pregnancy.id,
        )
    return rows, total


def find_by_identifier(
    session: Session, *, principal: Principal, system: str | None, value: str
) -> list[Reading]:
    """This sender's readings stored under the identifier (any system when none is given)."""
    column = Reading.api_client_id if principal.is_client else Reading.recorded_by_user_id
    statement = select(Reading).where(column == principal.id)
    if system is None:
        statement = statement.where(Reading.source_id.endswith(f"|{value}", autoescape=True))
    else:
        statement = statement.where(Reading.source_id == f"{system}|{value}")
    return list(session.scalars(statement.order_by(Reading.id).limit(2)))
