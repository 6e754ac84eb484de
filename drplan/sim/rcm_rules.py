"""The modernized stack's rules as the simulated ASR applies them (InMageRcm forward, InMageRcmFailback
back): which operation each phase allows, and the refusals ASR makes when a request arrives
(:class:`~drplan.sim.rules.SimError`, HTTP 400/409, nothing changes). A mixin of
:class:`drplan.sim.lifecycle.Engine`; the codes are listed in ``docs/estate.md``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from drplan.observed import Phase
from drplan.sim.conditions import physical_w2008r2
from drplan.sim.engine_base import EngineBase
from drplan.sim.estate import DISKS_PER_APPLIANCE, STALE_HEARTBEAT
from drplan.sim.recovery_points import SimPoint, latest
from drplan.sim.rules import FRIENDLY, REPLICATING, SimError, describe, moved_problems, raise_problems

if TYPE_CHECKING:
    from drplan.sim.estate import Vm
    from drplan.sim.items import Item

#: operations that do not exist for InMageRcmFailback items (no provider input in the spec)
NOT_ON_FAILBACK = ("unplannedFailover", "testFailover", "applyRecoveryPoint")
FAILBACK_PHASES = {
    Phase.reprotected_to_onprem,
    Phase.failback_in_progress,
    Phase.failed_back,
    Phase.committed,
}
_FORWARD = {Phase.replicating_to_azure, Phase.reprotected_to_azure}
RP_TYPES = ("ApplicationConsistent", "CrashConsistent")
#: job kind -> the provider input instanceType it takes (and the failover direction it must carry)
_INPUT = {
    "rcm-failover": "InMageRcm",
    "rcm-drill": "InMageRcm",
    "rcm-change-pit": "InMageRcm",
    "rcm-reprotect-onprem": "InMageRcm",
    "rcm-failback": "InMageRcmFailback",
    "rcm-reprotect-azure": "InMageRcmFailback",
}
_NOT_FOUND = {"reprotectAgents": "ReprotectAgentNotFound", "processServers": "ProcessServerNotFound"}
_DIRECTION = {"rcm-reprotect-onprem": "RecoveryToPrimary", "rcm-reprotect-azure": "PrimaryToRecovery"}


class RcmRules(EngineBase):
    """Refusals of the modernized stack (a mixin of :class:`drplan.sim.lifecycle.Engine`)."""

    def _rcm_transition(self, item: Item, vm: Vm, op: str) -> tuple[str | None, str]:
        """(kind, reason when refused) of ``op`` on a modernized ``item`` in its current phase."""
        ph = vm.phase
        if item.test_state == "WaitingForCompletion" and op != "testFailoverCleanup":
            return None, "a test failover is waiting for cleanup: run testFailoverCleanup first"
        if ph in FAILBACK_PHASES and op in NOT_ON_FAILBACK:
            return None, (
                f"{FRIENDLY[op].lower()} does not exist for replication provider InMageRcmFailback "
                "(fail back with a planned failover)"
            )
        pending = ph == Phase.failed_over_to_azure and item.commit_pending
        kinds = {
            "unplannedFailover": "rcm-failover" if ph in _FORWARD else None,
            "plannedFailover": "rcm-failback" if ph == Phase.reprotected_to_onprem else None,
            "failoverCommit": "commit-failback"
            if ph == Phase.failed_back
            else ("commit-failover" if pending else None),
            "failoverCancel": "cancel-failback"
            if ph == Phase.failed_back
            else ("cancel-failover" if pending else None),
            "reProtect": "rcm-reprotect-azure"
            if ph == Phase.committed
            else ("rcm-reprotect-onprem" if ph == Phase.failed_over_to_azure and not pending else None),
            "testFailover": "rcm-drill" if ph in _FORWARD else None,
            "testFailoverCleanup": "rcm-drill-cleanup" if item.test_state == "WaitingForCompletion" else None,
            "applyRecoveryPoint": "rcm-change-pit" if pending else None,
        }
        kind = kinds.get(op)
        if kind:
            return kind, ""
        if op == "plannedFailover" and ph == Phase.failed_over_to_azure:
            return None, (
                "the VM runs in Azure and is not reprotected to on-premises: reprotect it and wait for the "
                "reprotect to finish before failing back"
            )
        if op == "reProtect" and pending:
            return None, "commit the failover before reprotecting"
        if op == "testFailoverCleanup":
            return None, "no test failover is waiting for cleanup"
        return None, f"the VM is {describe(ph)}"

    def _rcm_validate(
        self, op: str, item: Item, body: dict, *, what: str, plan_level: bool, plan_points: dict | None
    ) -> tuple[str, dict]:
        vm = self.vm_of(item)
        problems: list[tuple[str, str]] = []
        if vm.protection_disabled:
            problems.append(("ProtectionDisabled", f"{what} refused: protection is disabled for this VM"))
        kind, reason = self._rcm_transition(item, vm, op)
        if kind is None and not problems:
            allowed = ", ".join(self.allowed_ops(item)) or "none"
            code = "OperationNotSupported" if op in NOT_ON_FAILBACK and vm.phase in FAILBACK_PHASES else None
            raise SimError(
                400,
                code or "OperationNotAllowed",
                f"{what} {'refused' if code else 'is not allowed'}: {reason} (allowed operations: {allowed})",
            )
        props = (body or {}).get("properties") or {}
        psd = _provider_input(props.get("providerSpecificDetails"), _INPUT.get(kind or ""), plan_level)
        ctx: dict = {"direction": props.get("failoverDirection")}
        if kind in (
            "rcm-failover",
            "rcm-drill",
            "rcm-reprotect-onprem",
            "rcm-reprotect-azure",
            "rcm-failback",
        ):
            problems += moved_problems(vm, what)
        if kind in ("rcm-failback", "rcm-reprotect-onprem"):
            problems += self._onprem_target_problems(vm, what)
        if kind == "rcm-failback" and vm.replication_health != "Normal":
            problems.append(
                ("ReplicationUnhealthy", f"{what} refused: replication health is {vm.replication_health}")
            )
        if kind is not None:
            self._rcm_input(kind, what, vm, psd, props, problems, ctx, plan_level)
        if kind in ("rcm-failover", "rcm-drill", "rcm-change-pit"):
            ctx["point"] = self._rcm_point(item, psd, what, problems, plan_level, plan_points)
        raise_problems(problems)
        assert kind is not None
        if kind == "rcm-reprotect-onprem" and ctx.get("alternate"):
            kind = "rcm-reprotect-alternate"  # the original VM is gone: a new one, full replication
        return kind, ctx

    # -- request checks --------------------------------------------------------------------------------------
    def _onprem_target_problems(self, vm: Vm, what: str) -> list[tuple[str, str]]:
        out = []
        if vm.azure_vm_deleted:
            out.append(("AzureVmDeleted", f"{what} refused: the failed-over VM in Azure was deleted"))
        if vm.failback_host == "hyperv":
            out.append(
                (
                    "FailbackToHyperVNotSupported",
                    f"{what} refused: VMware VMs cannot fail back to a Hyper-V host",
                )
            )
        if physical_w2008r2(vm):
            out.append(
                (
                    "UnsupportedPhysicalServer",
                    f"{what} refused: a physical server running {vm.os_version} cannot fail back to "
                    "on-premises VMware",
                )
            )
        return out

    def _rcm_input(self, kind, what, vm, psd, props, problems, ctx, plan_level) -> None:
        want = _INPUT.get(kind)
        if want is None:
            return
        got = (psd or {}).get("instanceType")
        if got != want and not (plan_level and kind in ("rcm-failover", "rcm-drill")):
            problems.append(
                (
                    "InvalidProviderInput",
                    f"{what} needs providerSpecificDetails of instanceType {want!r}, got {got!r}",
                )
            )
            return
        psd = psd or {}
        direction = _DIRECTION.get(kind)
        if direction and props.get("failoverDirection") != direction:
            problems.append(
                (
                    "InvalidFailoverDirection",
                    f"{what} refused: failoverDirection must be {direction}, "
                    f"got {props.get('failoverDirection')!r}",
                )
            )
        if kind == "rcm-reprotect-onprem":
            self._reprotect_onprem_input(what, vm, psd, problems, ctx)
        elif kind == "rcm-reprotect-azure":
            self._reprotect_azure_input(what, vm, psd, problems, ctx)
        elif kind == "rcm-failback":
            rp_type = psd.get("recoveryPointType")
            if rp_type not in RP_TYPES:
                problems.append(
                    (
                        "InvalidProviderInput",
                        f"{what}: recoveryPointType must be one of {', '.join(RP_TYPES)}",
                    )
                )
            ctx["point_type"] = rp_type
            ctx["multi"] = plan_level and psd.get("useMultiVmSyncPoint") in ("Enable", "True")
            if (
                rp_type == "ApplicationConsistent"
                and latest(self.points(self.items[vm.name]), app=True) is None
            ):
                problems.append(
                    (
                        "NoRecoveryPoint",
                        f"{what} refused: the VM has no app-consistent recovery point yet "
                        "(use CrashConsistent: a crash-consistent point is made when the Azure VM is shut "
                        "down)",
                    )
                )
        elif kind == "rcm-failover":
            ctx["shutdown"] = str(psd.get("performShutdown", "false")).lower() == "true"
        elif kind == "rcm-drill":
            net = psd.get("networkId") or props.get("networkId")
            if not net:
                problems.append(
                    ("InvalidRequest", f"{what}: networkId (the isolated test network) is required")
                )
            ctx["network"] = net

    def _reprotect_onprem_input(self, what, vm, psd, problems, ctx) -> None:
        est = self.estate
        agent = self._appliance_by(what, vm, psd, "reprotectAgentId", "reprotectAgents", problems)
        if agent is not None:
            ds = psd.get("datastoreName")
            if ds not in est.appliance(agent).datastores:
                problems.append(
                    (
                        "DatastoreNotAccessible",
                        f"{what} refused: datastore {ds!r} is not reachable from appliance {agent} "
                        f"(it reaches {', '.join(est.appliance(agent).datastores) or 'none'})",
                    )
                )
            ctx.update(appliance=agent, datastore=ds)
        log = psd.get("logStorageAccountId") or ""
        if log.lower() != self.log_storage_id.lower():
            problems.append(
                (
                    "LogStorageAccountNotFound",
                    f"{what} refused: logStorageAccountId {log!r} is not the vault's log storage account",
                )
            )
        policy = psd.get("policyId")
        if policy and policy.lower() != self.policy_id(est.modernized.policy_failback).lower():
            problems.append(self._policy_not_found(what, policy, "InMageRcmFailback"))
        ctx["policy"] = est.modernized.policy_failback
        item = self.items[vm.name]
        if not vm.agent_registered_after_failover:
            problems.append(
                (
                    "AgentNotRegisteredAfterFailover",
                    f"{what} refused: the mobility agent of the Azure VM did not register after the failover",
                )
            )
        elif (hb := self.agent_heartbeat(item)) is None or self.clock.now() - hb > timedelta(
            seconds=STALE_HEARTBEAT
        ):
            problems.append(
                (
                    "MobilityAgentHeartbeatStale",
                    f"{what} refused: the mobility agent of the Azure VM has not sent a heartbeat for "
                    f"more than {STALE_HEARTBEAT / 60:g} minutes (last {hb.isoformat() if hb else 'never'})",
                )
            )
        ctx["alternate"] = vm.onprem_vm_deleted or not self.site.exists(vm.vcenter_vm)

    def _reprotect_azure_input(self, what, vm, psd, problems, ctx) -> None:
        est = self.estate
        ctx["appliance"] = self._appliance_by(what, vm, psd, "processServerId", "processServers", problems)
        policy = psd.get("policyId") or ""
        if policy.lower() != self.policy_id(est.modernized.policy_to_azure).lower():
            problems.append(self._policy_not_found(what, policy, "InMageRcm"))
        ctx["policy"] = est.modernized.policy_to_azure
        account = psd.get("runAsAccountId")
        if account and account.lower() not in {
            self.run_as_id(a).lower() for a in est.modernized.run_as_accounts
        }:
            problems.append(
                (
                    "RunAsAccountNotFound",
                    f"{what} refused: runAsAccountId {account!r} is not a run-as account",
                )
            )

    def _appliance_by(self, what, vm, psd, field: str, component: str, problems) -> str | None:
        """The appliance whose ``component`` the input's ``field`` names (with its refusals), or None."""
        ref = psd.get(field)
        name = self.appliance_of_component(component, ref)
        if name is None:
            code = _NOT_FOUND[component]
            problems.append(
                (
                    code,
                    f"{what} refused: {field} {ref!r} is not one of the {component} of fabric "
                    f"{self.estate.modernized.fabric} (use an id the fabric lists)",
                )
            )
            return None
        problems += self._appliance_problems(what, name, vm)
        return name

    def _policy_not_found(self, what: str, ref: str, provider: str) -> tuple[str, str]:
        return ("PolicyNotFound", f"{what} refused: policyId {ref!r} is not an {provider} replication policy")

    def _appliance_problems(self, what: str, name: str, vm: Vm) -> list[tuple[str, str]]:
        app = self.estate.appliance(name)
        out = []
        if not app.connected:
            out.append(
                ("ApplianceNotConnected", f"{what} refused: appliance {name} is not connected to the vault")
            )
        elif app.health != "Normal":
            out.append(("ApplianceNotHealthy", f"{what} refused: appliance {name} health is {app.health}"))
        used = self.disks_in_use(name)
        if used + vm.disks > DISKS_PER_APPLIANCE:
            out.append(
                (
                    "ApplianceDiskLimitExceeded",
                    f"{what} refused: appliance {name} replicates {used} of its {DISKS_PER_APPLIANCE} disks; "
                    f"the VM's {vm.disks} more would exceed the limit (use another appliance)",
                )
            )
        return out

    def _rcm_point(self, item, psd, what, problems, plan_level, plan_points) -> SimPoint | None:
        if plan_level:
            point = (plan_points or {}).get(item.vm)
        else:
            ref = (psd or {}).get("recoveryPointId")
            point = self.find_point(item, ref) if ref else latest(self.points(item))
            if ref and point is None:
                problems.append(
                    (
                        "RecoveryPointNotFound",
                        f"{what} refused: recovery point {ref!r} does not exist for this VM",
                    )
                )
                return None
        if point is None:
            problems.append(("NoRecoveryPoint", f"{what} refused: the VM has no recovery point"))
        return point

    # -- what the checks read --------------------------------------------------------------------------------
    def disks_in_use(self, appliance: str) -> int:
        """Replicated disks ``appliance`` holds now (items replicating through it, either way)."""
        return sum(
            v.disks
            for v in self.estate.vms
            if v.provider == "modernized" and v.appliance == appliance and v.phase in REPLICATING
        )

    def agent_heartbeat(self, item: Item) -> datetime | None:
        """Last heartbeat of the mobility agent on the VM's Azure side (None when it has no Azure VM)."""
        vm = self.vm_of(item)
        if item.azure_vm == "running":
            return self.clock.now() - timedelta(seconds=vm.agent_heartbeat_age)
        if item.azure_vm == "stopped" and item.stopped_at:
            return item.stopped_at - timedelta(seconds=vm.agent_heartbeat_age)
        return None


def _provider_input(psd, want: str | None, plan_level: bool) -> dict | None:
    """The provider input a request carries (at plan level: the list entry of the wanted instanceType)."""
    if plan_level or isinstance(psd, list):
        entries = [p for p in psd or [] if isinstance(p, dict)]
        return next((p for p in entries if p.get("instanceType") == want), None)
    return psd if isinstance(psd, dict) else None
