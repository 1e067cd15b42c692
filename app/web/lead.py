"""The lead's dashboard: every measure of her unit, month by month, on an SPC chart.

The counting and the charts are app.measures' (``service.dashboard``, ``charts.render_svg``);
this page only lays them out. Aggregates only: no patient-level record is read here.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from app.api.deps import SessionDep, SettingsDep
from app.clock import local_today
from app.measures import charts, service
from app.measures.months import Month
from app.measures.spc import ChartKind, Variation
from app.web.common import TEMPLATES, render
from app.web.pages import LeadUser, PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)

PERIODS = (12, 24, 36)
KINDS = (
    (ChartKind.p.value, "p-chart (limits from each month's numbers)"),
    (ChartKind.xmr.value, "XmR chart"),
)
VARIATION_WORDS = {
    Variation.common_cause: "Common cause variation",
    Variation.improvement: "Special cause: improvement",
    Variation.concern: "Special cause: concern",
    Variation.neither: "Special cause variation",
}


@dataclass(frozen=True)
class Shown:
    item: service.DashboardItem
    chart_src: str
    chart_alt: str
    variation: str


def month_words(label: str) -> str:
    try:
        return Month.parse(label).first_day.strftime("%B %Y")
    except ValueError:
        return label


TEMPLATES.env.filters["month_words"] = month_words


def _shown(item: service.DashboardItem) -> Shown:
    svg = charts.render_svg(item.chart, title=item.measure.title)
    latest = item.latest
    point = item.chart.latest
    variation = VARIATION_WORDS.get(point.variation, "") if point and point.variation else ""
    summary = "no data yet"
    if latest is not None and latest.count.proportion is not None:
        summary = (
            f"{month_words(latest.month.label)}: {latest.count.proportion * 100:.1f}% "
            f"({latest.count.numerator} of {latest.count.denominator})"
        )
    alt = f"SPC chart of {item.measure.title}. Latest, {summary}. {variation or 'No limits yet'}."
    encoded = base64.b64encode(svg.encode()).decode()
    return Shown(item, f"data:image/svg+xml;base64,{encoded}", alt, variation)


@router.get("/measures")
def show_measures(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: LeadUser,
    months: Annotated[int, Query(ge=1, le=60)] = 24,
    chart: Annotated[str, Query(max_length=4)] = ChartKind.p.value,
) -> Response:
    assert user.organisation_id is not None
    months = months if months in PERIODS else 24
    kind = ChartKind(chart) if chart in {k for k, _label in KINDS} else ChartKind.p
    first, last = service.default_months(local_today(), months)
    board = service.dashboard(
        session,
        unit_id=user.organisation_id,
        first=first,
        last=last,
        settings=settings.measures,
        kind=kind,
    )
    context = {
        "user": user,
        "board": board,
        "items": [_shown(item) for item in board.items],
        "months": months,
        "kind": kind.value,
        "periods": PERIODS,
        "kinds": KINDS,
    }
    return render(request, "measures.html", context)
