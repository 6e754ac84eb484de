"""Per-run runtime registry: the live objects a run needs that must never be task parameters.

A flow creates one :class:`Runtime` (ASR client, on-prem site, clock, resolved points, node statuses,
report) and registers it under a string key; tasks receive only that key and a node name, so nothing
unserialisable is hashed or persisted by the engine. Prefect-free.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from drplan.clock import REAL_CLOCK, Clock

if TYPE_CHECKING:
    from drplan.observed import ItemRef
    from drplan.plan.graph import RecoveryGraph
    from drplan.plan.schema import CommitPolicy, Plan
    from drplan.recovery.points import Choice
    from drplan.run.ports import OnPremSite
    from drplan.run.report import Report


class NodeStatus(StrEnum):
    """Where one graph node (unit, hook or gate) is in this run."""

    pending = "pending"
    running = "running"
    failed_back = "failed-back"
    verified = "verified"  # a unit's terminal success for the failback part; hooks/gates use ``done``
    done = "done"
    committed = "committed"
    reprotected = "reprotected"
    failed = "failed"
    skipped = "skipped"


SUCCESS = frozenset({NodeStatus.verified, NodeStatus.done, NodeStatus.committed, NodeStatus.reprotected})


@dataclass(frozen=True)
class UnitEvent:
    """One transition of one node, fanned out to listeners (Prefect events, CLI display, progress)."""

    run_key: str
    node: str
    transition: str  # failback-started, failed-back, verified, committed, reprotected, failed, skipped, ...
    message: str = ""
    payload: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[UnitEvent], None]
_GLOBAL_LISTENERS: list[Listener] = []
_REGISTRY: dict[str, Runtime] = {}
_LOCK = threading.Lock()


@dataclass
class Runtime:
    """Everything one run of a plan holds while it runs."""

    plan: Plan
    graph: RecoveryGraph
    asr: Any  # drplan.asr.AsrClient
    onprem: OnPremSite
    clock: Clock = REAL_CLOCK
    dry_run: bool = False
    commit_policy: CommitPolicy | None = None
    reprotect: bool = True
    mode: str = "real"  # real | simulate | external-sim
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    refs: dict[str, ItemRef] = field(default_factory=dict)  # plan VM name -> ASR item
    choices: dict[str, Choice] = field(default_factory=dict)  # plan VM name -> chosen point
    overrides: dict[str, str] = field(default_factory=dict)  # unit name or "*" -> recovery-point policy
    status: dict[str, NodeStatus] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    report: Report | None = None
    started_at: datetime | None = None
    closers: ExitStack = field(default_factory=ExitStack)
    listeners: list[Listener] = field(default_factory=list)
    would: list[str] = field(default_factory=list)  # dry run: what the run would do, in order
    extra: dict[str, Any] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # -- statuses --------------------------------------------------------------------------------------
    def get(self, node: str) -> NodeStatus:
        with self._lock:
            return self.status.get(node, NodeStatus.pending)

    def set(self, node: str, status: NodeStatus, reason: str = "") -> None:
        with self._lock:
            self.status[node] = status
            if reason:
                self.reasons[node] = reason
            elif status not in (NodeStatus.failed, NodeStatus.skipped):
                self.reasons.pop(node, None)

    def emit(self, node: str, transition: str, message: str = "", **payload: Any) -> None:
        event = UnitEvent(self.key, node, transition, message, payload)
        for listener in [*self.listeners, *_GLOBAL_LISTENERS]:
            try:
                listener(event)
            except Exception:  # a broken display must never break a failback
                import logging

                logging.getLogger(__name__).warning(
                    "listener %r failed on %s", listener, event, exc_info=True
                )

    def note(self, text: str) -> None:
        """Record a dry-run 'would do' line."""
        with self._lock:
            self.would.append(text)

    def close(self) -> None:
        self.closers.close()


def register(rt: Runtime) -> str:
    with _LOCK:
        _REGISTRY[rt.key] = rt
    return rt.key


def get(key: str) -> Runtime:
    with _LOCK:
        try:
            return _REGISTRY[key]
        except KeyError:
            raise LookupError(
                f"no runtime registered under {key!r}: tasks of a drplan run must run in the flow's process"
            ) from None


def unregister(key: str) -> None:
    with _LOCK:
        rt = _REGISTRY.pop(key, None)
    if rt is not None:
        rt.close()


def subscribe(listener: Listener) -> Callable[[], None]:
    """Receive every :class:`UnitEvent` of every run in this process (the CLI's live display uses this)."""
    _GLOBAL_LISTENERS.append(listener)

    def unsubscribe() -> None:
        if listener in _GLOBAL_LISTENERS:
            _GLOBAL_LISTENERS.remove(listener)

    return unsubscribe
