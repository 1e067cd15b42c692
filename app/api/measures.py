"""The change package's measures, their SPC charts, and the records they need.

Roles: a unit's ``lead`` sees her unit's measures and keeps its staff training register; an
``admin`` may ask for any unit (or, for the measures table and export, all of them). The
stop-smoking service (``advisor``, ``service``) records women's feedback on it. Leads never see
patient-level records: feedback is listed without the referral it came from. The training
register and feedback routes are in ``measures_records``, included in this router.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import StreamingResponse

from app.api import measures_records
from app.api.auth import require
from app.api.deps import SessionDep, SettingsDep
from app.api.measures_params import (
    BaselineFromQuery,
    BaselineToQuery,
    ChartQuery,
    FromQuery,
    ToQuery,
    UnitQuery,
)
from app.api.strict_json import StrictJsonRoute
from app.clock import local_today
from app.errors import FieldError, InvalidInput
from app.identity.principal import Principal
from app.measures import charts, export, service
from app.measures.definitions import MEASURES, Measure
from app.measures.schemas import (
    MeasureDefinitionRead,
    MeasuresRead,
    MeasureValueRead,
    SignalRead,
    SpcChartRead,
    SpcPointRead,
)
from app.measures.spc import Chart, ChartKind

router = APIRouter(prefix="/api/v1/measures", tags=["measures"], route_class=StrictJsonRoute)

LEADS = ("lead", "admin")


# --- the measures ----------------------------------------------------------------------------

MEASURES_DESCRIPTION = """
Roles: lead (her unit), admin (any unit, or every unit when `unit` is left out).

Every measure of the change package for each month from `from` to `to` (YYYY-MM, at most 60
months): numerator, denominator, proportion, and `unknown` (records left out of the denominator:
unknown smoking status, or quit outcomes still awaited). A month without a denominator has
`proportion` null and `note` "no data". The rules are in docs/measures.md and at
`GET /api/v1/measures/definitions`.

`format=csv` returns the national export: columns `unit_code, unit_name, month, measure,
numerator, denominator, proportion, unknown, note`, with small numbers suppressed: counts from 1
to `suppress_below` - 1 (default EXHALE_MEASURES__SUPPRESS_BELOW, 8: counts 1 to 7) shown as `*`,
and a numerator whose difference from its denominator is that small. `suppress_below=0` turns it
off. JSON is not suppressed unless `suppress_below` is given.
"""


@router.get(
    "",
    summary="The measures, by unit and month (JSON or CSV)",
    description=MEASURES_DESCRIPTION,
    responses={200: {"model": MeasuresRead, "content": {"text/csv": {}}}},
)
def list_measures(
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, require(*LEADS)],
    unit: UnitQuery = None,
    first: FromQuery = None,
    last: ToQuery = None,
    format: Annotated[str | None, Query(description="`json` (default) or `csv`")] = None,
    suppress_below: Annotated[
        str | None, Query(description="Show counts from 1 to this minus 1 as `*`; 0: none")
    ] = None,
) -> Any:
    if format not in (None, "json", "csv"):
        raise InvalidInput("Check format.", fields=[FieldError("format", "use json or csv")])
    start, end = service.month_range(first, last, today=local_today())
    as_csv = format == "csv"
    default = settings.measures.suppress_below if as_csv else 0
    below = service.parse_suppress_below(suppress_below, default)
    units = service.units_for(session, principal=principal, code=unit)
    rows = service.values(session, units=units, first=start, last=end, settings=settings.measures)
    if as_csv:
        name = f"exhale-measures-{units[0].code if units else 'all'}-{start}-to-{end}.csv"
        return StreamingResponse(
            export.csv_chunks(rows, suppress_below=below),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    seen = {v.unit.code: v.unit.name for v in rows}
    return MeasuresRead(
        first=start.label,
        last=end.label,
        suppress_below=below,
        units=[{"code": code, "name": name} for code, name in seen.items()],
        values=[_value(v, below) for v in rows],
    ).model_dump(by_alias=True)


def _value(value: service.MeasureValue, below: int) -> MeasureValueRead:
    shown = export.shown(value.count, suppress_below=below)
    return MeasureValueRead(
        unit=value.unit.code,
        month=value.month.label,
        measure=value.measure.code,
        numerator=shown.numerator,
        denominator=shown.denominator,
        proportion=shown.proportion,
        unknown=shown.unknown,
        note=shown.note,
    )


@router.get(
    "/definitions",
    summary="What each measure counts",
    description="Roles: lead, admin. The measures in the export's order, with their rules.",
)
def list_definitions(
    principal: Annotated[Principal, require(*LEADS)],
) -> list[MeasureDefinitionRead]:
    return [_definition(m) for m in MEASURES]


def _definition(measure: Measure) -> MeasureDefinitionRead:
    return MeasureDefinitionRead(
        code=measure.code,
        title=measure.title,
        numerator=measure.numerator,
        denominator=measure.denominator,
        month=measure.month,
        improvement=measure.improvement.value,
        unknown=measure.unknown.value,
        mandatory=measure.mandatory,
    )


# --- SPC charts ------------------------------------------------------------------------------

SPC_DESCRIPTION = """
Roles: lead (her unit), admin (any unit). One measure's SPC chart, as Making Data Count draws it.

`chart=p` (default): a p-chart, the month's proportion against binomial limits for its own
denominator; `chart=xmr`: an XmR chart of the proportions (limits at mean +/- 2.66 x mean moving
range). Signals: a point outside the limits; a run of EXHALE_MEASURES__RUN_LENGTH (7) on one side
of the centre; a trend of EXHALE_MEASURES__TREND_LENGTH (7) rising or falling; 2 of 3 points
beyond two thirds of the way to a limit. Limits come from every month shown, or from a fixed
baseline (`baseline_from`, `baseline_to`). `variation` says whether a signal is an improvement
or a concern for this measure.
"""


def _chart(
    session: SessionDep,
    settings: SettingsDep,
    principal: Principal,
    measure_code: str,
    unit: str | None,
    first: str | None,
    last: str | None,
    chart: str | None,
    baseline_from: str | None,
    baseline_to: str | None,
) -> tuple[service.Unit, Measure, Chart]:
    measure = service.measure_or_raise(measure_code)
    if chart not in (None, "p", "xmr"):
        raise InvalidInput("Check chart.", fields=[FieldError("chart", "use p or xmr")])
    start, end = service.month_range(first, last, today=local_today(), default_months=24)
    baseline = None
    if baseline_from is not None or baseline_to is not None:
        baseline = service.month_range(
            baseline_from or start.label,
            baseline_to or end.label,
            today=local_today(),
            first_field="baseline_from",
            last_field="baseline_to",
        )
    chosen = service.unit_for(session, principal=principal, code=unit)
    drawn = service.chart(
        session,
        unit=chosen,
        measure=measure,
        first=start,
        last=end,
        settings=settings.measures,
        kind=ChartKind(chart or "p"),
        baseline=baseline,
    )
    return chosen, measure, drawn


@router.get("/spc/{measure}", summary="One measure's SPC chart (JSON)", description=SPC_DESCRIPTION)
def spc_chart(
    measure: Annotated[str, Path(max_length=64)],
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, require(*LEADS)],
    unit: UnitQuery = None,
    first: FromQuery = None,
    last: ToQuery = None,
    chart: ChartQuery = None,
    baseline_from: BaselineFromQuery = None,
    baseline_to: BaselineToQuery = None,
) -> SpcChartRead:
    chosen, definition, drawn = _chart(
        session, settings, principal, measure, unit, first, last, chart, baseline_from, baseline_to
    )
    return _spc_read(chosen, definition, drawn)


@router.get(
    "/charts/{measure}.svg",
    summary="One measure's SPC chart (SVG, to show or download)",
    description=SPC_DESCRIPTION,
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
def svg_chart(
    measure: Annotated[str, Path(max_length=64)],
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, require(*LEADS)],
    unit: UnitQuery = None,
    first: FromQuery = None,
    last: ToQuery = None,
    chart: ChartQuery = None,
    baseline_from: BaselineFromQuery = None,
    baseline_to: BaselineToQuery = None,
) -> Response:
    chosen, definition, drawn = _chart(
        session, settings, principal, measure, unit, first, last, chart, baseline_from, baseline_to
    )
    svg = charts.render_svg(drawn, title=f"{definition.title}: {chosen.name}")
    name = f"{chosen.code}-{definition.code}-{drawn.points[0].label}-to-{drawn.points[-1].label}"
    return Response(
        svg,
        media_type="image/svg+xml",
        headers={
            "Content-Disposition": f'inline; filename="{name}.svg"',
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        },
    )


def _spc_read(unit: service.Unit, measure: Measure, drawn: Chart) -> SpcChartRead:
    start, stop = drawn.baseline
    latest = drawn.latest
    return SpcChartRead(
        unit=unit.code,
        measure=measure.code,
        title=measure.title,
        chart=drawn.kind.value,
        improvement=measure.improvement.value,
        centre=drawn.centre,
        mean_moving_range=drawn.mean_moving_range,
        baseline_from=drawn.points[start].label if drawn.points else None,
        baseline_to=drawn.points[stop - 1].label if drawn.points else None,
        run_length=drawn.rules.run_length,
        trend_length=drawn.rules.trend_length,
        variation=latest.variation.value if latest and latest.variation else None,
        points=[
            SpcPointRead(
                month=p.label,
                value=p.value,
                numerator=p.numerator,
                denominator=p.denominator,
                moving_range=p.moving_range,
                centre=p.centre,
                lower=p.lower,
                upper=p.upper,
                lower_two_thirds=p.lower_two_thirds,
                upper_two_thirds=p.upper_two_thirds,
                signals=[
                    SignalRead(rule=s.rule.value, side=s.side.value)
                    for s in sorted(p.signals, key=lambda s: (s.rule, s.side))
                ],
                variation=p.variation.value if p.variation else None,
            )
            for p in drawn.points
        ],
    )


router.include_router(measures_records.router)
