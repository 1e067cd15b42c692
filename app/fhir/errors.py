"""FHIR errors, and the OperationOutcome every failure under /fhir is answered with.

An issue names the element that was wrong (``expression``) and how to fix it (``diagnostics``);
it never repeats a submitted value, which may be patient data.
"""

from __future__ import annotations

from typing import Any

from app.errors import ExhaleError, FieldError

# OperationOutcome.issue.code (http://hl7.org/fhir/issue-type) for each HTTP status.
ISSUE_CODES = {
    400: "structure",
    401: "security",
    403: "security",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    412: "multiple-matches",
    413: "too-costly",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    503: "transient",
}


class Unparseable(ExhaleError):
    """The body is not an R4 resource of the type the URL names."""

    status_code = 400
    code = "structure"


class BadSearch(ExhaleError):
    status_code = 400
    code = "not-supported"


class MethodNotAllowed(ExhaleError):
    status_code = 405
    code = "not-supported"


class MultipleMatches(ExhaleError):
    status_code = 412
    code = "multiple-matches"


class Invalid(ExhaleError):
    """A well-formed Observation this server cannot record (FHIR rules or exhale's)."""

    status_code = 422
    code = "invalid"


def invalid(expression: str, message: str, *, code: str = "invalid") -> Invalid:
    return Invalid(
        f"Check {expression}: {message}", fields=[FieldError(expression, message)], code=code
    )


def operation_outcome(
    status_code: int,
    detail: str,
    fields: list[FieldError] | None = None,
    *,
    code: str | None = None,
) -> dict[str, Any]:
    issue_code = code if code in _ISSUE_TYPES else ISSUE_CODES.get(status_code, "exception")
    if status_code in (401, 403):
        issue_code = "security"
    severity = "error" if status_code < 500 else "fatal"
    issues: list[dict[str, Any]] = [
        {
            "severity": severity,
            "code": issue_code,
            "diagnostics": f.message,
            "expression": [f.field],
        }
        for f in fields or []
    ]
    if not issues:
        issues = [{"severity": severity, "code": issue_code, "diagnostics": detail}]
    elif detail:
        issues[0]["details"] = {"text": detail}
    return {"resourceType": "OperationOutcome", "issue": issues}


_ISSUE_TYPES = frozenset(
    {
        "invalid",
        "structure",
        "required",
        "value",
        "invariant",
        "security",
        "not-supported",
        "duplicate",
        "multiple-matches",
        "not-found",
        "business-rule",
        "conflict",
        "code-invalid",
        "processing",
        "throttled",
        "too-costly",
        "transient",
        "exception",
    }
)
