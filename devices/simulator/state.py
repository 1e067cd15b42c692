"""Per-serial sequence numbers that survive a restart of the simulator, as a monitor's memory does.

``(device serial, sequence)`` identifies a result for ever, so a restarted simulator must go on
from its last number, never start again at 1. The file is JSON: ``{"SIM-0001": 42}``.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path


class SequenceStore:
    """Hands out the next sequence number per serial; saved to ``path`` at once when given."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._last: dict[str, int] = {}
        if path is not None and path.exists():
            loaded = json.loads(path.read_text(encoding="utf-8") or "{}")
            self._last = {str(serial): int(last) for serial, last in loaded.items()}

    def last(self, serial: str) -> int:
        return self._last.get(serial, 0)

    def next(self, serial: str) -> int:
        with self._lock:
            number = self._last.get(serial, 0) + 1
            self._last[serial] = number
            self._save()
            return number

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._path.with_name(self._path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as file:
            json.dump(self._last, file, sort_keys=True)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self._path)
