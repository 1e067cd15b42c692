"""Field types shared by the request schemas.

Ids of records are bounded by what the database can hold.

Pydantic's lax mode reads a number as a Unix time, so ``"born_on": 0`` would be saved as
1 January 1970. A clinical date or time is only ever taken as the ISO 8601 text the API documents.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, StrictInt


def _text_only(value: Any) -> Any:
    if isinstance(value, (int, float)):
        raise ValueError("give the date as text, YYYY-MM-DD (time: ISO 8601 with its offset)")
    return value


# The largest id (or version) PostgreSQL's integer columns hold: a larger one is refused as invalid
# input rather than failing in the database.
MAX_RECORD_ID = 2**31 - 1
RecordRef = Annotated[StrictInt, Field(ge=1, le=MAX_RECORD_ID)]

IsoDate = Annotated[dt.date, BeforeValidator(_text_only)]
# A time is kept and answered in UTC whatever offset it came with, so the answer to a request is
# the same as every later read of what it stored.
IsoDatetime = Annotated[
    AwareDatetime,
    BeforeValidator(_text_only),
    AfterValidator(lambda moment: moment.astimezone(dt.UTC)),
]
