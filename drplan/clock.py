"""Clocks. Everything that waits takes a clock, so the simulated estate can run on simulated time.

The simulator's clock (:class:`drplan.sim.clock.SimClock`) has the same three methods.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds on this clock's time line, for deadlines."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""


class RealClock:
    """Wall-clock time, for real vaults and vCenters."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


REAL_CLOCK = RealClock()
