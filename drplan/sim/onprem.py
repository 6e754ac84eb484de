"""The simulated on-prem vCenter behind :class:`drplan.run.ports.OnPremSite`, on simulated time.

VM power, VMware Tools, guest IP and snapshots (also on master targets) plus vCenter connectivity.
A powered-on VM gets tools running and its guest IP ``durations.boot`` simulated seconds after power-on.
Control verbs (``power_on``, ``set_tools_running``, ``set_connected`` ...) let tests steer it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from drplan.errors import BootTimeout, VCenterError, VCenterUnreachable
from drplan.observed import Phase, SiteState, VmState

if TYPE_CHECKING:
    from drplan.sim.clock import SimClock
    from drplan.sim.estate import Estate

_NS = uuid.UUID("0b7f5f0e-1c0a-4f7e-9f57-5b1d2a0c3e11")
_ON_PHASES = {Phase.replicating_to_azure, Phase.failed_back, Phase.committed, Phase.reprotected_to_azure}
_TOOLS_DISABLED_PHASES = {Phase.failed_over_to_azure, Phase.reprotected_to_onprem, Phase.failback_in_progress}


@dataclass
class OnPremVm:
    name: str
    power: str = "poweredOff"
    powered_on_at: datetime | None = None
    tools_enabled: bool = True
    tools_override: bool | None = None
    ip: str | None = None
    ip_override: str | None = None
    snapshots: int = 0
    windows: bool = False
    boot: float | None = None  # per-VM boot duration (estate ``vms[].durations.boot``)
    generation: int = 0  # > 0: a new VM made under the same name (alternate-location failback)


class SimulatedSite:
    """The estate's vCenter as an :class:`~drplan.run.ports.OnPremSite` (plus control verbs for tests)."""

    def __init__(self, estate: Estate, clock: SimClock, *, lock: threading.RLock | None = None, tick=None):
        self.estate = estate
        self.clock = clock
        self._lock = lock or threading.RLock()
        self._tick = tick or (lambda: None)
        self._vms: dict[str, OnPremVm] = {}
        self._deleted: set[str] = set()
        self.closed = False
        booted_at = clock.start - timedelta(days=1)
        for v in estate.vms:
            if v.onprem_vm_deleted:
                self._deleted.add(v.vcenter_vm)
                continue
            on = v.phase in _ON_PHASES
            self._vms[v.vcenter_vm] = OnPremVm(
                name=v.vcenter_vm,
                power="poweredOn" if on else "poweredOff",
                powered_on_at=booted_at if on else None,
                tools_enabled=not (v.os == "windows" and v.phase in _TOOLS_DISABLED_PHASES),
                ip=v.ip,
                windows=v.os == "windows",
                boot=v.durations.boot if v.durations is not None else None,
            )

    # -- helpers -----------------------------------------------------------------------------------------
    def _name(self, vm: str) -> str:
        if vm in self._vms or any(m.name == vm for m in self.estate.master_targets):
            return vm
        try:
            return self.estate.vm(vm).vcenter_vm
        except KeyError:
            raise VCenterError(f"VM {vm!r} not found in the simulated vCenter") from None

    def _vm(self, vm: str) -> OnPremVm:
        name = self._name(vm)
        if name not in self._vms and name not in self._deleted:
            for v in self.estate.vms:  # a VM added to the estate after start
                if v.vcenter_vm == name:
                    self._vms[name] = OnPremVm(name=name, ip=v.ip, windows=v.os == "windows")
        if name in self._deleted:
            raise VCenterError(f"VM {vm!r} was deleted from the simulated vCenter")
        if name not in self._vms:
            raise VCenterError(f"VM {vm!r} is a master target: use add_snapshot/remove_snapshots on it")
        return self._vms[name]

    def _state(self, requested: str, now: datetime) -> VmState:
        for m in self.estate.master_targets:
            if m.name == requested:
                return VmState(
                    name=requested,
                    present=True,
                    power_state="poweredOn",
                    tools_running_status="guestToolsRunning",
                    tools_version_status="guestToolsCurrent",
                    heartbeat="green",
                    guest_ip=m.ip or None,
                    instance_uuid=str(uuid.uuid5(_NS, m.name)),
                    has_snapshots=m.snapshots > 0,
                )
        try:
            vm = self._vm(requested)
        except VCenterError:
            return VmState(name=requested, present=False)
        tools = self._tools_running(vm, now)
        ip = vm.ip_override if vm.ip_override is not None else (vm.ip if self._booted(vm, now) else None)
        if vm.power != "poweredOn":
            ip = None
        return VmState(
            name=requested,
            present=True,
            power_state=vm.power,
            tools_running_status="guestToolsRunning" if tools else "guestToolsNotRunning",
            tools_version_status="guestToolsCurrent" if vm.tools_enabled else "guestToolsNotInstalled",
            heartbeat="green" if tools else "gray",
            guest_ip=ip,
            instance_uuid=str(uuid.uuid5(_NS, f"{vm.name}#{vm.generation}" if vm.generation else vm.name)),
            has_snapshots=vm.snapshots > 0,
        )

    def _booted(self, vm: OnPremVm, now: datetime) -> bool:
        return (
            vm.power == "poweredOn"
            and vm.powered_on_at is not None
            and now
            >= vm.powered_on_at
            + timedelta(seconds=self.estate.durations.boot if vm.boot is None else vm.boot)
        )

    def _tools_running(self, vm: OnPremVm, now: datetime) -> bool:
        if vm.power != "poweredOn":
            return False
        if vm.tools_override is not None:
            return vm.tools_override
        return vm.tools_enabled and self._booted(vm, now)

    # -- OnPremSite ------------------------------------------------------------------------------------------
    def read_state(
        self, vms: Sequence[str], *, port_groups: Sequence[str] = (), datastores: Sequence[str] = ()
    ) -> SiteState:
        with self._lock:
            self._tick()
            if not self.estate.vcenter.connected:
                return SiteState(connected=False)
            now = self.clock.now()
            known_pg = set(self.estate.vcenter.port_groups)
            ds_free = {d: self.estate.vcenter.datastore_free_gb * 2**30 for d in datastores}
            return SiteState(
                connected=True,
                vms={name: self._state(name, now) for name in vms},
                port_groups=frozenset(p for p in port_groups if p in known_pg)
                if port_groups
                else frozenset(known_pg),
                datastore_free_bytes=ds_free,
            )

    def wait_for_boot(
        self, vm: str, *, timeout: float, require_tools: bool = True, require_ip: bool = True
    ) -> VmState:
        deadline = self.clock.monotonic() + timeout
        step = max(1.0, min(15.0, timeout / 50))
        while True:
            with self._lock:
                self._tick()
                if not self.estate.vcenter.connected:
                    raise VCenterUnreachable(
                        f"vCenter {self.estate.vcenter.host} is not connected (waiting for {vm} to boot)"
                    )
                state = self._state(vm, self.clock.now())
            missing = []
            if not state.present:
                missing.append("present in vCenter")
            elif state.power_state != "poweredOn":
                missing.append("powered on")
            else:
                if require_tools and state.tools_running_status != "guestToolsRunning":
                    missing.append("VMware Tools running")
                if require_ip and not state.guest_ip:
                    missing.append("a guest IP address")
            if not missing:
                return state
            if self.clock.monotonic() >= deadline:
                raise BootTimeout(
                    f"VM {vm} did not come up within {timeout:g}s (simulated): not {', '.join(missing)}"
                )
            self.clock.sleep(step)

    def close(self) -> None:
        self.closed = True

    # -- control verbs (tests, lifecycle) --------------------------------------------------------------------
    def power_on(self, vm: str, *, at: datetime | None = None) -> None:
        with self._lock:
            v = self._vm(vm)
            if v.power != "poweredOn":
                v.power = "poweredOn"
                v.powered_on_at = at or self.clock.now()

    def power_off(self, vm: str) -> None:
        with self._lock:
            v = self._vm(vm)
            v.power = "poweredOff"
            v.powered_on_at = None

    def set_tools_running(self, vm: str, running: bool | None) -> None:
        """Force the tools status (``None`` returns to the simulated boot behaviour)."""
        with self._lock:
            self._vm(vm).tools_override = running

    def enable_tools(self, vm: str, enabled: bool = True) -> None:
        with self._lock:
            self._vm(vm).tools_enabled = enabled

    def set_guest_ip(self, vm: str, ip: str | None) -> None:
        with self._lock:
            self._vm(vm).ip_override = ip

    def set_boot_ip(self, vm: str, ip: str | None) -> None:
        """The address the guest takes once booted (a failback that does not keep its static IP)."""
        with self._lock:
            v = self._vm(vm)
            v.ip, v.ip_override = ip, None

    def add_snapshot(self, vm: str) -> None:
        with self._lock:
            for m in self.estate.master_targets:
                if m.name == vm:
                    m.snapshots += 1
                    return
            self._vm(vm).snapshots += 1

    def remove_snapshots(self, vm: str) -> None:
        with self._lock:
            for m in self.estate.master_targets:
                if m.name == vm:
                    m.snapshots = 0
                    return
            self._vm(vm).snapshots = 0

    def set_connected(self, connected: bool) -> None:
        with self._lock:
            self.estate.vcenter.connected = connected

    def create_test_vm(self, vm: str, *, at: datetime) -> str:
        """A drill's test VM (``<name>-test``), powered on at ``at``."""
        with self._lock:
            src = self._vm(vm)
            name = f"{src.name}-test"
            self._deleted.discard(name)
            self._vms[name] = OnPremVm(
                name=name, power="poweredOn", powered_on_at=at, ip=src.ip, windows=src.windows
            )
            return name

    def delete_vm(self, name: str) -> None:
        with self._lock:
            self._vms.pop(name, None)
            self._deleted.add(name)

    def exists(self, vm: str) -> bool:
        with self._lock:
            try:
                self._vm(vm)
            except VCenterError:
                return False
            return True

    def create_vm(self, vm: str) -> str:
        """A new, powered-off VM named like the estate VM ``vm`` (an alternate-location failback's target)."""
        with self._lock:
            v = self.estate.vm(vm)
            name = v.vcenter_vm
            self._deleted.discard(name)
            old = self._vms.get(name)
            self._vms[name] = OnPremVm(
                name=name,
                ip=v.ip,
                windows=v.os == "windows",
                generation=(old.generation if old else 0) + 1,
                boot=v.durations.boot if v.durations is not None else None,
            )
            return name

    def powered_on_at(self, vm: str) -> datetime | None:
        with self._lock:
            v = self._vm(vm)
            return v.powered_on_at if v.power == "poweredOn" else None

    def vm_names(self) -> list[str]:
        with self._lock:
            return sorted(self._vms)
