"""The failback doc's rules as the simulated ASR applies them: which operation each phase allows, and the
refusals ASR makes when a request arrives (:class:`SimError`, HTTP 400/409, nothing changes)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from drplan.observed import Phase
from drplan.sim.engine_base import EngineBase
from drplan.sim.recovery_points import SimPoint, latest

if TYPE_CHECKING:
    from drplan.sim.estate import Vm
    from drplan.sim.items import Item

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
# The same phases on the modernized stack: InMageRcm forward, InMageRcmFailback back (planned failover).
RCM_PHASE_VIEW: dict[Phase, tuple[str, str, str, str]] = {
    Phase.replicating_to_azure: ("InMageRcm", "Protected", "Protected", "Primary"),
    Phase.failed_over_to_azure: ("InMageRcm", "UnplannedFailoverCommitted", "Failover committed", "Recovery"),
    Phase.reprotected_to_onprem: ("InMageRcmFailback", "Protected", "Protected", "Primary"),
    Phase.failback_in_progress: (
        "InMageRcmFailback",
        "PlannedFailoverInProgress",
        "Planned failover in progress",
        "Primary",
    ),
    Phase.failed_back: (
        "InMageRcmFailback",
        "PlannedFailoverCommitRequired",
        "Planned failover finished",
        "Recovery",
    ),
    Phase.committed: (
        "InMageRcmFailback",
        "PlannedFailoverStatesBegin",
        "Planned failover committed",
        "Recovery",
    ),
    Phase.reprotected_to_azure: ("InMageRcm", "Protected", "Protected", "Primary"),
    Phase.unknown: ("InMageRcm", "Unknown", "Unknown", "Primary"),
}
REPLICATING = {
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
    "plannedFailover": "PlannedFailover",
    "applyRecoveryPoint": "ChangePit",
}
SCENARIO = {
    "unplannedFailover": "UnplannedFailover",
    "failoverCommit": "CommitFailover",
    "failoverCancel": "CancelFailover",
    "reProtect": "ReverseReplication",
    "testFailover": "TestFailover",
    "testFailoverCleanup": "TestFailoverCleanup",
    "plannedFailover": "PlannedFailover",
    "applyRecoveryPoint": "ApplyRecoveryPoint",
}
FRIENDLY = {
    "unplannedFailover": "Unplanned failover",
    "failoverCommit": "Commit",
    "failoverCancel": "Cancel failover",
    "reProtect": "Reprotect",
    "testFailover": "Test failover",
    "testFailoverCleanup": "Test failover cleanup",
    "plannedFailover": "Planned failover",
    "applyRecoveryPoint": "Change recovery point",
}
_W2008R2SP1 = re.compile(r"2008\s*R2.*SP\s*1", re.IGNORECASE)
AGENT_NOT_INSTALLED = "AgentNotInstalled"


class SimError(Exception):
    """A refusal: HTTP status + ARM error code/message (+ more problems in ``details``)."""

    def __init__(self, status: int, code: str, message: str, details: list[tuple[str, str]] | None = None):
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        super().__init__(f"({code}) {message}")


def phase_view(vm: Vm) -> tuple[str, str, str, str]:
    """ASR's view of ``vm``'s phase on its stack: (provider, protectionState, description, activeLocation)."""
    return (RCM_PHASE_VIEW if vm.provider == "modernized" else PHASE_VIEW)[vm.phase]


def describe(phase: Phase) -> str:
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


def moved_problems(vm: Vm, what: str) -> list[tuple[str, str]]:
    """Refusals of a VM that was migrated or moved to another resource group."""
    out = []
    if vm.migrated:
        out.append(("VmMigrated", f"{what} refused: the VM was migrated"))
    if vm.moved_resource_group:
        out.append(
            ("VmMovedToAnotherResourceGroup", f"{what} refused: the VM was moved to another resource group")
        )
    return out


def raise_problems(problems: list[tuple[str, str]]) -> None:
    """Refuse with the first problem (HTTP 400), all of them in ``details``; nothing when there is none."""
    if problems:
        code, msg = problems[0]
        raise SimError(
            400, code, msg if len(problems) == 1 else f"{msg} (and {len(problems) - 1} more)", problems
        )


class Rules(EngineBase):
    """The engine's refusals: what ASR allows in each phase and what it checks in a request (a mixin of
    :class:`drplan.sim.lifecycle.Engine`)."""

    def allowed_ops(self, item: Item) -> list[str]:
        vm = self.vm_of(item)
        if vm.protection_disabled:
            return []
        if item.current_job and self.jobs[item.current_job].running:
            return []
        out = [OP_ALLOWED[op] for op in OP_ALLOWED if self._transition(item, vm, op)[0] is not None]
        return out if item.test_state == "WaitingForCompletion" else out + ["DisableProtection"]

    def _refuse_if_busy(self, item: Item, what: str) -> None:
        if item.current_job and self.jobs[item.current_job].running:
            running = self.jobs[item.current_job]
            raise SimError(
                409,
                "OperationInProgress",
                f"{what} refused: {running.friendly} job {running.name} is still running on this item",
            )

    def _transition(self, item: Item, vm: Vm, op: str) -> tuple[str | None, str]:
        """(kind, reason when refused) of ``op`` on ``item`` in its current phase."""
        if vm.provider == "modernized":
            return self._rcm_transition(item, vm, op)
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
            return None, f"the VM is {describe(ph)}"
        if op == "failoverCommit":
            if ph == Phase.failed_back:
                return "commit-failback", ""
            if ph == Phase.failed_over_to_azure and item.commit_pending:
                return "commit-failover", ""
            return None, f"there is no failover to commit (the VM is {describe(ph)})"
        if op == "failoverCancel":
            if ph == Phase.failed_back:
                return "cancel-failback", ""
            if ph == Phase.failed_over_to_azure and item.commit_pending:
                return "cancel-failover", ""
            return None, f"there is no uncommitted failover to cancel (the VM is {describe(ph)})"
        if op == "reProtect":
            if ph == Phase.failed_over_to_azure and not item.commit_pending:
                return "reprotect-onprem", ""
            if ph == Phase.committed:
                return "reprotect-azure", ""
            if ph == Phase.failed_over_to_azure:
                return None, "commit the failover before reprotecting"
            return None, f"the VM is {describe(ph)}"
        if op == "testFailover":
            if item.test_state == "WaitingForCompletion":
                return None, "a test failover is waiting for cleanup: run testFailoverCleanup first"
            if ph == Phase.reprotected_to_onprem:
                return "drill-onprem", ""
            if ph in (Phase.replicating_to_azure, Phase.reprotected_to_azure):
                return "drill-azure", ""
            return None, f"the VM is {describe(ph)}"
        if op == "testFailoverCleanup":
            if item.test_state == "WaitingForCompletion":
                return "drill-cleanup", ""
            return None, "no test failover is waiting for cleanup"
        return None, f"unsupported operation {op}"

    def _validate(
        self, op: str, item: Item, body: dict, *, plan_level: bool, plan_points: dict | None = None
    ):
        vm = self.vm_of(item)
        what = f"{FRIENDLY[op]} of VM '{vm.name}'"
        self._refuse_if_busy(item, what)
        if vm.provider == "modernized":
            return self._rcm_validate(
                op, item, body, what=what, plan_level=plan_level, plan_points=plan_points
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
            problems += moved_problems(vm, what)
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
        raise_problems(problems)
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
