"""The bridge's SQLite queue: durable, deduplicating, and honest about conflicts."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from devices.reading_queue import PutOutcome, ReadingQueue, reading_body
from devices.readings import Result

WHEN = dt.datetime(2025, 3, 1, 10, 15, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))


def result(sequence: int, ppm: int = 3) -> Result:
    return Result("SIM-0001", sequence, ppm, WHEN, 55, dt.date(2026, 1, 31), "m", "f")


def test_the_body_is_the_documented_json() -> None:
    assert reading_body(result(42, 7)) == {
        "device_serial": "SIM-0001",
        "sequence": 42,
        "co_ppm": 7,
        "measured_at": "2025-03-01T10:15:30+01:00",
        "battery_percent": 55,
        "calibration_due_on": "2026-01-31",
        "model": "m",
        "firmware": "f",
    }


def test_queued_results_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "queue.db"
    queue = ReadingQueue(path)
    assert queue.put(result(1)) is PutOutcome.QUEUED
    assert queue.put(result(2)) is PutOutcome.QUEUED
    queue.close()

    reopened = ReadingQueue(path)
    item = reopened.next_due()
    assert item is not None
    assert (item.key, item.body["co_ppm"]) == ("SIM-0001-1", 3)
    assert reopened.counts().queued == 2
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1


def test_a_resend_is_a_duplicate_before_and_after_delivery(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "q.db")
    queue.put(result(1))
    assert queue.put(result(1)) is PutOutcome.DUPLICATE
    item = queue.next_due()
    assert item is not None
    queue.mark_sent(item, 201)
    assert queue.put(result(1)) is PutOutcome.DUPLICATE
    assert queue.next_due() is None
    assert queue.counts().sent == 1


def test_a_reused_sequence_with_another_reading_is_kept_aside(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "q.db")
    queue.put(result(1, ppm=3))
    assert queue.put(result(1, ppm=30)) is PutOutcome.CONFLICT
    assert queue.put(result(1, ppm=30)) is PutOutcome.DUPLICATE
    (conflict,) = queue.rejected()
    assert conflict.body["co_ppm"] == 30
    assert "sequence reused" in conflict.reason
    assert queue.counts().queued == 1


def test_retries_go_behind_new_results(tmp_path: Path) -> None:
    queue = ReadingQueue(tmp_path / "q.db")
    queue.put(result(1))
    first = queue.next_due()
    assert first is not None
    queue.mark_retry(first, 1e12, "answered 503")
    queue.put(result(2))
    second = queue.next_due()
    assert second is not None and second.sequence == 2
    queue.mark_rejected(second, 422, "422: co_ppm invalid")
    assert queue.counts().rejected == 1
    retried = queue.next_due()
    assert retried is not None and (retried.sequence, retried.attempts) == (1, 1)
