"""JSON bodies checked before FastAPI parses them.

Python's JSON parser takes the last of two duplicate keys, accepts NaN and Infinity, and recurses
on nesting until it overflows. A clinical record must not be saved from an ambiguous body, so
every JSON route of the API uses :class:`StrictJsonRoute`: the body must be at most 64 KB, sent as
JSON, with no duplicate keys, no NaN or Infinity, and nested at most 32 deep.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from app.api.auth import credential_present, missing_credential
from app.errors import ExhaleError

MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 32
BODY_METHODS = {"POST", "PUT", "PATCH"}


class PayloadTooLarge(ExhaleError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ExhaleError):
    status_code = 415
    code = "unsupported_media_type"


class MalformedJson(ExhaleError):
    status_code = 400
    code = "malformed_json"


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _depth_exceeds(text: str, limit: int) -> bool:
    """Bracket depth outside strings, counted without recursion."""
    if text.count("[") + text.count("{") <= limit:  # too few brackets to nest that deep
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise MalformedJson(f"The key {key!r} appears twice in one object; send it once.")
        seen[key] = value
    return seen


def _no_constants(name: str) -> Any:
    raise MalformedJson(f"{name} is not a number JSON allows; send a number or leave it out.")


def check_json_body(body: bytes, content_type: str) -> Any:
    """The body parsed, or the error naming what is wrong with it."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The body is over {MAX_BODY_BYTES // 1024} KB; send one record.")
    if not _is_json(content_type):
        raise UnsupportedMediaType(
            "Send the body as JSON with the header Content-Type: application/json."
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedJson("The body is not UTF-8 text; send JSON encoded as UTF-8.") from None
    if _depth_exceeds(text, MAX_DEPTH):
        raise MalformedJson(f"The JSON is nested more than {MAX_DEPTH} deep; flatten it.")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except json.JSONDecodeError as error:
        raise MalformedJson(
            f"The body is not valid JSON ({error.msg} at line {error.lineno}, "
            f"column {error.colno}); check the syntax."
        ) from None


async def _read_capped(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The body is over {MAX_BODY_BYTES // 1024} KB; send one record.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"The body is over {MAX_BODY_BYTES // 1024} KB; send one record.")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body
    return body


class StrictJsonRoute(APIRoute):
    async def answer_first(self, request: Request, parsed: Any) -> Response | None:
        """A route's own answer to a checked body (``parsed``: the JSON, or None without one)
        before FastAPI parses it; None goes on."""
        return None

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            if request.method in BODY_METHODS:
                parsed = None
                try:
                    body = await _read_capped(request)
                    if body or request.headers.get("content-type"):
                        parsed = check_json_body(body, request.headers.get("content-type", ""))
                except ExhaleError:
                    if not credential_present(request):
                        raise missing_credential() from None  # who asks comes before what
                    raise
                answer = await self.answer_first(request, parsed)
                if answer is not None:
                    return answer
            return await handler(request)

        return strict_handler
