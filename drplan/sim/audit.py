"""Audit log of every mutating request (and every job's end), in memory and as JSONL.

Each record is a dict: ``seq``, ``time`` (simulated, ISO 8601), ``event`` ("request" or "job"),
``operation`` (e.g. ``unplannedFailover``), ``vm``/``item`` or ``plan``/``vms``, ``direction``,
``recovery_point``/``recovery_point_time``/``recovery_point_type``, ``job``, ``outcome`` and, on
refusals and failures, ``status``/``code``/``message``. ``None`` fields are left out.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from pathlib import Path


class Audit(list):
    """A list of audit records that also appends each record to a JSONL file when given one."""

    def __init__(self, path: str | Path | None = None):
        super().__init__()
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("", encoding="utf-8")

    def record(self, *, time: datetime | None = None, **fields) -> dict:
        with self._lock:
            rec = {"seq": len(self) + 1, "time": time.isoformat().replace("+00:00", "Z") if time else None}
            rec.update(fields)
            rec = {k: v for k, v in rec.items() if v is not None}
            self.append(rec)
            if self.path:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(rec, sort_keys=True) + "\n")
            return rec

    def requests(self, operation: str | None = None, *, outcome: str | None = None) -> list[dict]:
        """Request records, optionally of one operation and outcome."""
        return [
            r
            for r in self
            if r.get("event") == "request"
            and (operation is None or r.get("operation") == operation)
            and (outcome is None or r.get("outcome") == outcome)
        ]
