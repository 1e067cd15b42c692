"""HL7 v2 over HTTP: an ORU^R01 in the body, its ACK in the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.api.auth import require
from app.api.deps import SessionDep, SettingsDep
from app.db import utcnow
from app.errors import ExhaleError
from app.hl7v2 import service
from app.identity.principal import Principal

router = APIRouter(prefix="/hl7", tags=["hl7v2"])

ACK_MEDIA_TYPE = "x-application/hl7-v2+er7"
MEDIA_TYPES = {ACK_MEDIA_TYPE, "application/hl7-v2", "application/hl7-v2+er7", "text/plain"}
MAX_BYTES = 1024 * 1024
EXAMPLE_ACK = (
    "MSH|^~\\&|EXHALE|RXX|EPR|RXX|20261126101502+0000||ACK^R01^ACK|ACKMSG0001|P|2.5\r"
    "MSA|AA|MSG0001\r"
)

DESCRIPTION = """
Records the CO readings of an HL7 v2 **ORU^R01** message (ER7 text, segments ending in `\\r`,
`\\n` or `\\r\\n`) exactly as `POST /api/v1/readings` would, and answers its **ACK**: `AA`
accepted, `AE` error (the content is wrong; ERR segments say where and why), `AR` rejected (not
an ORU^R01 exhale can read). Role: epr. The layout is in docs/hl7v2.md.

The ACK comes with 200 whatever its code; a re-sent message (the same MSH-3, MSH-4 and MSH-10)
stores nothing new and gets the same ACK. Other statuses are the API's JSON errors: 401, 403,
413 (over 1 MB), 415 (send `x-application/hl7-v2+er7`, `application/hl7-v2` or `text/plain`).
"""


class UnsupportedMediaType(ExhaleError):
    status_code = 415
    code = "unsupported_media_type"


class PayloadTooLarge(ExhaleError):
    status_code = 413
    code = "payload_too_large"


async def message_text(request: Request) -> str:
    """The body as text, after the credential is checked (dependencies resolve in order)."""
    media_type, _, parameters = request.headers.get("content-type", "").partition(";")
    if media_type.strip().lower() not in MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"Send the message as {ACK_MEDIA_TYPE} (or application/hl7-v2, or text/plain)."
        )
    body = await request.body()
    if len(body) > MAX_BYTES:
        raise PayloadTooLarge(f"A message may be at most {MAX_BYTES} bytes.")
    charset = "utf-8"
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    try:
        return body.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return "\ufffd"  # answered with an AR: no MSH can be read


@router.post(
    "/v2",
    summary="Record CO readings sent as an HL7 v2 ORU^R01",
    description=DESCRIPTION,
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media_type: {"schema": {"type": "string", "maxLength": MAX_BYTES}}
                for media_type in sorted(MEDIA_TYPES)
            },
        }
    },
    responses={
        200: {"description": "The ACK", "content": {ACK_MEDIA_TYPE: {"example": EXAMPLE_ACK}}},
        413: {"description": "Body over 1 MB"},
        415: {"description": "Not sent as HL7 v2 text"},
    },
)
def receive_message(
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, require("epr")],
    text: Annotated[str, Depends(message_text)],
) -> Response:
    received = service.receive(
        session, principal=principal, text=text, settings=settings, now=utcnow()
    )
    if received.accepted:
        session.commit()
    else:
        session.rollback()
    return Response(received.ack, media_type=f"{ACK_MEDIA_TYPE}; charset=utf-8")
