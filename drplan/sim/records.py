"""The records the simulated vault keeps besides its protected items: jobs made of timed steps, and recovery
plans (the data only; :mod:`drplan.sim.jobs` and :mod:`drplan.sim.recovery_plans` act on them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from drplan.sim.recovery_points import SimPoint

if TYPE_CHECKING:
    from drplan.sim.items import Item


@dataclass
class Step:
    name: str
    friendly: str
    frac: float
    check: Callable[[Item, datetime], tuple[str, str] | None] | None = None
    effect: Callable[[Item, datetime], None] | None = None
    state: str = "NotStarted"
    start: datetime | None = None
    end: datetime | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)
    task_id: str = ""


@dataclass
class Job:
    name: str
    op: str
    scenario: str
    friendly: str
    target_type: str  # ProtectionEntity | RecoveryPlan
    target_name: str
    target_id: str
    items: list[str]  # VM names
    resource: tuple[str, str]  # ("item", vm) | ("plan", plan)
    start: datetime
    duration: float
    steps: list[Step]
    on_fail: Callable[[Item, datetime], None] | None = None
    on_done: Callable[[datetime], None] | None = None
    state: str = "InProgress"
    state_description: str = "InProgress"
    end: datetime | None = None
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (code, message, task id)
    points: dict[str, SimPoint] = field(default_factory=dict)
    direction: str | None = None
    seq: int = 0

    @property
    def running(self) -> bool:
        return self.state in ("NotStarted", "InProgress")

    def step_time(self, i: int) -> datetime:
        return self.start + timedelta(seconds=self.duration * self.steps[i].frac)

    def remaining(self, now: datetime) -> float:
        return max(0.0, (self.start + timedelta(seconds=self.duration) - now).total_seconds())


@dataclass
class RecoveryPlan:
    name: str
    groups: list[dict]
    items: list[str]  # VM names
    primary_fabric_id: str
    recovery_fabric_id: str
    deployment_model: str
    current_job: str | None = None
    last_job: str | None = None
    last_unplanned_failover_time: datetime | None = None
    last_planned_failover_time: datetime | None = None
    last_test_failover_time: datetime | None = None
    test_waiting: bool = False
