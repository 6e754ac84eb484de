"""Per-operation state transitions of the simulated ASR: what each job kind does to the item, the estate and
the on-prem site at each of its steps, and what a failed job undoes. Failures ASR only finds while running
(disconnected vCenter at disk detach/attach, configuration server, master-target snapshots, agent not
registered) fail the job at the matching step."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from drplan.observed import Phase
from drplan.sim.engine_base import EngineBase
from drplan.sim.jobs import Job, Step
from drplan.sim.rules import AGENT_NOT_INSTALLED

if TYPE_CHECKING:
    from drplan.sim.engine_base import StepPlan
    from drplan.sim.items import Item


class Transitions(EngineBase):
    """What each job kind changes (a mixin of :class:`drplan.sim.lifecycle.Engine`)."""

    def _on_start(self, kind: str, item: Item, ctx: dict, now: datetime, job: Job) -> None:
        if kind.startswith("rcm-"):
            return self._rcm_on_start(kind, item, ctx, now, job)
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

    def _steps(self, kind: str, ctxs: dict[str, dict]) -> StepPlan:
        if kind.startswith("rcm-"):
            return self._rcm_steps(kind, ctxs)
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
                item.planned_failover_status = "Cancelled"  # shown by InMageRcmFailback items
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
