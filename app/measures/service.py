"""The measures as a unit's lead sees them: checked parameters, the month grid, SPC, dashboard.

The counting is in ``app.measures.queries`` (SQL), the charts in ``spc`` and ``charts`` (pure).
Records the measures need (staff training, feedback) are written in ``app.measures.records``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import MeasuresSettings
from app.errors import FieldError, Forbidden, InvalidInput, NotFound
from app.identity.principal import Principal
from app.measures import queries, rollup, spc
from app.measures.definitions import BY_CODE, MEASURES, Measure, Unknown
from app.measures.months import Month, months_between
from app.measures.queries import Count, Scope
from app.orgs.models import Organisation, OrganisationKind

MAX_MONTHS = 60  # five years
DEFAULT_MONTHS = 12


@dataclass(frozen=True)
class Unit:
    id: int
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class MeasureValue:
    """One measure for one unit and month; ``count.denominator == 0`` is "no data"."""

    unit: Unit
    month: Month
    measure: Measure
    count: Count


# --- parameters ----------------------------------------------------------------------------------


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"Check {field}.", fields=[FieldError(field, message)])


def parse_month(value: str, field: str) -> Month:
    try:
        return Month.parse(value)
    except ValueError as error:
        raise _invalid(field, str(error)) from None


def month_range(
    first: str | None,
    last: str | None,
    *,
    today: dt.date,
    first_field: str = "from",
    last_field: str = "to",
    default_months: int = DEFAULT_MONTHS,
) -> tuple[Month, Month]:
    """``from`` and ``to`` (YYYY-MM, both included); by default the 12 months to this one."""
    end = parse_month(last, last_field) if last is not None else Month.of(today)
    start = parse_month(first, first_field) if first is not None else end.plus(1 - default_months)
    if end < start:
        raise _invalid(last_field, f"{end} is before {first_field} ({start}); swap them")
    if end.index - start.index + 1 > MAX_MONTHS:
        raise _invalid(
            first_field,
            f"{start} to {end} is {end.index - start.index + 1} months; ask for at most "
            f"{MAX_MONTHS} (5 years)",
        )
    return start, end


def parse_suppress_below(value: str | None, default: int) -> int:
    """Counts from 1 to ``value - 1`` are shown as ``*``; 0 or 1 shows every count."""
    if value is None:
        return default
    text = value.strip()
    if not text.isdigit() or int(text) > 1000:
        raise _invalid(
            "suppress_below", "must be a whole number from 0 to 1000 (0: no suppression)"
        )
    return int(text)


def measure_or_raise(code: str) -> Measure:
    measure = BY_CODE.get(code)
    if measure is None:
        raise NotFound(
            f"No measure is called {code!r}; GET /api/v1/measures/definitions lists them.",
            code="measure_not_found",
        )
    return measure


# --- which units the caller may see ----------------------------------------------------------


def _unit_by_code(session: Session, code: str) -> Organisation:
    unit = session.scalars(
        select(Organisation).where(
            Organisation.code == code.strip().upper(),
            Organisation.kind == OrganisationKind.maternity_unit.value,
        )
    ).one_or_none()
    if unit is None:
        raise _invalid("unit", f"no maternity unit has the code {code.strip()[:16]!r}")
    return unit


def unit_by_code(session: Session, code: str) -> Unit:
    """A maternity unit by its code; 422 naming ``unit`` when there is none."""
    unit = _unit_by_code(session, code)
    return Unit(unit.id, unit.code, unit.name)


def units_for(session: Session, *, principal: Principal, code: str | None) -> list[Unit] | None:
    """The units asked for: a lead sees her own unit; an administrator any one, or all (None)."""
    if code is None:
        if principal.role == "admin":
            return None
        return [_own_unit(session, principal)]
    return [unit_for(session, principal=principal, code=code)]


def unit_for(session: Session, *, principal: Principal, code: str | None) -> Unit:
    """One unit: the one named, or the caller's own when none is named."""
    if code is None:
        return _own_unit(session, principal)
    unit = _unit_by_code(session, code)
    if principal.role != "admin" and unit.id != principal.organisation_id:
        raise Forbidden(
            "A lead sees her own unit's measures; leave out unit, or ask an administrator.",
            fields=[FieldError("unit", "is not your unit")],
        )
    return Unit(unit.id, unit.code, unit.name)


def _own_unit(session: Session, principal: Principal) -> Unit:
    own = session.get(Organisation, principal.organisation_id)
    if own is None or own.kind != OrganisationKind.maternity_unit.value:
        raise _invalid("unit", "required: give the maternity unit's code")
    return Unit(own.id, own.code, own.name)


# --- the month grid --------------------------------------------------------------------------


def values(
    session: Session,
    *,
    units: Sequence[Unit] | None,
    first: Month,
    last: Month,
    settings: MeasuresSettings,
    measures: Sequence[Measure] = MEASURES,
) -> list[MeasureValue]:
    """Every measure for every unit and month, by unit code, month and measure; gaps filled."""
    return list(
        iter_values(
            session, units=units, first=first, last=last, settings=settings, measures=measures
        )
    )


def iter_values(
    session: Session,
    *,
    units: Sequence[Unit] | None,
    first: Month,
    last: Month,
    settings: MeasuresSettings,
    measures: Sequence[Measure] = MEASURES,
) -> Iterator[MeasureValue]:
    unit_ids = None if units is None else [u.id for u in units]
    found = rollup.counts(
        session,
        scope=Scope(unit_ids, first, last),
        settings=settings,
        codes=None if measures is MEASURES else [m.code for m in measures],
    )
    if units is None:
        units = [Unit(*row) for row in queries.unit_rows(session, None)]
    months = months_between(first, last)
    no_data = {measure.code: _no_data(measure) for measure in measures}
    for unit in sorted(units, key=lambda u: u.code):
        for month in months:
            counted = found.month(unit.id, month.label)
            for measure in measures:
                count = counted.get(measure.code) or no_data[measure.code]
                yield MeasureValue(unit, month, measure, count)


def _no_data(measure: Measure) -> Count:
    return Count(0, 0, None if measure.unknown is Unknown.none else 0)


# --- SPC -------------------------------------------------------------------------------------


def rules_from(settings: MeasuresSettings) -> spc.SpcRules:
    return spc.SpcRules(run_length=settings.run_length, trend_length=settings.trend_length)


def baseline_range(first: Month, last: Month, baseline: tuple[Month, Month] | None) -> range | None:
    """Point indices of a fixed baseline, which must lie within the chart's months."""
    if baseline is None:
        return None
    start, end = baseline
    if not first <= start <= last:
        raise _invalid("baseline_from", f"must be within the chart's months ({first} to {last})")
    if not start <= end <= last:
        raise _invalid("baseline_to", f"must be from baseline_from ({start}) to {last}")
    return range(start.index - first.index, end.index - first.index + 1)


def chart_of(
    series: Sequence[MeasureValue],
    *,
    kind: spc.ChartKind,
    baseline: range | None,
    rules: spc.SpcRules,
) -> spc.Chart:
    """An SPC chart of one measure's months: a p-chart of the proportions, or an XmR chart."""
    measure = series[0].measure if series else None
    improvement = measure.improvement if measure else None
    labels = [v.month.label for v in series]
    if kind is spc.ChartKind.p:
        return spc.p_chart(
            labels,
            [v.count.numerator for v in series],
            [v.count.denominator for v in series],
            baseline=baseline,
            improvement=improvement,
            rules=rules,
        )
    return spc.xmr(
        labels,
        [v.count.proportion for v in series],
        baseline=baseline,
        improvement=improvement,
        rules=rules,
    )


def chart(
    session: Session,
    *,
    unit: Unit,
    measure: Measure,
    first: Month,
    last: Month,
    settings: MeasuresSettings,
    kind: spc.ChartKind = spc.ChartKind.p,
    baseline: tuple[Month, Month] | None = None,
) -> spc.Chart:
    """One measure's SPC chart for one unit over the months ``first`` to ``last``."""
    fixed = baseline_range(first, last, baseline)
    series = values(
        session, units=[unit], first=first, last=last, settings=settings, measures=[measure]
    )
    return chart_of(series, kind=kind, baseline=fixed, rules=rules_from(settings))


# --- the lead's dashboard --------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardItem:
    measure: Measure
    series: tuple[MeasureValue, ...]  # one per month, oldest first
    chart: spc.Chart

    @property
    def latest(self) -> MeasureValue | None:
        """The last month with data."""
        return next((v for v in reversed(self.series) if v.count.denominator), None)


@dataclass(frozen=True)
class Dashboard:
    unit: Unit
    first: Month
    last: Month
    items: tuple[DashboardItem, ...]


def dashboard(
    session: Session,
    *,
    unit_id: int,
    first: Month,
    last: Month,
    settings: MeasuresSettings,
    kind: spc.ChartKind = spc.ChartKind.p,
    baseline: tuple[Month, Month] | None = None,
) -> Dashboard:
    """Every measure of one unit with its SPC chart: what the lead's dashboard page shows.

    ``charts.render_svg(item.chart, title=item.measure.title)`` draws an item's chart.
    """
    rows = queries.unit_rows(session, [unit_id])
    if not rows:
        raise NotFound(f"No maternity unit {unit_id}.")
    unit = Unit(*rows[0])
    fixed = baseline_range(first, last, baseline)
    rules = rules_from(settings)
    grid = values(session, units=[unit], first=first, last=last, settings=settings)
    items = []
    for measure in MEASURES:
        series = tuple(v for v in grid if v.measure is measure)
        items.append(
            DashboardItem(measure, series, chart_of(series, kind=kind, baseline=fixed, rules=rules))
        )
    return Dashboard(unit, first, last, tuple(items))


def default_months(today: dt.date, months: int = 24) -> tuple[Month, Month]:
    """The ``months`` months up to and including the current one."""
    last = Month.of(today)
    return last.plus(1 - months), last
