"""The bridge's durable queue: a SQLite file that outlives server outages and restarts.

A result is committed here (``PRAGMA synchronous=FULL``) before the monitor is told it may forget
it, and leaves ``pending`` only when the server has acknowledged it (to ``sent``) or refused it for
good (to ``rejected``, kept for a person to look at). ``sent`` remembers what was delivered, so a
monitor that resends an old result does not make the bridge post it again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.readings import Result

SCHEMA_VERSION = 1
SENT_KEEP = 100_000
"""Delivered keys remembered for recognising resends (years of tests for one clinic)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_serial TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    body TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    received_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    UNIQUE (device_serial, sequence)
);
CREATE TABLE IF NOT EXISTS sent (
    device_serial TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    PRIMARY KEY (device_serial, sequence)
);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_serial TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    body TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status_code INTEGER,
    reason TEXT NOT NULL,
    rejected_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rejected_key ON rejected (device_serial, sequence);
"""
_KNOWN_FINGERPRINTS = """
SELECT fingerprint FROM pending WHERE device_serial = ? AND sequence = ?
UNION ALL SELECT fingerprint FROM sent WHERE device_serial = ? AND sequence = ?
UNION ALL SELECT fingerprint FROM rejected WHERE device_serial = ? AND sequence = ?
"""


class PutOutcome(enum.StrEnum):
    QUEUED = "queued"
    DUPLICATE = "duplicate"
    """Already queued, sent or rejected with the same content: a monitor's resend."""
    CONFLICT = "conflict"
    """Same serial and sequence, different reading: kept in ``rejected``, never sent."""


@dataclass(frozen=True, slots=True)
class QueuedReading:
    id: int
    device_serial: str
    sequence: int
    body: dict[str, Any]
    attempts: int
    next_attempt_at: float

    @property
    def key(self) -> str:
        return f"{self.device_serial}-{self.sequence}"


@dataclass(frozen=True, slots=True)
class RejectedReading:
    device_serial: str
    sequence: int
    body: dict[str, Any]
    status_code: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class QueueCounts:
    queued: int
    rejected: int
    sent: int


def reading_body(result: Result) -> dict[str, Any]:
    """The JSON body posted to ``/api/v1/device-readings`` for ``result``.

    ``measured_at`` is RFC 3339 with the monitor's UTC offset; ``calibration_due_on`` an ISO date.
    """
    return {
        "device_serial": result.device_serial,
        "sequence": result.sequence,
        "co_ppm": result.co_ppm,
        "measured_at": result.measured_at.isoformat(),
        "battery_percent": result.battery_percent,
        "calibration_due_on": (
            result.calibration_due_on.isoformat() if result.calibration_due_on else None
        ),
        "model": result.model,
        "firmware": result.firmware,
    }


def _fingerprint(result: Result) -> str:
    return f"{result.co_ppm}|{result.measured_at.isoformat()}"


def _now_text() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class ReadingQueue:
    """The queue in ``path`` (created with its folder if missing); safe to share between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA synchronous=FULL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self._db.close()
            raise RuntimeError(
                f"queue {path} was written by a newer bridge (schema {version}); "
                "upgrade this bridge or give it another --queue file"
            )
        # executescript commits on its own, so the script carries its own transaction.
        self._db.executescript(
            f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, result: Result) -> PutOutcome:
        """Store ``result`` durably; committed to disk when this returns."""
        body = json.dumps(reading_body(result), sort_keys=True)
        fingerprint = _fingerprint(result)
        key = (result.device_serial, result.sequence)
        with self._transaction():
            known = self._db.execute(_KNOWN_FINGERPRINTS, key * 3).fetchall()
            if any(row[0] == fingerprint for row in known):
                return PutOutcome.DUPLICATE
            if known:
                self._insert_rejected(
                    key, body, fingerprint, None, "sequence reused with a different reading"
                )
                return PutOutcome.CONFLICT
            self._db.execute(
                "INSERT INTO pending (device_serial, sequence, body, fingerprint, received_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (*key, body, fingerprint, _now_text()),
            )
            return PutOutcome.QUEUED

    def next_due(self) -> QueuedReading | None:
        """The reading to try next: never tried first, then the one whose retry is earliest."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, device_serial, sequence, body, attempts, next_attempt_at FROM pending "
                "ORDER BY next_attempt_at, id LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return QueuedReading(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5])

    def mark_sent(self, item: QueuedReading, status_code: int) -> None:
        with self._transaction():
            row = self._take(item)
            if row is None:
                return
            self._db.execute(
                "INSERT OR REPLACE INTO sent VALUES (?, ?, ?, ?, ?)",
                (item.device_serial, item.sequence, row[1], _now_text(), status_code),
            )
            self._db.execute(
                "DELETE FROM sent WHERE rowid < (SELECT max(rowid) FROM sent) - ?", (SENT_KEEP,)
            )

    def mark_rejected(self, item: QueuedReading, status_code: int | None, reason: str) -> None:
        with self._transaction():
            row = self._take(item)
            if row is not None:
                key = (item.device_serial, item.sequence)
                self._insert_rejected(key, row[0], row[1], status_code, reason)

    def mark_retry(self, item: QueuedReading, next_attempt_at: float, error: str) -> None:
        """Try ``item`` again no earlier than ``next_attempt_at`` (seconds since the epoch)."""
        with self._transaction():
            self._db.execute(
                "UPDATE pending SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                "WHERE id = ?",
                (next_attempt_at, error[:500], item.id),
            )

    def counts(self) -> QueueCounts:
        with self._lock:
            queued, rejected, sent = self._db.execute(
                "SELECT (SELECT count(*) FROM pending), (SELECT count(*) FROM rejected), "
                "(SELECT count(*) FROM sent)"
            ).fetchone()
        return QueueCounts(queued, rejected, sent)

    def rejected(self) -> list[RejectedReading]:
        with self._lock:
            rows = self._db.execute(
                "SELECT device_serial, sequence, body, status_code, reason "
                "FROM rejected ORDER BY id"
            ).fetchall()
        return [RejectedReading(r[0], r[1], json.loads(r[2]), r[3], r[4]) for r in rows]

    def _take(self, item: QueuedReading) -> tuple[str, str] | None:
        """Remove ``item`` from pending (inside a transaction); its (body, fingerprint)."""
        row = self._db.execute(
            "SELECT body, fingerprint FROM pending WHERE id = ?", (item.id,)
        ).fetchone()
        if row is not None:
            self._db.execute("DELETE FROM pending WHERE id = ?", (item.id,))
        return None if row is None else (row[0], row[1])

    def _insert_rejected(
        self,
        key: tuple[str, int],
        body: str,
        fingerprint: str,
        status_code: int | None,
        reason: str,
    ) -> None:
        self._db.execute(
            "INSERT INTO rejected (device_serial, sequence, body, fingerprint, status_code, "
            "reason, rejected_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*key, body, fingerprint, status_code, reason[:1000], _now_text()),
        )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` under the lock; rolled back on any error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
