"""The OnPremSite contract, run against vcsim and against the simulated estate so the two cannot drift."""

from __future__ import annotations

import pytest

from drplan.errors import BootTimeout
from drplan.recovery.site_checks import (
    check_connected,
    check_master_target,
    check_port_group,
    check_vm_present,
)
from drplan.run.ports import OnPremSite

from .conftest import DRILL_PORT_GROUP, vm_names


def test_implements_the_protocol(impl):
    assert isinstance(impl.site, OnPremSite)


def test_read_state_of_present_and_absent_names(impl, plan):
    names = vm_names(plan)
    masters = [m.name for m in plan.master_targets]
    state = impl.site.read_state(
        [*names, *masters, "no-such-vm"], port_groups=[DRILL_PORT_GROUP, "no-such-pg"]
    )
    assert check_connected(state).ok
    assert all(check_vm_present(state, n).ok for n in names + masters)
    assert not check_vm_present(state, "no-such-vm").ok
    assert state.vms["no-such-vm"].present is False
    assert check_port_group(state, DRILL_PORT_GROUP).ok
    assert not check_port_group(state, "no-such-pg").ok
    assert len({state.vms[n].instance_uuid for n in names}) == len(names)  # every VM has its own UUID
    assert all(check_master_target(state, m).ok for m in masters)


def test_without_names_every_port_group_is_listed(impl):
    assert DRILL_PORT_GROUP in impl.site.read_state([]).port_groups


def test_power_on_and_off_show_in_reads(impl):
    impl.site.power_on("app-02")
    assert impl.site.read_state(["app-02"]).vms["app-02"].power_state == "poweredOn"
    impl.site.power_off("app-02")
    assert impl.site.read_state(["app-02"]).vms["app-02"].power_state == "poweredOff"


def test_wait_for_boot_after_power_on_tools_and_ip(impl):
    impl.site.power_on("web-01")
    impl.site.set_tools_running("web-01", True)
    impl.site.set_guest_ip("web-01", "10.0.0.5")
    vm = impl.site.wait_for_boot("web-01", timeout=impl.fail_timeout)
    assert vm.booted and vm.present
    assert (vm.power_state, vm.tools_running_status) == ("poweredOn", "guestToolsRunning")
    assert vm.guest_ip == "10.0.0.5"


def test_boot_timeout_when_tools_never_come_up(impl):
    impl.site.power_on("web-02")
    impl.site.set_tools_running("web-02", False)
    impl.site.set_guest_ip("web-02", "10.0.0.6")
    with pytest.raises(BootTimeout) as err:
        impl.site.wait_for_boot("web-02", timeout=impl.fail_timeout)
    message = str(err.value)
    assert "web-02" in message and "VMware Tools" in message
    assert "IP" not in message  # only what is missing is named
    vm = impl.site.wait_for_boot("web-02", timeout=0, require_tools=False)
    assert vm.power_state == "poweredOn"


def test_master_target_snapshot_check(impl, plan):
    mt = plan.master_targets[-1].name
    assert check_master_target(impl.site.read_state([mt]), mt).ok
    impl.site.add_snapshot(mt)
    try:
        failed = check_master_target(impl.site.read_state([mt]), mt)
        assert not failed.ok and "has snapshots" in failed.message
    finally:
        impl.site.remove_snapshots(mt)
    assert check_master_target(impl.site.read_state([mt]), mt).ok


def test_boot_timeout_for_a_vm_that_never_appears(impl):
    with pytest.raises(BootTimeout) as err:
        impl.site.wait_for_boot("no-such-vm", timeout=impl.fail_timeout)
    assert "no-such-vm" in str(err.value)
