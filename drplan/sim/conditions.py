"""Per-item conditions of the failback doc (design §1) as the simulator shows them: item ``healthErrors``.

Each estate flag of a VM (migrated, moved, Azure VM deleted, protection disabled, missing from the
configuration server, physical Windows Server 2008 R2 SP1, failback target on Hyper-V) becomes one health
error with its own code on the protected item, so a client can see every broken precondition in one read,
before it writes anything. The codes match the refusals of :mod:`drplan.sim.lifecycle` (see
``docs/estate.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drplan.sim.estate import Vm

W2008R2SP1 = re.compile(r"2008\s*R2.*SP\s*1", re.IGNORECASE)


@dataclass(frozen=True)
class Condition:
    """One health error of a protected item."""

    code: str
    summary: str
    message: str
    causes: str
    action: str


def physical_w2008r2(vm: Vm) -> bool:
    return vm.machine_type == "physical" and vm.os == "windows" and bool(W2008R2SP1.search(vm.os_version))


def item_conditions(vm: Vm, cs_name: str) -> list[Condition]:
    """The health errors ``vm``'s protected item carries, in a stable order."""
    rules = [
        (
            vm.migrated,
            "VmMigrated",
            "The virtual machine was migrated",
            f"VM '{vm.name}' was migrated; it can no longer fail back",
            "The machine was migrated (failover committed as a migration).",
            "Failback is not supported for migrated machines.",
        ),
        (
            vm.moved_resource_group,
            "VmMovedToAnotherResourceGroup",
            "The virtual machine was moved to another resource group",
            f"The Azure VM of '{vm.name}' was moved to another resource group",
            "The failed-over VM was moved after failover.",
            "Move the VM back to its original resource group.",
        ),
        (
            vm.azure_vm_deleted,
            "AzureVmDeleted",
            "The failed-over virtual machine was deleted",
            f"The failed-over Azure VM of '{vm.name}' was deleted",
            "The Azure VM was deleted outside Site Recovery.",
            "Failback needs the failed-over VM in Azure.",
        ),
        (
            vm.protection_disabled,
            "ProtectionDisabled",
            "Protection is disabled",
            f"Protection of '{vm.name}' is disabled",
            "Replication was disabled for this machine.",
            "Enable protection again before failing back.",
        ),
        (
            not vm.in_configuration_server,
            "VmNotFoundInConfigurationServer",
            "The machine is not registered with the configuration server",
            f"VM '{vm.name}' is not registered with the configuration server {cs_name}",
            "The machine was removed from the configuration server, or its agent is not registered.",
            "Register the machine with the configuration server again.",
        ),
        (
            physical_w2008r2(vm),
            "UnsupportedPhysicalServer",
            "Physical Windows Server 2008 R2 SP1 cannot fail back",
            f"'{vm.name}' is a physical server running {vm.os_version}: it cannot fail back to on-premises "
            "VMware",
            "Failback of physical Windows Server 2008 R2 SP1 servers is not supported.",
            "Fail the machine back to a VMware VM through another method.",
        ),
        (
            vm.failback_host == "hyperv",
            "FailbackToHyperVNotSupported",
            "VMware VMs cannot fail back to a Hyper-V host",
            f"VMware VM '{vm.name}' has a Hyper-V host as its failback target",
            "The failback target of a VMware VM is a Hyper-V host.",
            "Fail VMware VMs back to a VMware (vCenter) master target.",
        ),
    ]
    return [
        Condition(code, summary, msg, causes, action)
        for on, code, summary, msg, causes, action in rules
        if on
    ]
