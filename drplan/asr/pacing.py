"""Spending ARM's request budget at the rate it refills, instead of running into 429s.

ARM meters each subscription (per principal) with a token bucket per kind of request: reads 250 tokens
refilled at 25 per second, writes and deletes 200 at 10 per second. Every answer says what is left
(``x-ms-ratelimit-remaining-subscription-reads`` / ``-writes`` / ``-deletes``). :class:`RequestPacing` reads
that header: while a kind has more than ``reserve`` tokens left its requests go at once; at or below it, each
request of that kind waits its turn at the bucket's refill rate, so a run of a thousand VMs stays just under
the limit instead of being answered 429 and retried. Without the header (no throttling reported) nothing
waits.
"""

from __future__ import annotations

import threading
from typing import Any

from azure.core.pipeline.policies import CustomHookPolicy

from drplan.clock import REAL_CLOCK, Clock

#: ARM's refill rates per second (the buckets' burst is what the header reports)
ARM_RATES = {"reads": 25.0, "writes": 10.0, "deletes": 10.0}
KIND_OF = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}
HEADER = "x-ms-ratelimit-remaining-subscription-{kind}"
HOOKS = ("raw_request_hook", "raw_response_hook")  # a client's own hooks, which this policy also runs


def hooks(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The client-wide ``raw_*_hook`` keyword arguments among a client's ``kwargs``."""
    return {k: kwargs[k] for k in HOOKS if k in kwargs}


class RequestPacing(CustomHookPolicy):
    """The client's pacing at ARM's buckets (one per client pair, shared by its threads); also runs the
    per-request ``raw_request_hook`` / ``raw_response_hook`` as azure-core's hook policy does.

    ``waited`` counts the requests that waited and ``waited_seconds`` how long, for the run's figures.
    """

    def __init__(
        self,
        *,
        clock: Clock = REAL_CLOCK,
        reserve: int = 25,
        rates: dict[str, float] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._clock = clock
        self.reserve = reserve
        self.rates = dict(rates or ARM_RATES)
        self._lock = threading.Lock()
        self._left: dict[str, float] = {}  # tokens ARM last reported, less what was sent since
        self._next: dict[str, float] = {}  # the clock's monotonic time of the next paced request's turn
        self.waited = 0
        self.waited_seconds = 0.0

    def on_request(self, request) -> None:
        super().on_request(request)
        kind = KIND_OF.get(request.http_request.method.upper(), "writes")
        delay = self._turn(kind)
        if delay > 0:
            self._clock.sleep(delay)

    def on_response(self, request, response) -> None:
        super().on_response(request, response)
        kind = KIND_OF.get(request.http_request.method.upper(), "writes")
        value = response.http_response.headers.get(HEADER.format(kind=kind))
        if value is None:
            return
        try:
            left = float(value)
        except ValueError:
            return
        with self._lock:
            self._left[kind] = left

    def _turn(self, kind: str) -> float:
        """Seconds this request waits: none while the bucket holds more than the reserve."""
        with self._lock:
            left = self._left.get(kind)
            if left is None:
                return 0.0
            if left > self.reserve:
                self._left[kind] = left - 1  # spent by this request until the next answer says otherwise
                return 0.0
            now = self._clock.monotonic()
            turn = max(now, self._next.get(kind, now))
            self._next[kind] = turn + 1.0 / self.rates.get(kind, ARM_RATES["writes"])
            delay = turn - now
            if delay > 0:
                self.waited += 1
                self.waited_seconds += delay
            return delay
