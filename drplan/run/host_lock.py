"""One run per plan on this host: an OS file lock (``flock``) per plan name. Prefect-free.

The kernel drops the lock when its process dies, so a killed run never blocks the next one; the lock
file keeps the last holder's record (pid, host, flow run id), which tells the next run which "Running"
flow run in the API is a leftover of a killed process.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO


class PlanBusy(Exception):
    """Another run of the same plan holds the lock. The message says which and what to do."""


def lock_dir(configured: Path | None, default_home: str | os.PathLike | None = None) -> Path:
    """``configured`` (``DRPLAN_LOCK_DIR``) or ``<default_home>/drplan-locks``."""
    if configured:
        return Path(configured)
    base = Path(default_home) if default_home else Path.home() / ".drplan"
    return base / "drplan-locks"


class PlanLock:
    """``with PlanLock(name, directory) as lock:`` holds the plan for the duration of one run."""

    def __init__(self, plan: str, directory: str | os.PathLike):
        self.plan = plan
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", plan)
        self.path = Path(directory) / f"{safe}.lock"
        self._fh: TextIO | None = None
        self.previous: dict = {}

    def acquire(self, **record) -> dict:
        """Take the lock or raise :class:`PlanBusy`; returns the previous (dead) holder's record."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = _parse(fh.read())
            fh.close()
            who = ", ".join(
                f"{k} {holder[k]}" for k in ("flow_run", "pid", "host", "started") if holder.get(k)
            )
            raise PlanBusy(
                f"plan {self.plan} is already being run on this host ({who or 'holder unknown'}); "
                f"wait for that run to finish or cancel it (lock file {self.path})"
            ) from None
        fh.seek(0)
        self.previous = _parse(fh.read())
        self._fh = fh
        self.update(
            pid=os.getpid(), host=socket.gethostname(), started=datetime.now(UTC).isoformat(), **record
        )
        return self.previous

    def update(self, **record) -> None:
        if self._fh is None:
            raise RuntimeError("lock not held")
        current = {**_parse(_read(self._fh)), **record}
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(json.dumps(current, default=str))
        self._fh.flush()

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> PlanLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read(fh) -> str:
    fh.seek(0)
    return fh.read()


def _parse(text: str) -> dict:
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
