"""Logs are JSON and carry no patient data, even when a caller slips some in."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from app.logs import configure_logging, get_logger


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_patient_fields_and_nhs_number_shapes_are_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", json=True)
    get_logger("test").info(
        "reading_received",
        nhs_number="9434765919",
        family_name="Smith",
        note="posted for 943 476 5919 by the EPR",
        co_ppm=7,
    )
    logging.getLogger("some.library").warning("failed for 943-476-5919")
    err = capsys.readouterr().err
    assert "9434765919" not in err
    assert "943 476 5919" not in err
    assert "943-476-5919" not in err
    assert "Smith" not in err
    records = _json_lines(err)
    assert records[0]["co_ppm"] == 7
    assert records[0]["nhs_number"] == "[redacted]"


def test_request_ids_are_not_mistaken_for_nhs_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    get_logger("test").info("hello", request_id="ab1234567890cd", duration_ms=1234567890)
    record = _json_lines(capsys.readouterr().err)[0]
    assert record["request_id"] == "ab1234567890cd"


def test_access_log_names_the_route_not_the_query(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    client.get("/healthz?nhs_number=9434765919")
    records = [r for r in _json_lines(capsys.readouterr().err) if r.get("event") == "request"]
    assert records, "a request line is logged"
    assert records[-1]["route"] == "/healthz"
    assert records[-1]["status"] == 200
    assert "9434765919" not in json.dumps(records)


def test_the_schedulers_routine_lines_are_left_to_the_workers_own(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """APScheduler's INFO lines ("Running job ...", "executed successfully") twice a minute would
    bury the worker's own job_ran lines; its warnings, such as a missed run, still show."""
    configure_logging("INFO", json=True)
    scheduler = logging.getLogger("apscheduler.executors.default")
    scheduler.info('Running job "refresh_measures"')
    scheduler.warning('Run time of job "refresh_measures" was missed by 0:00:05')
    events = [record["event"] for record in _json_lines(capsys.readouterr().err)]
    assert events == ['Run time of job "refresh_measures" was missed by 0:00:05']


def test_a_connection_the_pool_discards_is_one_line_while_other_errors_keep_their_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A database restart cuts connections mid-request; the pool then cannot reset them and
    discards them, which SQLAlchemy logs with a whole traceback."""
    configure_logging("INFO", json=True)
    for name in ("sqlalchemy.pool.impl.QueuePool", "app.somewhere"):
        try:
            raise OSError("sending query failed: cannot exit pipeline mode while busy\nmore")
        except OSError:
            logging.getLogger(name).error("Exception during reset or similar", exc_info=True)
    pool, other = _json_lines(capsys.readouterr().err)
    assert pool["level"] == "warning" and "exception" not in pool
    assert pool["event"] == (
        "database_connection_discarded: OSError sending query failed: "
        "cannot exit pipeline mode while busy"
    )
    assert other["level"] == "error" and "Traceback" in other["exception"]
