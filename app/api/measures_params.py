"""Query parameters and helpers shared by the measures routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

UnitQuery = Annotated[
    str | None,
    Query(
        max_length=16,
        description="The maternity unit's code. Left out: a lead's own unit; for an "
        "administrator, every unit (measures and export) or her own unit (charts).",
    ),
]
FromQuery = Annotated[
    str | None, Query(alias="from", description="First month, YYYY-MM (default: 11 months ago)")
]
ToQuery = Annotated[
    str | None, Query(alias="to", description="Last month, YYYY-MM, included (default: this one)")
]
ChartQuery = Annotated[
    str | None, Query(description="`p` (default: p-chart of the proportion) or `xmr`.")
]
BaselineFromQuery = Annotated[
    str | None, Query(description="Fix the limits on the months from this one (YYYY-MM)...")
]
BaselineToQuery = Annotated[str | None, Query(description="...to this one (YYYY-MM).")]
