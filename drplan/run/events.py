"""Event sinks: several sinks as one, and the observers a caller attaches to runs it starts.

A caller (the CLI's live display, a test) wraps the start of a run in :func:`observing`; the run adds the
observers of its starting context to its own sinks. Scoped by a ``ContextVar``, never process-global.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from contextvars import ContextVar

from drplan.run.ports import EventSink, UnitEvent

log = logging.getLogger(__name__)

_OBSERVERS: ContextVar[tuple[EventSink, ...]] = ContextVar("drplan_observers", default=())


class Fanout:
    """Hands each event to every sink in turn; one failing sink does not stop the others."""

    def __init__(self, sinks: Sequence[EventSink]):
        self.sinks = list(sinks)

    def __call__(self, event: UnitEvent) -> None:
        for sink in self.sinks:
            try:
                sink(event)
            except Exception:  # a broken display must never break a failback
                log.warning("event sink %r failed on %s", sink, event, exc_info=True)


@contextlib.contextmanager
def observing(*sinks: EventSink) -> Iterator[None]:
    """Runs started inside this block (in this thread or a copy of its context) also send to ``sinks``."""
    token = _OBSERVERS.set((*_OBSERVERS.get(), *sinks))
    try:
        yield
    finally:
        _OBSERVERS.reset(token)


def observers() -> tuple[EventSink, ...]:
    """The sinks attached by :func:`observing` around the current run's start."""
    return _OBSERVERS.get()
