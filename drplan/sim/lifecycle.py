"""The failback doc's rules and the protected-item state machine, on simulated time.

Each VM's :class:`~drplan.observed.Phase` lives on the estate (``estate.vm(x).phase``); this module keeps the
ASR-side runtime (jobs, current scenario, failover point, Azure VM state) and moves items through

    failed-over-to-azure --reProtect(InMage)--> reprotected-to-onprem --unplannedFailover(InMage)-->
    failback-in-progress --> failed-back --failoverCommit--> committed --reProtect(InMageAzureV2)-->
    reprotected-to-azure

Refusals that ASR makes when the request arrives raise :class:`SimError` (HTTP 400/409, nothing changes).
Failures ASR only finds while running (disconnected vCenter at disk detach/attach, configuration server,
master-target snapshots, agent not registered) fail the job at the matching task.

The engine is assembled from modules named for what they hold: :mod:`drplan.sim.rules` (the doc's rules and
refusals), :mod:`drplan.sim.jobs` (the job engine), :mod:`drplan.sim.transitions` (per-operation state
transitions) and :mod:`drplan.sim.recovery_plans`; their public names are re-exported here.
"""

from __future__ import annotations

import random
import threading
import uuid
from datetime import timedelta

from drplan.observed import Phase
from drplan.sim.audit import Audit
from drplan.sim.clock import SimClock
from drplan.sim.estate import Estate, Vm
from drplan.sim.items import Item
from drplan.sim.jobs import Job, JobEngine, Step
from drplan.sim.onprem import SimulatedSite
from drplan.sim.rcm_ids import RcmIds
from drplan.sim.rcm_rules import RcmRules
from drplan.sim.rcm_transitions import RcmTransitions
from drplan.sim.recovery_plans import RecoveryPlan, RecoveryPlans
from drplan.sim.recovery_points import SimPoint, points_for
from drplan.sim.rules import (
    AGENT_NOT_INSTALLED,
    FRIENDLY,
    OP_ALLOWED,
    PHASE_VIEW,
    REPLICATING,
    SCENARIO,
    Rules,
    SimError,
)
from drplan.sim.transitions import Transitions

__all__ = [
    "AGENT_NOT_INSTALLED",
    "FRIENDLY",
    "OP_ALLOWED",
    "PHASE_VIEW",
    "SCENARIO",
    "Engine",
    "Item",
    "Job",
    "RecoveryPlan",
    "SimError",
    "Step",
]

_NS = uuid.UUID("a3c1d6a2-54a4-4a83-8a8e-0b3f3b0f6c7d")


class Engine(Rules, RcmRules, Transitions, RcmTransitions, JobEngine, RecoveryPlans, RcmIds):
    """All simulator state behind one lock; :meth:`tick` runs jobs up to the clock's now."""

    def __init__(self, estate: Estate, clock: SimClock, *, audit: Audit | None = None):
        self.estate = estate
        self.clock = clock
        self.lock = threading.RLock()
        self.audit = audit if audit is not None else Audit()
        self.items: dict[str, Item] = {}
        self.jobs: dict[str, Job] = {}
        self.plans: dict[str, RecoveryPlan] = {}
        self._rng = random.Random(estate.faults.seed)
        self._seq = 0
        self.site = SimulatedSite(estate, clock, lock=self.lock, tick=self.tick)
        self._sync_items()
        for v in estate.vms:
            it = self.items[v.name]
            if v.phase in (Phase.failed_over_to_azure, Phase.reprotected_to_onprem):
                it.azure_vm = "running"
            if v.phase in (
                Phase.failed_over_to_azure,
                Phase.reprotected_to_onprem,
                Phase.failed_back,
                Phase.committed,
                Phase.reprotected_to_azure,
            ):
                it.last_failover_time = clock.start - timedelta(days=1)
            if v.phase == Phase.failed_back:
                it.azure_vm = "stopped"

    # -- identity --------------------------------------------------------------------------------------------
    @property
    def vault_id(self) -> str:
        v = self.estate.vault
        return (
            f"/Subscriptions/{v.subscription_id}/resourceGroups/{v.resource_group}"
            f"/providers/Microsoft.RecoveryServices/vaults/{v.name}"
        )

    @property
    def fabric_id(self) -> str:
        return f"{self.vault_id}/replicationFabrics/{self.estate.configuration_server.fabric}"

    @property
    def container_id(self) -> str:
        return (
            f"{self.fabric_id}/replicationProtectionContainers/{self.estate.configuration_server.container}"
        )

    def item_fabric_id(self, item: Item) -> str:
        return self.rcm_fabric_id if self.vm_of(item).provider == "modernized" else self.fabric_id

    def item_container_id(self, item: Item) -> str:
        return self.rcm_container_id if self.vm_of(item).provider == "modernized" else self.container_id

    def item_id(self, item: Item) -> str:
        return f"{self.item_container_id(item)}/replicationProtectedItems/{item.name}"

    def point_id(self, item: Item, point: str) -> str:
        return f"{self.item_id(item)}/recoveryPoints/{point}"

    def job_id(self, name: str) -> str:
        return f"{self.vault_id}/replicationJobs/{name}"

    def plan_id(self, name: str) -> str:
        return f"{self.vault_id}/replicationRecoveryPlans/{name}"

    def mt_id(self, name: str) -> str:
        """ARM-style id of a master target (what the fabric lists and ``masterTargetId`` must carry)."""
        return f"{self.fabric_id}/masterTargetServers/{uuid.uuid5(_NS, f'mt|{name}')}"

    def ps_id(self, name: str) -> str:
        """ARM-style id of a process server (what the fabric lists and ``processServerId`` must carry)."""
        return f"{self.fabric_id}/processServers/{uuid.uuid5(_NS, f'ps|{name}')}"

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    @property
    def serves_modernized(self) -> bool:
        """The vault has the modernized (InMageRcm) fabric: appliances, or a modernized VM."""
        return bool(self.estate.appliances) or any(v.provider == "modernized" for v in self.estate.vms)

    @property
    def serves_classic(self) -> bool:
        """The vault has the classic (configuration server) fabric; always when nothing is modernized."""
        est = self.estate
        return (
            not self.serves_modernized
            or bool(est.master_targets or est.process_servers)
            or any(v.provider == "classic" for v in est.vms)
        )

    # -- lookups ---------------------------------------------------------------------------------------------
    def _sync_items(self) -> None:
        for v in self.estate.vms:
            if v.name not in self.items:
                self.items[v.name] = Item(vm=v.name, name=str(uuid.uuid5(_NS, f"item|{v.name}")))

    def item_list(self) -> list[Item]:
        self._sync_items()
        return [self.items[v.name] for v in self.estate.vms]

    def item_by_name(self, name: str) -> Item | None:
        self._sync_items()
        for it in self.items.values():
            if it.name.lower() == name.lower():
                return it
        return None

    def vm_of(self, item: Item) -> Vm:
        return self.estate.vm(item.vm)

    def points(self, item: Item) -> list[SimPoint]:
        vm = self.vm_of(item)
        pending = item.commit_pending and vm.provider == "modernized"  # points to change the failover to
        # a failback not yet committed keeps its points listed (ASR allows ChangePit then): the point it
        # failed over to stays readable by id until the commit
        uncommitted_failback = vm.phase == Phase.failed_back
        if (
            vm.phase not in REPLICATING and not pending and not uncommitted_failback
        ) or vm.protection_disabled:
            return []
        now = self.clock.now()
        pts = points_for(
            vm,
            default_generator=self.estate.recovery_points,
            clock_start=self.clock.start,
            now=now,
            stopped_at=item.stopped_at,
        )
        if item.produced_points:  # made by a planned failover (modernized)
            pts = sorted([*pts, *(p for p in item.produced_points if p.time <= now)], key=lambda p: p.time)[
                ::-1
            ]
        return pts

    def find_point(self, item: Item, ref: str | None) -> SimPoint | None:
        if not ref:
            return None
        name = ref.rstrip("/").rsplit("/", 1)[-1].lower()
        return next((p for p in self.points(item) if p.name.lower() == name), None)

    def azure_vm(self, vm: str) -> str:
        """State of the VM's Azure side: none | running | stopped | deleted."""
        with self.lock:
            self.tick()
            return self.items[self.estate.vm(vm).name].azure_vm

    # -- actions ---------------------------------------------------------------------------------------------
    def item_action(self, op: str, item: Item, body: dict) -> Job:
        """Validate and start ``op`` on one protected item; raises :class:`SimError` when refused."""
        with self.lock:
            self.tick()
            vm = self.vm_of(item)
            fault = self._match_fault(op, vm.name, "request")
            if fault:
                raise SimError(
                    fault.status, fault.code, f"{FRIENDLY.get(op, op)} of VM '{vm.name}': {fault.message}"
                )
            kind, plan = self._validate(op, item, body, plan_level=False)
            job = self._start_job(op, kind, [item], plan, body, resource=("item", item.vm))
            return job
