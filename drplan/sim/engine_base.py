"""What the mixins of :class:`drplan.sim.lifecycle.Engine` share: the engine's state and the methods one
mixin calls on another, declared once so each mixin type-checks on its own. Nothing here runs: the
attributes are set by ``Engine.__init__`` and the methods are defined by ``Engine`` and its mixins."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable
    from datetime import datetime

    from drplan.sim.audit import Audit
    from drplan.sim.clock import SimClock
    from drplan.sim.estate import Estate, OperationFault, Vm
    from drplan.sim.items import Item
    from drplan.sim.onprem import SimulatedSite
    from drplan.sim.records import Job, RecoveryPlan, Step
    from drplan.sim.recovery_points import SimPoint

    #: what building a job kind's steps gives: the steps, and what to undo when one fails
    StepPlan = tuple[list[Step], Callable[[Item, datetime], None] | None]


class EngineBase:
    """The engine's shared state and cross-mixin methods, for the type checker."""

    estate: Estate
    clock: SimClock
    lock: threading.RLock
    audit: Audit
    items: dict[str, Item]
    jobs: dict[str, Job]
    plans: dict[str, RecoveryPlan]
    site: SimulatedSite
    _seq: int

    if TYPE_CHECKING:
        # -- lifecycle.Engine
        @property
        def vault_id(self) -> str: ...
        def vm_of(self, item: Item) -> Vm: ...
        def points(self, item: Item) -> list[SimPoint]: ...
        def find_point(self, item: Item, ref: str | None) -> SimPoint | None: ...
        def item_by_name(self, name: str) -> Item | None: ...
        def new_id(self) -> str: ...
        def plan_id(self, name: str) -> str: ...
        def mt_id(self, name: str) -> str: ...
        def ps_id(self, name: str) -> str: ...

        # -- rules.Rules / rcm_rules.RcmRules
        def allowed_ops(self, item: Item) -> list[str]: ...
        def _validate(
            self, op: str, item: Item, body: dict, *, plan_level: bool, plan_points: dict | None = None
        ) -> tuple[str, dict]: ...
        def _rcm_transition(self, item: Item, vm: Vm, op: str) -> tuple[str | None, str]: ...
        def _rcm_validate(
            self, op: str, item: Item, body: dict, *, what: str, plan_level: bool, plan_points: dict | None
        ) -> tuple[str, dict]: ...

        # -- jobs.JobEngine
        def tick(self) -> None: ...
        def _match_fault(self, op: str, vm: str | None, stage: str) -> OperationFault | None: ...
        def _start_job(
            self,
            op: str,
            kind: str,
            items: list[Item],
            ctx: dict | dict[str, dict],
            body: dict,
            *,
            resource: tuple[str, str],
            ctxs: dict[str, dict] | None = None,
        ) -> Job: ...

        # -- transitions.Transitions / rcm_transitions.RcmTransitions
        def _on_start(self, kind: str, item: Item, ctx: dict, now: datetime, job: Job) -> None: ...
        def _rcm_on_start(self, kind: str, item: Item, ctx: dict, now: datetime, job: Job) -> None: ...
        def _steps(self, kind: str, ctxs: dict[str, dict]) -> StepPlan: ...
        def _rcm_steps(self, kind: str, ctxs: dict[str, dict]) -> StepPlan: ...

        # -- rcm_ids.RcmIds
        @property
        def log_storage_id(self) -> str: ...
        def policy_id(self, name: str) -> str: ...
        def run_as_id(self, account: str) -> str: ...
        def appliance_of_component(self, component: str, ref: str | None) -> str | None: ...
