"""Structured JSON logs that never carry patient data.

Every record, ours or a library's, goes through the same processors. Keys that name patient data are
dropped and anything shaped like an NHS number is masked, as a second line of defence behind
the rule that patient data is never logged in the first place.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

PATIENT_KEYS = frozenset(
    {
        "nhs_number",
        "given_name",
        "family_name",
        "date_of_birth",
        "phone",
        "postcode",
        "password",
        "secret",
        "authorization",
    }
)
NHS_NUMBER_SHAPE = re.compile(r"(?<![0-9A-Za-z])\d{3}[ -]?\d{3}[ -]?\d{4}(?![0-9A-Za-z])")
REDACTED = "[redacted]"


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return NHS_NUMBER_SHAPE.sub(REDACTED, value)
    if isinstance(value, dict):
        return {k: REDACTED if k.lower() in PATIENT_KEYS else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact_patient_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key.lower() in PATIENT_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


class _DiscardedConnections(logging.Filter):
    """SQLAlchemy's pool logs an error with a traceback when it cannot reset a connection given
    back to it, and then discards the connection: the expected end of a connection that a
    database restart cut mid-request. What the request saw is logged already; one line is enough.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("sqlalchemy.pool") and record.exc_info:
            error = record.exc_info[1]
            reason = str(error).splitlines()[0] if error is not None and str(error) else ""
            record.msg = "database_connection_discarded: %s %s"
            record.args = (type(error).__name__, reason)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time, so redirection after set-up still works."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_patient_data,
            renderer,
        ],
    )
    # Nothing rendered reads where a record was logged from, or which thread or process logged
    # it: skip looking them up on every record (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    handler.addFilter(_DiscardedConnections())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler", "alembic"):
        lib = logging.getLogger(name)
        lib.handlers[:] = []
        lib.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs requests, no queries
    # The worker logs each job's run itself (job_ran, job_failed, job_skipped, by job name);
    # APScheduler's own lines at INFO repeat that twice a run. Its warnings (a run missed) stay.
    logging.getLogger("apscheduler").setLevel(max(logging.getLevelName(level), logging.WARNING))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(max(logging.getLevelName(level), logging.WARNING))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
