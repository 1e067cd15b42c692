"""``Idempotency-Key``: the first request with a key does the work; repeats get its stored answer.

The claim is committed in a transaction of its own before the work starts, so that a repeat
arriving meanwhile sees it (409, retry shortly); the answer is stored in the work's transaction,
so it exists exactly when the work does. A claim left by a process that died is taken over after
a minute.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, FieldError, InvalidInput
from app.idempotency.models import IdempotencyRecord

STALE_AFTER = dt.timedelta(seconds=60)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class StoredAnswer:
    status_code: int
    body: dict[str, Any]


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise InvalidInput(
            "Check the Idempotency-Key header.",
            fields=[
                FieldError(
                    "Idempotency-Key", "use 1 to 255 printable ASCII characters, for example a UUID"
                )
            ],
        )
    return key


def digest_of(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim(
    session: Session, *, caller: str, key: str, digest: str, now: dt.datetime
) -> StoredAnswer | None:
    """None when this request should do the work; the stored answer when it was done before.

    The caller commits straight after a None, so that repeats see the claim at once.
    """
    try:
        with session.begin_nested():
            session.add(
                IdempotencyRecord(caller=caller, key=key, request_digest=digest, created_at=now)
            )
        return None
    except IntegrityError:
        pass
    record = session.scalars(
        select(IdempotencyRecord).where(
            IdempotencyRecord.caller == caller, IdempotencyRecord.key == key
        )
    ).one()
    if record.request_digest != digest:
        raise InvalidInput(
            "This Idempotency-Key was used with a different request; use a new key for a "
            "new request.",
            code="idempotency_key_reused",
            fields=[FieldError("Idempotency-Key", "already used for a different body")],
        )
    if record.status == "completed" and record.response_body is not None:
        return StoredAnswer(record.response_status or 200, record.response_body)
    if record.created_at > now - STALE_AFTER:
        raise Conflict(
            "A request with this Idempotency-Key is still being processed; retry in a "
            "moment to get its answer.",
            code="idempotency_key_in_use",
            headers={"Retry-After": "1"},
        )
    taken = session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.id == record.id, IdempotencyRecord.created_at == record.created_at)
        .values(created_at=now)
    )
    if getattr(taken, "rowcount", 0) != 1:
        raise Conflict(
            "Another request took this Idempotency-Key over; retry in a moment.",
            code="idempotency_key_in_use",
            headers={"Retry-After": "1"},
        )
    return None


def complete(
    session: Session,
    *,
    caller: str,
    key: str,
    status_code: int,
    body: dict[str, Any],
    now: dt.datetime,
) -> None:
    """Store the answer in the work's own transaction."""
    session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.caller == caller, IdempotencyRecord.key == key)
        .values(
            status="completed", response_status=status_code, response_body=body, completed_at=now
        )
    )


def release(session: Session, *, caller: str, key: str) -> None:
    """The work failed and stored nothing: free the key so that a corrected retry can use it."""
    session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.caller == caller,
            IdempotencyRecord.key == key,
            IdempotencyRecord.status == "in_progress",
        )
    )
