"""The typed run context: frozen run inputs, the ports a run talks through, and the run's mutable state.

A flow (or the library executor) builds one :class:`RunContext` per run and hands it to its steps by
closure or through :data:`CURRENT` (a ``ContextVar``: Prefect's task threads and :func:`drplan.run.fanout`
threads copy it, so their logs and events reach the run). There is no process-global registry.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from drplan.clock import Clock
from drplan.observed import ItemRef, ItemState, Phase, RecoveryPoint
from drplan.plan.graph import RecoveryGraph
from drplan.plan.schema import CommitPolicy, Plan, RecoveryPointPolicy
from drplan.run.ports import Approver, EventSink, OnPremSite, RecoveryService, UnitEvent
from drplan.settings import Settings

if TYPE_CHECKING:
    from drplan.drill.state import DrillState
    from drplan.recovery.points import PointDecision
    from drplan.reprotect_to_onprem.inputs import Inputs
    from drplan.run.report import Report

log = logging.getLogger(__name__)


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
class RunInputs:
    """What a run was asked to do; fixed before it starts."""

    plan: Plan
    graph: RecoveryGraph
    kind: str = "failback"  # failback | drill | reprotect
    mode: str = "real"  # real | simulate | external-sim
    dry_run: bool = False
    overrides: Mapping[str, RecoveryPointPolicy] = field(default_factory=dict)  # unit or "*" -> policy
    commit_policy: CommitPolicy = CommitPolicy.after_verification
    reprotect_to_azure: bool = True
    run_id: str = ""  # the orchestrator's id of this run (a Prefect flow run id), for approvals
    settings: Settings = field(default_factory=Settings.model_construct)  # the entry point's, or defaults


@dataclass(frozen=True)
class Ports:
    """The run's connections to the outside: ASR, the on-prem site, its clock, approvals, event sinks."""

    asr: RecoveryService
    onprem: OnPremSite
    clock: Clock
    approver: Approver
    events: EventSink


@dataclass
class RunState:
    """Everything a run learns and decides while it runs (one typed field each)."""

    status: dict[str, NodeStatus] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    refs: dict[str, ItemRef] = field(default_factory=dict)  # plan VM name -> ASR item
    phases: dict[str, Phase] = field(default_factory=dict)  # plan VM name -> phase read by preflight
    points_by_vm: dict[str, list[RecoveryPoint]] = field(default_factory=dict)  # read by preflight
    items: dict[str, ItemState] = field(default_factory=dict)  # plan VM name -> item state read by preflight
    decisions: dict[str, PointDecision] = field(default_factory=dict)  # unit -> its recovery-point decision
    points_resolved_at: datetime | None = None
    points_read_at: datetime | None = None  # when preflight began reading ``points_by_vm``
    reprotect_inputs: dict[str, Inputs] = field(default_factory=dict)  # reprotect to on-prem: VMs to send
    not_done: dict[str, str] = field(default_factory=dict)  # "commit X" -> why it did not happen
    errors: dict[tuple[str, str], BaseException] = field(default_factory=dict)  # (step kind, node) -> error
    drill: DrillState | None = None
    report: Report | None = None
    started_at: datetime | None = None
    would: list[str] = field(default_factory=list)  # dry run: what the run would do, in order
    submitted: int = 0  # steps handed to the orchestrator so far


@dataclass
class RunContext:
    """One run: its inputs, its ports and its state. Node statuses are read and set under a lock."""

    inputs: RunInputs
    ports: Ports
    state: RunState = field(default_factory=RunState)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # -- the inputs and ports read everywhere ----------------------------------------------------------
    @property
    def plan(self) -> Plan:
        return self.inputs.plan

    @property
    def graph(self) -> RecoveryGraph:
        return self.inputs.graph

    @property
    def dry_run(self) -> bool:
        return self.inputs.dry_run

    @property
    def mode(self) -> str:
        return self.inputs.mode

    @property
    def asr(self) -> RecoveryService:
        return self.ports.asr

    @property
    def onprem(self) -> OnPremSite:
        return self.ports.onprem

    @property
    def clock(self) -> Clock:
        return self.ports.clock

    @property
    def report(self) -> Report | None:
        return self.state.report

    # -- statuses and events ----------------------------------------------------------------------------
    def get(self, node: str) -> NodeStatus:
        with self.lock:
            return self.state.status.get(node, NodeStatus.pending)

    def set(self, node: str, status: NodeStatus, reason: str = "") -> None:
        with self.lock:
            self.state.status[node] = status
            if reason:
                self.state.reasons[node] = reason
            elif status not in (NodeStatus.failed, NodeStatus.skipped):
                self.state.reasons.pop(node, None)

    def emit(self, node: str, transition: str, message: str = "", **payload: Any) -> None:
        """Hand one transition to the run's event sink; a broken sink never breaks a failback."""
        try:
            self.ports.events(UnitEvent(node, transition, message, payload))
        except Exception:
            log.warning("event sink failed on %s %s", node, transition, exc_info=True)

    def note(self, text: str) -> None:
        """Record a dry-run 'would do' line."""
        with self.lock:
            self.state.would.append(text)


#: the run the current thread works for (set by the orchestrator; copied into worker threads)
CURRENT: ContextVar[RunContext] = ContextVar("drplan_run")


def current() -> RunContext:
    """The run this thread works for; a clear error outside a run."""
    try:
        return CURRENT.get()
    except LookupError:
        raise LookupError("no drplan run is bound to this thread: steps run inside a drplan run") from None


@contextlib.contextmanager
def bound(ctx: RunContext) -> Iterator[RunContext]:
    """Bind ``ctx`` as :data:`CURRENT` for the ``with`` block (and threads whose context is copied in it)."""
    token = CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        CURRENT.reset(token)
