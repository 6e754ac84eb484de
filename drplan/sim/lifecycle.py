"""The failback doc's rules and the protected-item state machine, on simulated time.

Each VM's :class:`~drplan.values.Phase` lives on the estate (``estate.vm(x).phase``); this module keeps the
ASR-side runtime (jobs, current scenario, failover point, Azure VM state) and moves items through

    failed-over-to-azure --reProtect(InMage)--> reprotected-to-onprem --unplannedFailover(InMage)-->
    failback-in-progress --> failed-back --failoverCommit--> committed --reProtect(InMageAzureV2)-->
    reprotected-to-azure

Refusals that ASR makes when the request arrives raise :class:`SimError` (HTTP 400/409, nothing changes).
Failures ASR only finds while running (disconnected vCenter at disk detach/attach, configuration server,
master-target snapshots, agent not registered) fail the job at the matching task.
"""

from __future__ import annotations

import heapq
import random
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from drplan.sim.audit import Audit
from drplan.sim.clock import SimClock
from drplan.sim.estate import Estate, OperationFault, Vm
from drplan.sim.onprem import SimulatedSite
from drplan.sim.recovery_points import SimPoint, common_app_point, latest, points_for
from drplan.values import Phase

_NS = uuid.UUID("a3c1d6a2-54a4-4a83-8a8e-0b3f3b0f6c7d")

# ASR's view of each phase: provider, protectionState, description, activeLocation.
PHASE_VIEW: dict[Phase, tuple[str, str, str, str]] = {
    Phase.replicating_to_azure: ("InMageAzureV2", "Protected", "Protected", "Primary"),
    Phase.failed_over_to_azure: (
        "InMageAzureV2",
        "UnplannedFailoverCommitted",
        "Failover committed",
        "Recovery",
    ),
    Phase.reprotected_to_onprem: ("InMage", "Protected", "Protected", "Primary"),
    Phase.failback_in_progress: ("InMage", "UnplannedFailoverInProgress", "Failover in progress", "Primary"),
    Phase.failed_back: (
        "InMage",
        "UnplannedFailoverCommitPendingStatesBegin",
        "Failover completed",
        "Recovery",
    ),
    Phase.committed: ("InMage", "UnplannedFailoverCommitted", "Failover committed", "Recovery"),
    Phase.reprotected_to_azure: ("InMageAzureV2", "Protected", "Protected", "Primary"),
    Phase.unknown: ("InMageAzureV2", "Unknown", "Unknown", "Primary"),
}
_REPLICATING = {
    Phase.replicating_to_azure,
    Phase.reprotected_to_onprem,
    Phase.failback_in_progress,
    Phase.failed_back,
    Phase.reprotected_to_azure,
}
OP_ALLOWED = {
    "unplannedFailover": "UnplannedFailover",
    "failoverCommit": "Commit",
    "failoverCancel": "CancelFailover",
    "reProtect": "ReverseReplicate",
    "testFailover": "TestFailover",
    "testFailoverCleanup": "TestFailoverCleanup",
}
SCENARIO = {
    "unplannedFailover": "UnplannedFailover",
    "failoverCommit": "CommitFailover",
    "failoverCancel": "CancelFailover",
    "reProtect": "ReverseReplication",
    "testFailover": "TestFailover",
    "testFailoverCleanup": "TestFailoverCleanup",
}
FRIENDLY = {
    "unplannedFailover": "Unplanned failover",
    "failoverCommit": "Commit",
    "failoverCancel": "Cancel failover",
    "reProtect": "Reprotect",
    "testFailover": "Test failover",
    "testFailoverCleanup": "Test failover cleanup",
}
_W2008R2SP1 = re.compile(r"2008\s*R2.*SP\s*1", re.IGNORECASE)
AGENT_NOT_INSTALLED = "AgentNotInstalled"


#: job kind -> the Durations field a VM may override (estate ``vms[].durations``)
_DURATION_FIELD = {
    "failback": "failback",
    "failover": "failover",
    "commit-failback": "commit",
    "commit-failover": "commit",
    "cancel-failback": "failover_cancel",
    "cancel-failover": "failover_cancel",
    "reprotect-onprem": "reprotect",
    "reprotect-azure": "reprotect_to_azure",
    "drill-onprem": "test_failover",
    "drill-azure": "test_failover",
    "drill-cleanup": "test_failover_cleanup",
}

class SimError(Exception):
    """A refusal: HTTP status + ARM error code/message (+ more problems in ``details``)."""

    def __init__(self, status: int, code: str, message: str, details: list[tuple[str, str]] | None = None):
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        super().__init__(f"({code}) {message}")


@dataclass
class Item:
    """ASR-side runtime of one protected item."""

    vm: str  # friendly name
    name: str  # ARM name (GUID)
    current_job: str | None = None
    last_failover_time: datetime | None = None
    last_test_failover_time: datetime | None = None
    failover_point: str | None = None
    test_state: str | None = None
    test_job: str | None = None
    test_vm: str | None = None
    stopped_at: datetime | None = None
    azure_vm: str = "none"  # none | running | stopped | deleted
    commit_pending: bool = False  # a failover to Azure not yet committed
    prev_phase: Phase | None = None


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
    last_test_failover_time: datetime | None = None
    test_waiting: bool = False


class Engine:
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

    def item_id(self, item: Item) -> str:
        return f"{self.container_id}/replicationProtectedItems/{item.name}"

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
        if vm.phase not in _REPLICATING or vm.protection_disabled:
            return []
        return points_for(
            vm,
            default_generator=self.estate.recovery_points,
            clock_start=self.clock.start,
            now=self.clock.now(),
            stopped_at=item.stopped_at,
        )

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

    # -- state as ASR shows it -------------------------------------------------------------------------------
    def allowed_ops(self, item: Item) -> list[str]:
        vm = self.vm_of(item)
        if vm.protection_disabled:
            return []
        if item.current_job and self.jobs[item.current_job].running:
            return []
        out = [OP_ALLOWED[op] for op in OP_ALLOWED if self._transition(item, vm, op)[0] is not None]
        return out if item.test_state == "WaitingForCompletion" else out + ["DisableProtection"]

    def _transition(self, item: Item, vm: Vm, op: str) -> tuple[str | None, str]:
        """(kind, reason when refused) of ``op`` on ``item`` in its current phase."""
        ph = vm.phase
        if item.test_state == "WaitingForCompletion" and op != "testFailoverCleanup":
            return None, "a test failover is waiting for cleanup: run testFailoverCleanup first"
        if op == "unplannedFailover":
            if ph == Phase.reprotected_to_onprem:
                return "failback", ""
            if ph in (Phase.replicating_to_azure, Phase.reprotected_to_azure):
                return "failover", ""
            if ph == Phase.failed_over_to_azure:
                return None, (
                    "the VM runs in Azure and is not reprotected to on-premises: reprotect it and wait "
                    "for the reprotect to finish before failing back"
                )
            return None, f"the VM is {_describe(ph)}"
        if op == "failoverCommit":
            if ph == Phase.failed_back:
                return "commit-failback", ""
            if ph == Phase.failed_over_to_azure and item.commit_pending:
                return "commit-failover", ""
            return None, f"there is no failover to commit (the VM is {_describe(ph)})"
        if op == "failoverCancel":
            if ph == Phase.failed_back:
                return "cancel-failback", ""
            if ph == Phase.failed_over_to_azure and item.commit_pending:
                return "cancel-failover", ""
            return None, f"there is no uncommitted failover to cancel (the VM is {_describe(ph)})"
        if op == "reProtect":
            if ph == Phase.failed_over_to_azure and not item.commit_pending:
                return "reprotect-onprem", ""
            if ph == Phase.committed:
                return "reprotect-azure", ""
            if ph == Phase.failed_over_to_azure:
                return None, "commit the failover before reprotecting"
            return None, f"the VM is {_describe(ph)}"
        if op == "testFailover":
            if item.test_state == "WaitingForCompletion":
                return None, "a test failover is waiting for cleanup: run testFailoverCleanup first"
            if ph == Phase.reprotected_to_onprem:
                return "drill-onprem", ""
            if ph in (Phase.replicating_to_azure, Phase.reprotected_to_azure):
                return "drill-azure", ""
            return None, f"the VM is {_describe(ph)}"
        if op == "testFailoverCleanup":
            if item.test_state == "WaitingForCompletion":
                return "drill-cleanup", ""
            return None, "no test failover is waiting for cleanup"
        return None, f"unsupported operation {op}"

    # -- jobs ------------------------------------------------------------------------------------------------
    def tick(self) -> None:
        """Run every job step whose simulated time has come, in time order."""
        with self.lock:
            now = self.clock.now()
            heap = []
            for job in self.jobs.values():
                self._push(heap, job, now)
            while heap:
                _, _, name = heapq.heappop(heap)
                job = self.jobs[name]
                self._run_step(job)
                self._push(heap, job, now)

    def _push(self, heap: list, job: Job, now: datetime) -> None:
        if not job.running:
            return
        i = self._next_step(job)
        if i is None:
            return
        t = job.step_time(i)
        if t <= now:
            heapq.heappush(heap, (t, job.seq, job.name))

    @staticmethod
    def _next_step(job: Job) -> int | None:
        return next((i for i, s in enumerate(job.steps) if s.state in ("NotStarted", "InProgress")), None)

    def _run_step(self, job: Job) -> None:
        i = self._next_step(job)
        assert i is not None
        step = job.steps[i]
        t = job.step_time(i)
        step.start = step.start or (job.step_time(i - 1) if i else job.start)
        errors = []
        for vm in job.items:
            item = self.items[vm]
            err = step.check(item, t) if step.check else None
            if err is None and i == len(job.steps) - 1:
                err = self._job_fault(job.op, vm)
            if err:
                errors.append(err)
        step.end = t
        if errors:
            step.state = "Failed"
            step.errors = errors
            for s in job.steps[i + 1 :]:
                s.state = "Skipped"
            job.state, job.state_description, job.end = "Failed", "Failed", t
            job.errors = [(c, m, step.task_id) for c, m in errors]
            for vm in job.items:
                item = self.items[vm]
                if job.on_fail:
                    job.on_fail(item, t)
                if item.current_job == job.name:
                    item.current_job = None
            self._finish(job)
            return
        for vm in job.items:
            if step.effect:
                step.effect(self.items[vm], t)
        step.state = "Succeeded"
        if i == len(job.steps) - 1:
            job.state, job.state_description, job.end = "Succeeded", "Completed", t
            for vm in job.items:
                item = self.items[vm]
                if item.current_job == job.name:
                    item.current_job = None
            if job.on_done:
                job.on_done(t)
            self._finish(job)
        else:
            job.steps[i + 1].state = "InProgress"
            job.steps[i + 1].start = t

    def _finish(self, job: Job) -> None:
        if job.resource[0] == "plan":
            plan = self.plans.get(job.resource[1])
            if plan and plan.current_job == job.name:
                plan.current_job = None
        self.audit.record(
            time=job.end,
            event="job",
            operation=job.op,
            job=job.name,
            outcome=job.state.lower(),
            vm=job.items[0] if job.resource[0] == "item" else None,
            plan=job.resource[1] if job.resource[0] == "plan" else None,
            vms=list(job.items),
            code=job.errors[0][0] if job.errors else None,
            message=job.errors[0][1] if job.errors else None,
        )

    def _job_fault(self, op: str, vm: str) -> tuple[str, str] | None:
        f = self._match_fault(op, vm, "job")
        return (f.code, f"{FRIENDLY.get(op, op)} of VM '{vm}' failed: {f.message}") if f else None

    def _match_fault(self, op: str, vm: str | None, stage: str) -> OperationFault | None:
        for f in self.estate.faults.operations:
            if f.stage != stage or f.operation.lower() != op.lower():
                continue
            if f.vm is not None and f.vm != vm:
                continue
            if f.mode == "once" and f.fired:
                continue
            f.fired += 1
            return f
        return None

    def job_status(self, name: str) -> Job:
        with self.lock:
            self.tick()
            job = self.jobs.get(name)
            if job is None:
                raise SimError(404, "NotFound", f"replication job {name!r} not found")
            return job

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

    def _validate(
        self, op: str, item: Item, body: dict, *, plan_level: bool, plan_points: dict | None = None
    ):
        vm = self.vm_of(item)
        what = f"{FRIENDLY[op]} of VM '{vm.name}'"
        if item.current_job and self.jobs[item.current_job].running:
            running = self.jobs[item.current_job]
            raise SimError(
                409,
                "OperationInProgress",
                f"{what} refused: {running.friendly} job {running.name} is still running on this item",
            )
        problems: list[tuple[str, str]] = []
        if vm.protection_disabled:
            problems.append(("ProtectionDisabled", f"{what} refused: protection is disabled for this VM"))
        kind, reason = self._transition(item, vm, op)
        if kind is None and not problems:
            allowed = ", ".join(self.allowed_ops(item)) or "none"
            raise SimError(
                400, "OperationNotAllowed", f"{what} is not allowed: {reason} (allowed operations: {allowed})"
            )
        props = (body or {}).get("properties") or {}
        psd = props.get("providerSpecificDetails")
        if kind in (
            "failback",
            "failover",
            "reprotect-onprem",
            "reprotect-azure",
            "drill-onprem",
            "drill-azure",
        ):
            if vm.migrated:
                problems.append(("VmMigrated", f"{what} refused: the VM was migrated"))
            if vm.moved_resource_group:
                problems.append(
                    (
                        "VmMovedToAnotherResourceGroup",
                        f"{what} refused: the VM was moved to another resource group",
                    )
                )
            if vm.azure_vm_deleted and kind in ("failback", "reprotect-onprem", "drill-onprem"):
                problems.append(
                    ("AzureVmDeleted", f"{what} refused: the failed-over VM in Azure was deleted")
                )
        physical_2008 = (
            vm.machine_type == "physical" and vm.os == "windows" and _W2008R2SP1.search(vm.os_version)
        )
        if kind in ("failback", "reprotect-onprem", "drill-onprem") and vm.failback_host == "hyperv":
            problems.append(
                (
                    "FailbackToHyperVNotSupported",
                    f"{what} refused: VMware VMs cannot fail back to a Hyper-V host",
                )
            )
        if kind in ("failback", "reprotect-onprem", "drill-onprem") and physical_2008:
            problems.append(
                (
                    "UnsupportedPhysicalServer",
                    f"{what} refused: a physical server running {vm.os_version} cannot fail back "
                    "to on-premises VMware",
                )
            )
        if kind == "failback" and vm.replication_health != "Normal":
            problems.append(
                (
                    "ReplicationUnhealthy",
                    f"{what} refused: replication health is "
                    f"{vm.replication_health}; the reprotect has not finished cleanly",
                )
            )
        if (
            op == "unplannedFailover"
            and not plan_level
            and self.estate.settings.enforce_group_failover
            and vm.replication_group
            and len(self.estate.group_members(vm.replication_group)) > 1
        ):
            problems.append(
                (
                    "ReplicationGroupFailoverRequired",
                    f"{what} refused: the VM belongs to multi-VM replication group "
                    f"'{vm.replication_group}'; fail the group over with a recovery plan",
                )
            )
        ctx: dict = {}
        if not plan_level and kind is not None:
            self._check_input(kind, what, vm, psd, props, problems, ctx)
        if kind in ("failback", "failover", "drill-onprem", "drill-azure"):
            if plan_level:
                point = (plan_points or {}).get(vm.name)
                if point is None:
                    problems.append(
                        (
                            "NoRecoveryPoint",
                            f"{what} refused: no recovery point matches the recovery "
                            "plan's recovery point type",
                        )
                    )
            else:
                point = self._choose_point(item, kind, psd, what, problems)
            ctx["point"] = point
        if problems:
            code, msg = problems[0]
            raise SimError(
                400, code, msg if len(problems) == 1 else f"{msg} (and {len(problems) - 1} more)", problems
            )
        ctx["direction"] = props.get("failoverDirection")
        ctx["source_site_ops"] = props.get("sourceSiteOperations")
        return kind, ctx

    def _check_input(self, kind, what, vm, psd, props, problems, ctx) -> None:
        want = {
            "failback": "InMage",
            "drill-onprem": "InMage",
            "reprotect-onprem": "InMage",
            "failover": "InMageAzureV2",
            "drill-azure": "InMageAzureV2",
            "reprotect-azure": "InMageAzureV2",
        }
        if kind not in want:
            return
        got = (psd or {}).get("instanceType")
        if got != want[kind]:
            problems.append(
                (
                    "InvalidProviderInput",
                    f"{what} needs providerSpecificDetails of instanceType {want[kind]!r}, got {got!r}",
                )
            )
            return
        if kind == "reprotect-onprem":
            mt = self._resolve_mt(psd.get("masterTargetId"))
            if mt is None:
                problems.append(
                    (
                        "MasterTargetNotFound",
                        f"{what} refused: masterTargetId {psd.get('masterTargetId')!r} is not the id of a "
                        f"master target registered with configuration server "
                        f"{self.estate.configuration_server.name} (use an id its fabric lists in "
                        "masterTargetServers)",
                    )
                )
            else:
                if mt.os != vm.os:
                    problems.append(
                        (
                            "MasterTargetOsMismatch",
                            f"{what} refused: a {vm.os.value} VM needs a {vm.os.value} master target, "
                            f"{mt.name} runs {mt.os.value}",
                        )
                    )
                for other in self.estate.group_members(vm.replication_group or "\0"):
                    if (
                        other.name != vm.name
                        and other.master_target
                        and other.master_target != mt.name
                        and other.phase in (Phase.reprotected_to_onprem, Phase.failback_in_progress)
                    ):
                        problems.append(
                            (
                                "ReplicationGroupMasterTargetMismatch",
                                f"{what} refused: replication group '{vm.replication_group}' already uses "
                                f"master target {other.master_target}",
                            )
                        )
                        break
                ctx["master_target"] = mt.name
            ps = self._resolve_ps(psd.get("processServerId"))
            if ps is None:
                problems.append(self._ps_not_found(what, psd.get("processServerId")))
            else:
                ctx["process_server"] = ps
        ps_ref = psd.get("processServerId")
        if kind == "reprotect-azure" and ps_ref and self._resolve_ps(ps_ref) is None:
            problems.append(self._ps_not_found(what, ps_ref))
        if kind in ("drill-onprem", "drill-azure") and not props.get("networkType"):
            problems.append(("InvalidRequest", f"{what}: networkType is required"))

    def _resolve_mt(self, ref: str | None):
        """The master target whose id is ``ref`` (ARM ids compare case-insensitively; names are not ids)."""
        if not ref:
            return None
        for m in self.estate.master_targets:
            if ref.lower() == self.mt_id(m.name).lower():
                return m
        return None

    def _resolve_ps(self, ref: str | None) -> str | None:
        """The process server whose id is ``ref`` (the configuration server's own one included)."""
        if not ref:
            return None
        names = [p.name for p in self.estate.process_servers] + [self.estate.configuration_server.name]
        return next((n for n in names if ref.lower() == self.ps_id(n).lower()), None)

    def _ps_not_found(self, what: str, ref: str | None) -> tuple[str, str]:
        return (
            "ProcessServerNotFound",
            f"{what} refused: processServerId {ref!r} is not the id of a process server registered with "
            f"configuration server {self.estate.configuration_server.name} (use an id its fabric lists in "
            "processServers)",
        )

    def _choose_point(
        self, item: Item, kind: str, psd: dict | None, what: str, problems: list
    ) -> SimPoint | None:
        psd = psd or {}
        pts = self.points(item)
        rp_type = psd.get("recoveryPointType")
        rp_id = psd.get("recoveryPointId")
        if psd.get("instanceType") == "InMageAzureV2" or kind in ("failover", "drill-azure"):
            point = self.find_point(item, rp_id) if rp_id else latest(pts)
        elif rp_type == "Custom":
            point = self.find_point(item, rp_id)
            if point is None:
                problems.append(
                    (
                        "RecoveryPointNotFound",
                        f"{what} refused: recovery point {rp_id!r} does not exist for this VM",
                    )
                )
                return None
        elif rp_type == "LatestTag":
            point = latest(pts, app=True)
        else:
            point = latest(pts)
        if point is None:
            problems.append(
                (
                    "NoRecoveryPoint",
                    f"{what} refused: the VM has no "
                    f"{'app-consistent ' if rp_type == 'LatestTag' else ''}recovery point; "
                    "a VM cannot fail back until it has at least one recovery point",
                )
            )
        return point

    # -- jobs for each kind ----------------------------------------------------------------------------------
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
    ) -> Job:
        now = self.clock.now()
        d = self.estate.durations
        ctxs = ctxs or {it.vm: ctx for it in items}
        steps, on_fail = self._steps(kind, ctxs)
        duration = {
            "failback": d.failback,
            "failover": d.failover,
            "commit-failback": d.commit,
            "commit-failover": d.commit,
            "cancel-failback": d.failover_cancel,
            "cancel-failover": d.failover_cancel,
            "reprotect-onprem": d.reprotect,
            "reprotect-azure": d.reprotect_to_azure,
            "drill-onprem": d.test_failover,
            "drill-azure": d.test_failover,
            "drill-cleanup": d.test_failover_cleanup,
        }[kind]
        field_name = _DURATION_FIELD.get(kind)
        own = [
            getattr(v.durations, field_name)
            for v in (self.vm_of(it) for it in items)
            if field_name and v.durations is not None and getattr(v.durations, field_name) is not None
        ]
        if own:  # per-VM overrides: a multi-VM job takes as long as its slowest member
            duration = max(own)
        name = self.new_id()
        for s in steps:
            s.task_id = self.new_id()
        steps[0].state, steps[0].start = "InProgress", now
        self._seq += 1
        if resource[0] == "item":
            target_type, target_name, target_id = "ProtectionEntity", items[0].vm, items[0].name
        else:
            target_type, target_name, target_id = "RecoveryPlan", resource[1], self.plan_id(resource[1])
        job = Job(
            name=name,
            op=op,
            scenario=SCENARIO[op],
            friendly=FRIENDLY[op],
            target_type=target_type,
            target_name=target_name,
            target_id=target_id,
            items=[it.vm for it in items],
            resource=resource,
            start=now,
            duration=duration,
            steps=steps,
            on_fail=on_fail,
            seq=self._seq,
            points={vm: c["point"] for vm, c in ctxs.items() if c.get("point")},
            direction=next((c.get("direction") for c in ctxs.values()), None),
        )
        self.jobs[name] = job
        for it in items:
            it.current_job = name
            self._on_start(kind, it, ctxs[it.vm], now, job)
        if resource[0] == "plan":
            plan = self.plans[resource[1]]
            plan.current_job = plan.last_job = name
            if kind in ("failback", "failover"):
                plan.last_unplanned_failover_time = now
            if kind in ("drill-onprem", "drill-azure"):
                plan.last_test_failover_time = now
                job.on_done = lambda t, p=plan: setattr(p, "test_waiting", True)
            if kind == "drill-cleanup":
                job.on_done = lambda t, p=plan: setattr(p, "test_waiting", False)
        self.tick()
        return job

    def _on_start(self, kind: str, item: Item, ctx: dict, now: datetime, job: Job) -> None:
        vm = self.vm_of(item)
        if kind == "failback":
            item.prev_phase = vm.phase
            vm.phase = Phase.failback_in_progress
            item.stopped_at = now
        elif kind in ("drill-onprem", "drill-azure"):
            item.test_job = job.name
        elif kind == "failover":
            item.prev_phase = vm.phase
            item.stopped_at = now
            if ctx.get("source_site_ops") == "Required":
                self.site.power_off(vm.vcenter_vm)

    def _steps(self, kind: str, ctxs: dict[str, dict]):
        site = self.site
        est = self.estate

        def cs_check(item: Item, t: datetime):
            cs = est.configuration_server
            vm = self.vm_of(item)
            if not cs.connected:
                return (
                    "ConfigurationServerNotConnected",
                    f"VM '{vm.name}': the configuration server {cs.name} is not connected to the vault",
                )
            if not vm.in_configuration_server:
                return (
                    "VmNotFoundInConfigurationServer",
                    f"VM '{vm.name}' is not registered with the configuration server {cs.name}",
                )
            return None

        def vc_check(item: Item, t: datetime):
            if not est.vcenter.connected:
                return (
                    "VCenterNotConnected",
                    f"VM '{item.vm}': could not detach the disks from the master target and attach them "
                    f"to the on-premises VM: vCenter {est.vcenter.host} is not connected",
                )
            return None

        def mt_check(item: Item, t: datetime):
            name = ctxs[item.vm].get("master_target") or self.vm_of(item).master_target
            try:
                mt = est.master_target(name) if name else None
            except KeyError:
                mt = None
            if mt and mt.snapshots:
                return (
                    "MasterTargetHasSnapshots",
                    f"VM '{item.vm}': reprotect failed: master target {mt.name} has {mt.snapshots} "
                    "snapshot(s); delete them and retry",
                )
            err = cs_check(item, t)
            if err is None and not est.vcenter.connected:
                err = (
                    "VCenterNotConnected",
                    f"VM '{item.vm}': reprotect failed: vCenter {est.vcenter.host} is not connected",
                )
            return err

        def agent_check(item: Item, t: datetime):
            err = cs_check(item, t)
            if err:
                return err
            vm = self.vm_of(item)
            on_at = site.powered_on_at(vm.vcenter_vm)
            if on_at is None or t < on_at + timedelta(seconds=est.durations.agent_registration):
                return (
                    AGENT_NOT_INSTALLED,
                    f"Reprotect of VM '{vm.name}' failed: the Mobility Service agent isn't installed on the "
                    "source machine or hasn't registered with the configuration server yet (this can take up "
                    "to 15 minutes after the VM starts). Retry the operation later.",
                )
            return None

        def phase(p: Phase):
            def eff(item: Item, t: datetime):
                self.vm_of(item).phase = p

            return eff

        if kind == "failback":

            def shutdown(item, t):
                item.azure_vm = "stopped"

            def start_onprem(item, t):
                vm = self.vm_of(item)
                site.enable_tools(vm.vcenter_vm, True)  # ASR re-enables VMware Tools on Windows VMs
                site.power_on(vm.vcenter_vm, at=t)
                vm.phase = Phase.failed_back
                item.last_failover_time = t
                item.failover_point = ctxs[item.vm]["point"].name

            def fail(item, t):
                self.vm_of(item).phase = item.prev_phase or Phase.reprotected_to_onprem
                item.azure_vm = "running"
                item.stopped_at = None

            return [
                Step("PreFailoverCheck", "Prerequisites check for failover", 0.05, cs_check),
                Step("ShutdownAzureVm", "Shut down the virtual machine in Azure", 0.25, effect=shutdown),
                Step(
                    "DetachAttachDisks",
                    "Detach the disks from the master target and attach them to the "
                    "on-premises virtual machine",
                    0.75,
                    vc_check,
                ),
                Step("StartOnPremVm", "Start the virtual machine on-premises", 1.0, effect=start_onprem),
            ], fail
        if kind == "failover":

            def start_azure(item, t):
                vm = self.vm_of(item)
                item.azure_vm = "running"
                vm.phase = Phase.failed_over_to_azure
                item.commit_pending = True
                item.last_failover_time = t
                item.failover_point = ctxs[item.vm]["point"].name

            def fail(item, t):
                item.stopped_at = None

            return [
                Step("PreFailoverCheck", "Prerequisites check for failover", 0.05, cs_check),
                Step("StartAzureVm", "Start the virtual machine in Azure", 1.0, effect=start_azure),
            ], fail
        if kind == "commit-failback":

            def delete_azure(item, t):
                item.azure_vm = "deleted"
                self.vm_of(item).phase = Phase.committed
                item.stopped_at = None

            return [
                Step("CommitFailover", "Commit the failover", 0.5),
                Step("DeleteAzureVm", "Delete the virtual machine in Azure", 1.0, effect=delete_azure),
            ], None
        if kind == "commit-failover":

            def commit(item, t):
                item.commit_pending = False
                item.stopped_at = None

            return [Step("CommitFailover", "Commit the failover", 1.0, effect=commit)], None
        if kind == "cancel-failback":

            def off(item, t):
                site.power_off(self.vm_of(item).vcenter_vm)

            def back(item, t):
                item.azure_vm = "running"
                item.failover_point = None
                item.stopped_at = None
                self.vm_of(item).phase = Phase.reprotected_to_onprem

            return [
                Step("PowerOffOnPremVm", "Shut down the on-premises virtual machine", 0.5, effect=off),
                Step("StartAzureVm", "Start the virtual machine in Azure", 1.0, effect=back),
            ], None
        if kind == "cancel-failover":

            def back2(item, t):
                vm = self.vm_of(item)
                item.azure_vm = "none"
                item.failover_point = None
                item.stopped_at = None
                item.commit_pending = False
                vm.phase = item.prev_phase or Phase.replicating_to_azure
                site.power_on(vm.vcenter_vm, at=t)

            return [Step("CancelFailover", "Cancel the failover", 1.0, effect=back2)], None
        if kind == "reprotect-onprem":

            def replicate(item, t):
                vm = self.vm_of(item)
                vm.phase = Phase.reprotected_to_onprem
                vm.replicating_since = t
                c = ctxs[item.vm]
                if c.get("master_target"):
                    vm.master_target = c["master_target"]
                if c.get("process_server"):
                    vm.process_server = c["process_server"]
                item.failover_point = None

            return [
                Step("PreReprotectCheck", "Prerequisites check for reprotect", 0.05, mt_check),
                Step("PrepareMasterTarget", "Prepare the master target server", 0.3),
                Step("StartReplication", "Start the replication to on-premises", 1.0, effect=replicate),
            ], None
        if kind == "reprotect-azure":

            def replicate2(item, t):
                vm = self.vm_of(item)
                vm.phase = Phase.reprotected_to_azure
                vm.replicating_since = t
                item.failover_point = None
                item.azure_vm = "none"

            return [
                Step("PreReprotectCheck", "Prerequisites check for reprotect", 0.05, agent_check),
                Step("StartReplication", "Start the replication to Azure", 1.0, effect=replicate2),
            ], None
        if kind in ("drill-onprem", "drill-azure"):

            def create(item, t):
                if kind == "drill-onprem":
                    item.test_vm = site.create_test_vm(self.vm_of(item).vcenter_vm, at=t)
                item.test_state = "WaitingForCompletion"
                item.last_test_failover_time = t

            check = (
                (lambda item, t: cs_check(item, t) or vc_check(item, t))
                if kind == "drill-onprem"
                else cs_check
            )
            return [
                Step("PreTestFailoverCheck", "Prerequisites check for test failover", 0.05, check),
                Step("CreateTestVm", "Create the test virtual machine", 1.0, effect=create),
            ], None

        def cleanup(item, t):
            if item.test_vm:
                site.delete_vm(item.test_vm)
            item.test_vm = None
            item.test_state = "MarkedForDeletion"
            item.test_job = None

        return [Step("DeleteTestVm", "Delete the test virtual machine", 1.0, effect=cleanup)], None

    # -- recovery plans --------------------------------------------------------------------------------------
    def create_plan(self, name: str, body: dict) -> RecoveryPlan:
        with self.lock:
            props = (body or {}).get("properties") or {}
            groups = props.get("groups")
            if (
                not props.get("primaryFabricId")
                or not props.get("recoveryFabricId")
                or not isinstance(groups, list)
            ):
                raise SimError(
                    400,
                    "InvalidRequest",
                    f"recovery plan {name!r}: primaryFabricId, recoveryFabricId and groups are required",
                )
            vms: list[str] = []
            problems = []
            for g in groups:
                for rpi in g.get("replicationProtectedItems") or []:
                    ref = (rpi.get("id") or rpi.get("virtualMachineId") or "").rstrip("/").rsplit("/", 1)[-1]
                    item = self.item_by_name(ref)
                    if item is None:
                        problems.append(
                            (
                                "ProtectedItemNotFound",
                                f"recovery plan {name!r}: protected item {ref!r} not found",
                            )
                        )
                    elif item.vm not in vms:
                        vms.append(item.vm)
            if len(vms) > 100:
                problems.append(
                    ("TooManyItems", f"recovery plan {name!r}: {len(vms)} VMs, at most 100 are allowed")
                )
            if problems:
                raise SimError(400, problems[0][0], problems[0][1], problems)
            existing = self.plans.get(name)
            if existing and existing.current_job:
                raise SimError(409, "OperationInProgress", f"recovery plan {name!r} has a job running")
            plan = RecoveryPlan(
                name=name,
                groups=groups,
                items=vms,
                primary_fabric_id=props["primaryFabricId"],
                recovery_fabric_id=props["recoveryFabricId"],
                deployment_model=props.get("failoverDeploymentModel") or "ResourceManager",
            )
            self.plans[name] = plan
            return plan

    def plan(self, name: str) -> RecoveryPlan:
        plan = self.plans.get(name)
        if plan is None:
            raise SimError(404, "NotFound", f"recovery plan {name!r} not found")
        return plan

    def plan_allowed_ops(self, plan: RecoveryPlan) -> list[str]:
        if plan.current_job and self.jobs[plan.current_job].running:
            return []
        sets = [set(self.allowed_ops(self.items[vm])) for vm in plan.items if vm in self.items]
        if not sets:
            return []
        common = set.intersection(*sets) - {"DisableProtection"}
        return [op for op in OP_ALLOWED.values() if op in common]

    def plan_action(self, op: str, plan: RecoveryPlan, body: dict) -> Job:
        with self.lock:
            self.tick()
            if plan.current_job and self.jobs[plan.current_job].running:
                raise SimError(
                    409,
                    "OperationInProgress",
                    f"{FRIENDLY[op]} of recovery plan '{plan.name}' refused: job {plan.current_job} "
                    "is still running",
                )
            fault = self._match_fault(op, plan.name, "request")
            if fault:
                raise SimError(
                    fault.status,
                    fault.code,
                    f"{FRIENDLY[op]} of recovery plan '{plan.name}': {fault.message}",
                )
            items = [self.items[vm] for vm in plan.items]
            props = (body or {}).get("properties") or {}
            psds = props.get("providerSpecificDetails") or []
            plan_points = self._plan_points(op, items, psds)
            kinds: dict[str, str] = {}
            ctxs: dict[str, dict] = {}
            problems: list[tuple[str, str]] = []
            for it in items:
                try:
                    kind, ctx = self._validate(op, it, body, plan_level=True, plan_points=plan_points)
                except SimError as exc:
                    problems.extend(exc.details or [(exc.code, exc.message)])
                    continue
                if kind == "reprotect-onprem":
                    vm = self.vm_of(it)
                    ctx["master_target"], ctx["process_server"] = vm.master_target, vm.process_server
                kinds[it.vm], ctxs[it.vm] = kind, ctx
            if not problems and len(set(kinds.values())) > 1:
                problems.append(
                    (
                        "OperationNotAllowed",
                        f"{FRIENDLY[op]} of recovery plan '{plan.name}' refused: "
                        "its VMs are in different phases",
                    )
                )
            if problems:
                raise SimError(
                    400,
                    problems[0][0],
                    f"{FRIENDLY[op]} of recovery plan '{plan.name}' refused: "
                    f"{problems[0][1]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                    problems,
                )
            if not items:
                raise SimError(400, "InvalidRequest", f"recovery plan '{plan.name}' has no protected items")
            kind = next(iter(kinds.values()))
            return self._start_job(op, kind, items, {}, body, resource=("plan", plan.name), ctxs=ctxs)

    def _plan_points(self, op: str, items: list[Item], psds: list[dict]) -> dict[str, SimPoint]:
        if op not in ("unplannedFailover", "testFailover"):
            return {}
        out: dict[str, SimPoint] = {}
        by_type = {p.get("instanceType"): p for p in psds if isinstance(p, dict)}
        groups: dict[str, dict[str, list[SimPoint]]] = {}
        for it in items:
            vm = self.vm_of(it)
            provider = PHASE_VIEW[vm.phase][0]
            spec = by_type.get(provider, {})
            rp_type = spec.get("recoveryPointType") or ("LatestTime" if provider == "InMage" else "Latest")
            pts = self.points(it)
            app = rp_type in ("LatestTag", "LatestApplicationConsistent")
            multi = app and (provider == "InMage" or spec.get("useMultiVmSyncPoint") == "True")
            if multi and vm.replication_group:
                groups.setdefault(vm.replication_group, {})[vm.name] = pts
                continue
            p = latest(pts, app=app)
            if p:
                out[vm.name] = p
        for members in groups.values():
            common = common_app_point(members)
            if common:
                out.update(common)
        return out


def _describe(phase: Phase) -> str:
    return {
        Phase.replicating_to_azure: "replicating to Azure",
        Phase.failed_over_to_azure: "failed over to Azure",
        Phase.reprotected_to_onprem: "reprotected to on-premises (ready to fail back)",
        Phase.failback_in_progress: "failing back",
        Phase.failed_back: "failed back to on-premises, commit pending",
        Phase.committed: "failed back and committed",
        Phase.reprotected_to_azure: "reprotected to Azure",
        Phase.unknown: "in an unknown state",
    }[phase]
