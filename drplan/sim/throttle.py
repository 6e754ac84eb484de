"""ARM's per-subscription request throttling: token buckets on the simulated clock (``estate.throttling``).

ARM gives each subscription (per principal) a bucket per kind of request: reads (GET/HEAD) 250 tokens,
refilled at 25 per second; writes (PUT/POST/PATCH) 200, 10 per second; deletes 200, 10 per second. A
request takes one token from its kind's bucket. Every answer carries the tokens left in that bucket
(``x-ms-ratelimit-remaining-subscription-reads`` / ``-writes`` / ``-deletes``); a request finding the
bucket empty is refused with ``429 SubscriptionRequestsThrottled`` and ``Retry-After`` (whole seconds
until a token is back). Buckets refill on the simulator's clock, so a simulator running 600× faster than
the wall clock also refills 600× faster; ``Retry-After`` is in simulated seconds, as the clients sleep
on the same clock. Off unless ``estate.throttling.enabled``.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from dataclasses import dataclass

from drplan.sim.clock import SimClock
from drplan.sim.estate import Throttling

KINDS = {"GET": "reads", "HEAD": "reads", "PUT": "writes", "POST": "writes", "PATCH": "writes"}
KINDS["DELETE"] = "deletes"
HEADER = "x-ms-ratelimit-remaining-subscription-{kind}"
_SUB = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Admission:
    """One request's verdict: admitted or not, its kind, the headers to send, the 429's Retry-After."""

    admitted: bool
    kind: str
    headers: dict[str, str]
    retry_after: int = 0


class _Bucket:
    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float, at: float):
        self.tokens, self.at = tokens, at


class Throttle:
    """The buckets of every subscription the simulator has been asked about, and what they refused."""

    def __init__(self, clock: SimClock):
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        #: 429s answered, per kind (``reads`` / ``writes`` / ``deletes``)
        self.throttled: Counter[str] = Counter()
        #: requests admitted, per kind
        self.admitted: Counter[str] = Counter()

    def admit(self, config: Throttling, method: str, path: str) -> Admission | None:
        """Take a token for ``method path`` (``None`` when throttling is off)."""
        if not config.enabled:
            return None
        kind = KINDS.get(method.upper(), "writes")
        limit = getattr(config, kind)
        m = _SUB.match(path)
        key = ((m.group(1) if m else "").lower(), kind)
        now = self._clock.monotonic()
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                b = self._buckets[key] = _Bucket(float(limit.burst), now)
            b.tokens = min(float(limit.burst), b.tokens + max(0.0, now - b.at) * limit.per_second)
            b.at = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                self.admitted[kind] += 1
                return Admission(True, kind, {HEADER.format(kind=kind): str(math.floor(b.tokens))})
            self.throttled[kind] += 1
            wait = max(1, math.ceil((1.0 - b.tokens) / limit.per_second))
            return Admission(False, kind, {HEADER.format(kind=kind): "0", "Retry-After": str(wait)}, wait)

    def reset(self) -> None:
        """Full buckets, zero counts (a fresh subscription)."""
        with self._lock:
            self._buckets.clear()
            self.throttled.clear()
            self.admitted.clear()

    def message(self, admission: Admission, subscription: str) -> str:
        """ARM's wording of a throttled request."""
        kind = admission.kind.rstrip("s")
        return (
            f"Number of '{kind}' requests for subscription '{subscription}' exceeded. Please try again after "
            f"'{admission.retry_after}' seconds after additional tokens are available. "
            "Refer to https://aka.ms/arm-throttling"
        )
