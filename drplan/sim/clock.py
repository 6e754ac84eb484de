"""Simulated time: ``start + real elapsed × speed + manual advances``.

Implements :class:`drplan.clock.Clock` (``now``/``monotonic``/``sleep``) plus :meth:`SimClock.advance`,
so tests and benchmarks move time forward without waiting on the wall clock.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class SimClock:
    """A clock running ``speed`` times faster than the wall clock, which tests can also push forward."""

    def __init__(self, start: datetime | None = None, *, speed: float = 600.0):
        if speed <= 0:
            raise ValueError("speed must be positive")
        if start is None:
            start = datetime.now(UTC).replace(microsecond=0)
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.start = start.astimezone(UTC)
        self._speed = float(speed)
        self._real0 = time.monotonic()
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        """Change the speed from now on (time never jumps)."""
        if value <= 0:
            raise ValueError("speed must be positive")
        with self._lock:
            real = time.monotonic()
            self._offset += (real - self._real0) * self._speed
            self._real0 = real
            self._speed = float(value)

    def monotonic(self) -> float:
        """Simulated seconds since :attr:`start`."""
        with self._lock:
            return (time.monotonic() - self._real0) * self._speed + self._offset

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.monotonic())

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of simulated time (``seconds / speed`` real seconds)."""
        if seconds > 0:
            time.sleep(seconds / self.speed)

    def advance(self, seconds: float) -> None:
        """Jump simulated time forward."""
        if seconds < 0:
            raise ValueError("the simulated clock cannot go backwards")
        with self._lock:
            self._offset += seconds

    def real_seconds(self, sim_seconds: float) -> float:
        """How long ``sim_seconds`` of simulated time take on the wall clock."""
        return max(0.0, sim_seconds) / self.speed

    def __repr__(self) -> str:
        return f"SimClock(now={self.now().isoformat()}, speed={self.speed:g})"
