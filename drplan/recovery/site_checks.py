"""Pure checks of the on-prem site that preflight lists, computed from one batched :class:`SiteState` read,
and what a boot wait reports as missing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from drplan.observed import CheckResult, SiteState, VmState


def check_connected(state: SiteState, host: str = "vCenter") -> CheckResult:
    return CheckResult(
        name="vcenter-connected",
        ok=state.connected,
        subject=host,
        message=""
        if state.connected
        else f"{host} is not connected: failback would fail at disk detach/attach",
        rule="vCenter connected",
    )


def check_master_target(state: SiteState, name: str) -> CheckResult:
    vm = state.vms.get(name)
    if vm is None or not vm.present:
        return CheckResult(
            f"master-target {name}",
            False,
            f"master target {name} not found in vCenter",
            name,
            "master target present",
        )
    if vm.has_snapshots:
        return CheckResult(
            f"master-target {name}",
            False,
            f"master target {name} has snapshots: remove them before reprotect/failback",
            name,
            "master target has no snapshots",
        )
    return CheckResult(f"master-target {name}", True, "", name, "master target has no snapshots")


def check_vm_present(state: SiteState, name: str) -> CheckResult:
    vm = state.vms.get(name)
    ok = vm is not None and vm.present
    return CheckResult(
        f"target-vm {name}",
        ok,
        "" if ok else f"target VM {name} not found in vCenter",
        name,
        "target VM present",
    )


def check_port_group(state: SiteState, name: str) -> CheckResult:
    ok = name in state.port_groups
    message = "" if ok else f"drill port group {name} not found in vCenter"
    return CheckResult(f"port-group {name}", ok, message, name, "drill network present")


def failed(checks: Iterable[CheckResult]) -> list[CheckResult]:
    return [c for c in checks if not c.ok]


def boot_missing(vm: VmState, *, require_tools: bool = True, require_ip: bool = True) -> list[str]:
    """What keeps ``vm`` from counting as booted, in words (empty when it is up)."""
    if not vm.present:
        return ["VM not found"]
    missing = []
    if vm.power_state != "poweredOn":
        missing.append(f"not powered on ({vm.power_state})")
    if require_tools and vm.tools_running_status != "guestToolsRunning":
        missing.append(f"VMware Tools not running ({vm.tools_running_status})")
    if require_ip and not vm.guest_ip:
        missing.append("no guest IP")
    return missing


def boot_timeout_message(vm: VmState, timeout: float, missing: Sequence[str]) -> str:
    """The :class:`drplan.errors.BootTimeout` message: the VM, the timeout and what was missing."""
    return f"{vm.name} did not come up within {timeout:g}s: " + "; ".join(missing)
