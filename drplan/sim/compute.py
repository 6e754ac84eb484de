"""The Azure side a user checks a drill with: ``Microsoft.Compute/virtualMachines`` GET (with
``$expand=instanceView``) for the VMs ASR made in Azure, shaped as the compute API's ``VirtualMachine``.

Served: the test VM of a modernized drill (``<name>-test`` in the isolated network, until its cleanup) and
the failed-over VM of any item (running, or deallocated once a failback shut it down). The VM agent reports
``Ready`` ``durations.boot`` after the VM started."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from drplan.sim.items import Item
from drplan.sim.lifecycle import Engine
from drplan.sim.wire import clean, iso

#: the compute api-version served (azure-mgmt-compute 39.0.0's default)
COMPUTE_API_VERSION = "2026-04-01"
T_VM = "Microsoft.Compute/virtualMachines"
_NS = uuid.UUID("1f6a2c3e-4d5b-4e7f-8a9b-0c1d2e3f4a5b")
_AGENT = "2.7.41491.1102"


def azure_vms(e: Engine) -> dict[str, tuple[Item, str]]:
    """Azure VM name (lower case) -> (item, ``test`` | ``failover``) for every VM ASR has in Azure now."""
    out: dict[str, tuple[Item, str]] = {}
    for it in e.item_list():
        vm = e.vm_of(it)
        if it.azure_vm in ("running", "stopped"):
            out[vm.name.lower()] = (it, "failover")
        if it.test_vm and it.test_network and it.test_state == "WaitingForCompletion":
            out[it.test_vm.lower()] = (it, "test")
    return out


def virtual_machine(e: Engine, it: Item, kind: str, *, expand: bool) -> dict:
    vm, now = e.vm_of(it), e.clock.now()
    name = (it.test_vm if kind == "test" else None) or vm.name
    running = kind == "test" or it.azure_vm == "running"
    started: datetime | None = (
        it.last_test_failover_time if kind == "test" else (it.last_failover_time if running else None)
    )
    ready = running and started is not None and now >= started + timedelta(seconds=e.estate.durations.boot)
    props: dict = {
        "provisioningState": "Succeeded",
        "vmId": str(uuid.uuid5(_NS, f"{kind}|{name}|{iso(started)}")),
        "timeCreated": iso(started),
    }
    if expand:
        power = (
            ("PowerState/running", "VM running") if running else ("PowerState/deallocated", "VM deallocated")
        )
        agent_status = (
            {
                "code": "ProvisioningState/succeeded",
                "level": "Info",
                "displayStatus": "Ready",
                "message": "GuestAgent is running and processing the extensions.",
                "time": iso(now),
            }
            if ready
            else {
                "code": "ProvisioningState/Unavailable",
                "level": "Warning",
                "displayStatus": "Not Ready",
                "message": "VM status blob is found but not yet populated.",
                "time": iso(now),
            }
        )
        props["instanceView"] = {
            "computerName": vm.vcenter_vm,
            "osName": vm.os_version,
            "osVersion": vm.os_version,
            "vmAgent": {"vmAgentVersion": _AGENT if ready else "Unknown", "statuses": [agent_status]},
            "statuses": [
                {
                    "code": "ProvisioningState/succeeded",
                    "level": "Info",
                    "displayStatus": "Provisioning succeeded",
                    "time": iso(started),
                },
                {"code": power[0], "level": "Info", "displayStatus": power[1]},
            ],
        }
    return clean(
        {
            "id": e.azure_vm_id(name),
            "name": name,
            "type": T_VM,
            "location": e.estate.vault.location,
            "tags": {"drill": "true"} if kind == "test" else {},
            "properties": props,
        }
    )
