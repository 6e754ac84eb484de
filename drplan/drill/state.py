"""A drill's per-run state: which test failovers it started, cleaned up or is still issuing, and whether it
is stopping; and the name of the test VM a test failover creates."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from drplan.errors import DrplanError
from drplan.run.context import RunContext

FLOW_KIND = "drill"


class DrillStopped(DrplanError):
    """The drill is stopping (failed or cancelled): no new test failover starts."""


def test_vm_name(vm) -> str:
    """The on-prem test VM a test failover creates: ``<vCenter name>-test`` (the simulator's naming)."""
    return f"{vm.vcenter_name or vm.name}-test"


@dataclass
class DrillState:
    lock: threading.Condition = field(default_factory=lambda: threading.Condition(threading.RLock()))
    stopping: bool = False
    started: dict[str, str] = field(default_factory=dict)  # VM -> unit, for every test failover requested
    issuing: set[str] = field(default_factory=set)  # VMs whose test-failover call has not returned yet
    cleaned: set[str] = field(default_factory=set)
    hooks_done: set[str] = field(default_factory=set)  # after-cleanup hooks that ran (or were tried)
    leftovers: list[str] | None = None  # test VMs still present after cleanup (None: not checked yet)
    cleanup_errors: dict[str, str] = field(default_factory=dict)


def state(ctx: RunContext) -> DrillState:
    with ctx.lock:
        if ctx.state.drill is None:
            ctx.state.drill = DrillState()
        return ctx.state.drill


def vm_of(ctx: RunContext, name: str):
    return next(v for v in ctx.plan.vms if v.name == name)
