"""What each job of the modernized stack does, step by step, to the item, the estate, the simulated vCenter
and the Azure side (a mixin of :class:`drplan.sim.lifecycle.Engine`; job kinds ``rcm-*``).

A planned failover (the failback) makes its recovery point after the job starts: crash-consistent when the
Azure VM is shut down and the pending changes are copied, or the newest app-consistent point at that time;
a replication group of a recovery plan with ``useMultiVmSyncPoint`` gets one common point. A planned
failover that fails cancels itself: the Azure VM runs again and the item is back where it was."""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from drplan.observed import Phase
from drplan.sim.engine_base import EngineBase
from drplan.sim.jobs import Job, Step
from drplan.sim.recovery_points import SimPoint, common_app_point, latest, point_name
from drplan.sim.rules import AGENT_NOT_INSTALLED

if TYPE_CHECKING:
    from drplan.sim.engine_base import StepPlan
    from drplan.sim.items import Item

Check = tuple[str, str] | None


def link_local_ip(vm: str) -> str:
    """The address a guest whose static IP was not kept configures itself (stable per VM)."""
    h = zlib.crc32(vm.encode())
    return f"169.254.{1 + h % 254}.{1 + (h >> 8) % 254}"


class RcmTransitions(EngineBase):
    """Job steps of the modernized stack (a mixin of :class:`drplan.sim.lifecycle.Engine`)."""

    def _rcm_on_start(self, kind: str, item: Item, ctx: dict, now: datetime, job: Job) -> None:
        ctx["job"] = job
        vm = self.vm_of(item)
        if kind == "rcm-failback":
            item.prev_phase = vm.phase
            vm.phase = Phase.failback_in_progress
            item.planned_failover_start = now
        elif kind == "rcm-failover":
            item.prev_phase = vm.phase
            item.stopped_at = now
        elif kind == "rcm-drill":
            item.test_job = job.name

    def _rcm_steps(self, kind: str, ctxs: dict[str, dict]) -> StepPlan:
        site, est = self.site, self.estate

        def appliance_up(item: Item, t: datetime) -> Check:
            name = ctxs[item.vm].get("appliance") or self.vm_of(item).appliance
            if name and not est.appliance(name).connected:
                return (
                    "ApplianceNotConnected",
                    f"VM '{item.vm}': appliance {name} is not connected to the vault",
                )
            return None

        def vcenter_up(item: Item, t: datetime) -> Check:
            if not est.vcenter.connected:
                return ("VCenterNotConnected", f"VM '{item.vm}': vCenter {est.vcenter.host} is not connected")
            return None

        def agent_registered(item: Item, t: datetime) -> Check:
            vm = self.vm_of(item)
            on_at = site.powered_on_at(vm.vcenter_vm) if site.exists(vm.vcenter_vm) else None
            if on_at is None or t < on_at + timedelta(seconds=est.durations.agent_registration):
                return (
                    AGENT_NOT_INSTALLED,
                    f"Reprotect of VM '{vm.name}' failed: the Mobility Service agent on the on-premises "
                    "machine hasn't registered with the appliance yet (this can take up to 15 minutes "
                    "after the VM starts). Retry the operation later.",
                )
            return None

        def both(*checks):
            return lambda item, t: next((e for c in checks if (e := c(item, t))), None)

        if kind in ("rcm-reprotect-onprem", "rcm-reprotect-alternate"):
            return self._reprotect_onprem_steps(kind, ctxs, both(appliance_up, vcenter_up), vcenter_up)
        if kind == "rcm-failback":
            return self._failback_steps(ctxs, both(appliance_up, vcenter_up), appliance_up, vcenter_up)
        if kind == "rcm-reprotect-azure":

            def replicate(item, t):
                vm, c = self.vm_of(item), ctxs[item.vm]
                vm.phase, vm.replicating_since, vm.appliance = Phase.reprotected_to_azure, t, c["appliance"]
                item.failover_point, item.azure_vm, item.policy = None, "none", c["policy"]
                item.produced_points, item.reprotect_job = [], None

            return [
                Step(
                    "PreReprotectCheck",
                    "Prerequisites check for reprotect",
                    0.05,
                    both(appliance_up, agent_registered),
                ),
                Step("StartReplication", "Start the replication to Azure", 1.0, effect=replicate),
            ], None
        if kind == "rcm-failover":

            def shutdown(item, t):
                if ctxs[item.vm].get("shutdown"):
                    site.power_off(self.vm_of(item).vcenter_vm)

            def start_azure(item, t):
                self.vm_of(item).phase = Phase.failed_over_to_azure
                item.azure_vm, item.commit_pending, item.last_failover_time = "running", True, t
                item.failover_point = ctxs[item.vm]["point"].name

            def fail(item, t):
                item.stopped_at = None

            return [
                Step("PreFailoverCheck", "Prerequisites check for failover", 0.05, appliance_up),
                Step("ShutdownOnPremVm", "Shut down the on-premises virtual machine", 0.2, effect=shutdown),
                Step("StartAzureVm", "Start the virtual machine in Azure", 1.0, effect=start_azure),
            ], fail
        if kind == "rcm-change-pit":

            def apply(item, t):
                item.failover_point = ctxs[item.vm]["point"].name

            return [Step("ApplyRecoveryPoint", "Change the recovery point", 1.0, effect=apply)], None
        if kind == "rcm-drill":

            def create(item, t):
                item.test_vm, item.test_network = f"{self.vm_of(item).name}-test", ctxs[item.vm]["network"]
                item.test_state, item.last_test_failover_time = "WaitingForCompletion", t

            return [
                Step("PreTestFailoverCheck", "Prerequisites check for test failover", 0.05, appliance_up),
                Step("CreateTestVm", "Create the test virtual machine in Azure", 1.0, effect=create),
            ], None

        def cleanup(item, t):
            item.test_vm, item.test_network, item.test_job = None, None, None
            item.test_state = "MarkedForDeletion"

        return [Step("DeleteTestVm", "Delete the test virtual machine in Azure", 1.0, effect=cleanup)], None

    def _reprotect_onprem_steps(self, kind: str, ctxs: dict[str, dict], pre, vcenter_up):
        site = self.site
        alternate = kind == "rcm-reprotect-alternate"

        def prepare(item, t):
            vm = self.vm_of(item)
            if alternate:
                site.create_vm(vm.name)
            else:
                site.power_off(vm.vcenter_vm)

        def start(item, t):
            vm, c = self.vm_of(item), ctxs[item.vm]
            job = c["job"]
            vm.phase, vm.appliance = Phase.reprotected_to_onprem, c["appliance"]
            vm.replicating_since = job.start + timedelta(seconds=job.duration)  # points once replicated
            item.datastore, item.policy, item.alternate = c["datastore"], c["policy"], alternate
            item.reprotect_job, item.failover_point, item.produced_points = job.name, None, []

        def fail(item, t):
            vm = self.vm_of(item)
            vm.phase = Phase.failed_over_to_azure
            item.reprotect_job = None

        prep = (
            Step(
                "CreateOnPremVm",
                "Create the virtual machine on-premises (alternate location)",
                0.1,
                vcenter_up,
                prepare,
            )
            if alternate
            else Step(
                "PowerOffOnPremVm", "Shut down the on-premises virtual machine", 0.1, vcenter_up, prepare
            )
        )
        sync = (
            Step("InitialReplication", "Replicate the whole virtual machine to on-premises", 1.0)
            if alternate
            else Step("Resynchronize", "Synchronize the changes to the on-premises virtual machine", 1.0)
        )
        return [
            Step("PreReprotectCheck", "Prerequisites check for reprotect", 0.05, pre),
            prep,
            Step("StartReplication", "Start the replication to on-premises", 0.2, effect=start),
            sync,
        ], fail

    def _failback_steps(self, ctxs: dict[str, dict], pre, appliance_up, vcenter_up):
        site = self.site

        def shutdown(item, t):
            item.azure_vm, item.stopped_at = "stopped", t

        def make_point(item, t) -> Check:
            err = appliance_up(item, t)
            if err or ctxs[item.vm].get("point"):
                return err
            return self._produce_point(item, ctxs)

        def power_on(item, t):
            vm, c = self.vm_of(item), ctxs[item.vm]
            site.enable_tools(vm.vcenter_vm, True)
            site.power_on(vm.vcenter_vm, at=t)
            if vm.ip_config == "static" and vm.ip:
                site.set_boot_ip(vm.vcenter_vm, link_local_ip(vm.name))
            vm.phase = Phase.failed_back
            item.last_failover_time, item.failover_point = t, c["point"].name
            item.planned_failover_status = "Succeeded"
            c["job"].points[item.vm] = c["point"]

        def rollback(item, t):
            vm, c = self.vm_of(item), ctxs[item.vm]
            if site.exists(vm.vcenter_vm):
                site.power_off(vm.vcenter_vm)
            vm.phase = Phase.reprotected_to_onprem
            item.azure_vm, item.stopped_at, item.failover_point = "running", None, None
            item.planned_failover_status = "Failed"
            job = c["job"]
            if job.steps[-1].name != "RollbackFailover":
                job.steps.append(
                    Step(
                        "RollbackFailover",
                        "Cancel the failover: restore the state before it (the failover can be retried)",
                        1.0,
                        state="Succeeded",
                        start=t,
                        end=t,
                        task_id=self.new_id(),
                    )
                )

        return [
            Step("PreFailoverCheck", "Prerequisites check for planned failover", 0.05, pre),
            Step("ShutdownAzureVm", "Shut down the virtual machine in Azure", 0.25, effect=shutdown),
            Step(
                "SyncPendingChanges",
                "Copy the pending changes and create the recovery point",
                0.6,
                make_point,
            ),
            Step("PowerOnOnPremVm", "Start the virtual machine on-premises", 1.0, vcenter_up, power_on),
        ], rollback

    def _produce_point(self, item: Item, ctxs: dict[str, dict]) -> Check:
        """Choose (or make) the failback point of ``item`` and, with a multi-VM sync point, of its group."""
        vm, c = self.vm_of(item), ctxs[item.vm]
        group = vm.replication_group if c.get("multi") else None
        members = [m for m in ctxs if group and self.estate.vm(m).replication_group == group] or [item.vm]
        if c["point_type"] == "CrashConsistent":
            for m in members:
                it = self.items[m]
                t = it.stopped_at or self.clock.now()
                p = SimPoint(point_name(m, t, False), t, False, group is not None)
                it.produced_points.append(p)
                ctxs[m]["point"] = p
            return None
        if group:
            common = common_app_point({m: self.points(self.items[m]) for m in members})
            if common is None:
                return (
                    "NoRecoveryPoint",
                    f"VM '{item.vm}': replication group '{group}' has no common app-consistent recovery "
                    "point",
                )
            for m, p in common.items():
                ctxs[m]["point"] = p
            return None
        newest = latest(self.points(item), app=True)
        if newest is None:
            return ("NoRecoveryPoint", f"VM '{item.vm}' has no app-consistent recovery point")
        c["point"] = newest
        return None
