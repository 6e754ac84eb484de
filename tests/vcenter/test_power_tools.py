"""Power, VMware Tools, boot waits and tasks against vcsim."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from drplan.errors import BootTimeout, VCenterError
from drplan.vcenter.waits import wait_task

pytestmark = pytest.mark.vcsim


def test_power_on_and_off(site):
    site.power_on("app-01")
    assert site.read_state(["app-01"]).vms["app-01"].power_state == "poweredOn"
    site.power_on("app-01")  # already on: no error
    site.power_off("app-01")
    assert site.read_state(["app-01"]).vms["app-01"].power_state == "poweredOff"
    site.power_off("app-01")


def test_unknown_vm_is_named(site):
    with pytest.raises(VCenterError, match="VM no-such-vm not found"):
        site.power_on("no-such-vm")


def test_tools_status_and_boot_timeout_names_what_is_missing(site):
    site.power_on("boot-01")
    vm = site.read_state(["boot-01"]).vms["boot-01"]
    assert vm.power_state == "poweredOn" and vm.tools_running_status == "guestToolsNotRunning"
    with pytest.raises(BootTimeout) as err:
        site.wait_for_boot("boot-01", timeout=0)
    assert str(err.value) == (
        "boot-01 did not come up within 0s: VMware Tools not running (guestToolsNotRunning); no guest IP"
    )

    site.set_tools_running("boot-01", True)
    vm = site.read_state(["boot-01"]).vms["boot-01"]
    assert (vm.tools_running_status, vm.heartbeat, vm.tools_version_status) == (
        "guestToolsRunning",
        "green",
        "guestToolsCurrent",
    )
    with pytest.raises(BootTimeout, match="no guest IP$"):
        site.wait_for_boot("boot-01", timeout=0)
    assert site.wait_for_boot("boot-01", timeout=0, require_ip=False).booted

    site.set_guest_ip("boot-01", "10.0.0.5")
    vm = site.wait_for_boot("boot-01", timeout=0)
    assert vm.booted and vm.guest_ip == "10.0.0.5"


def test_boot_timeout_after_waiting(site):
    site.power_on("boot-03")
    with pytest.raises(BootTimeout, match="VMware Tools not running"):
        site.wait_for_boot("boot-03", timeout=1)


def test_wait_returns_when_the_vm_comes_up(vcsim, site):
    """The waiter blocks in WaitForUpdatesEx; powering on, tools and IP from another session wake it."""
    waiter = vcsim.site()
    first_answer = threading.Event()
    stub = waiter.connection.si._stub
    inner = stub.InvokeMethod

    def invoke(mo, info, args, *rest, **kw):
        result = inner(mo, info, args, *rest, **kw)
        if info.wsdlName == "WaitForUpdatesEx":
            first_answer.set()
        return result

    stub.InvokeMethod = invoke
    try:
        with ThreadPoolExecutor(1) as pool:
            booted = pool.submit(waiter.wait_for_boot, "boot-02", timeout=120)
            assert first_answer.wait(60)  # the waiter has seen the VM down
            assert not booted.done()
            site.power_on("boot-02")
            site.set_tools_running("boot-02", True)
            site.set_guest_ip("boot-02", "10.0.0.6")
            vm = booted.result(timeout=120)
        assert vm.booted and vm.guest_ip == "10.0.0.6"
        assert waiter.calls["WaitForUpdatesEx"] >= 2
    finally:
        waiter.close()


def test_task_wait_reports_the_task_error(site):
    task = site.find_vm("db-01").PowerOffVM_Task()  # db-01 is off: vcsim fails the task
    with pytest.raises(VCenterError) as err:
        wait_task(site.connection.content, task, what="powering off db-01", timeout=60, clock=site.clock)
    assert str(err.value).startswith("powering off db-01 failed: InvalidPowerState")


def test_snapshot_on_master_target_fails_the_check_until_removed(site):
    from drplan.recovery.site_checks import check_master_target

    assert check_master_target(site.read_state(["mt-win-01"]), "mt-win-01").ok
    site.add_snapshot("mt-win-01")
    try:
        check = check_master_target(site.read_state(["mt-win-01"]), "mt-win-01")
        assert not check.ok
        assert check.message == "master target mt-win-01 has snapshots: remove them before reprotect/failback"
    finally:
        site.remove_snapshots("mt-win-01")
    assert check_master_target(site.read_state(["mt-win-01"]), "mt-win-01").ok


def test_missing_master_target_fails_the_check(site):
    from drplan.recovery.site_checks import check_master_target

    check = check_master_target(site.read_state(["mt-nope"]), "mt-nope")
    assert not check.ok and "not found" in check.message
