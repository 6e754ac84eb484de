"""Transient fault injection: seeded 429/500/503 responses and added latency (``estate.faults``).

Operation-specific faults (fail ``unplannedFailover`` for VM x once/always) are applied by the lifecycle.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from drplan.sim.estate import Faults

_MESSAGES = {
    429: (
        "TooManyRequests",
        "The request was throttled (simulated). Retry after the interval in Retry-After.",
    ),
    500: ("InternalServerError", "An internal error occurred (simulated transient fault)."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable (simulated transient fault)."),
}


@dataclass(frozen=True)
class Injected:
    status: int
    code: str
    message: str
    retry_after: int | None = None


class FaultInjector:
    """Draws from a RNG seeded with ``faults.seed`` once per request; rates are read live."""

    def __init__(self, faults: Faults):
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._lock = threading.Lock()

    def reseed(self, seed: int | None = None) -> None:
        with self._lock:
            self._rng = random.Random(self.faults.seed if seed is None else seed)

    def draw(self) -> Injected | None:
        f = self.faults
        if not (f.rate_429 or f.rate_500 or f.rate_503):
            return None
        with self._lock:
            r = self._rng.random()
        edge = 0.0
        for status, rate in ((429, f.rate_429), (500, f.rate_500), (503, f.rate_503)):
            edge += rate
            if r < edge:
                code, msg = _MESSAGES[status]
                return Injected(status, code, msg, f.retry_after if status in (429, 503) else None)
        return None
