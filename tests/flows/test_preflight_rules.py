"""Every design §1 precondition, read from ASR as a real vault exposes it, stops a run in preflight: the
message names the VM (or server) and the rule, and nothing reaches ASR.

Failback: the real flow on a real Prefect engine against the simulated estate (over HTTPS). Reprotect: its
runbook preflight on the same simulator, without Prefect."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from failback_support import SPEED, THREE_TIER

from drplan.plan.graph import load_and_compile
from drplan.run.outcomes import PreflightFailed


def run_failback(plan=THREE_TIER):
    from flows.failback import failback

    return failback(plan=str(plan), commit="after-verification", return_state=True)


def refusal(sim, state) -> str:
    """The preflight failure of a failed run, after checking that nothing was written to ASR."""
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, PreflightFailed), error
    assert sim.audit.requests() == [], "a write reached ASR before every precondition was checked"
    return str(error)


def _vm(flag, value, vm="app-01"):
    return lambda estate: setattr(estate.vm(vm), flag, value)


def _physical_w2008r2(estate):
    vm = estate.vm("sql-01")
    vm.machine_type, vm.os_version = "physical", "Windows Server 2008 R2 SP1"


def _cs_stopped(estate):
    estate.configuration_server.connected = False


def _cs_silent(estate):
    estate.configuration_server.heartbeat_age = 2 * 3600.0


def _mt_reports_windows(estate):
    estate.master_target("mt-lnx-01").os = "windows"


def _mt_unregistered(estate):
    estate.master_target("mt-lnx-01").name = "mt-lnx-02"


FAILBACK_RULES = [
    # (condition, check name, words of the message, rule)
    (_vm("migrated", True), "vm-migrated app-01", "VM app-01 was migrated", "the VM was not migrated"),
    (
        _vm("moved_resource_group", True),
        "vm-moved app-01",
        "VM app-01 was moved to another resource group",
        "the VM was not moved to another resource group",
    ),
    (
        _vm("azure_vm_deleted", True),
        "azure-vm-deleted app-01",
        "the Azure VM of VM app-01 was deleted",
        "its Azure VM was not deleted",
    ),
    (
        _vm("protection_disabled", True),
        "asr-item app-01",
        "VM app-01: protection is disabled",
        "protection not disabled",
    ),
    (
        _vm("in_configuration_server", False),
        "configuration-server-vm app-01",
        "VM app-01 is not registered with the configuration server",
        "VM present in the configuration server",
    ),
    (
        _physical_w2008r2,
        "physical-w2008r2 sql-01",
        "VM sql-01 is a physical Windows Server 2008 R2 SP1 server",
        "not a physical Windows Server 2008 R2 SP1 server",
    ),
    (
        _vm("failback_host", "hyperv"),
        "hyper-v-target app-01",
        "VM app-01 is a VMware VM whose failback target is a Hyper-V host",
        "not failing back VMware VMs to a Hyper-V host",
    ),
    (
        _cs_stopped,
        "configuration-server cs-01",
        "configuration server cs-01 is not connected to the vault",
        "configuration server running and connected",
    ),
    (
        _cs_silent,
        "configuration-server-heartbeat cs-01",
        # about 120 minutes ago: the exact figure moves with request latency x simulator speed
        "configuration server cs-01 last sent a heartbeat ",
        "configuration server running and connected",
    ),
    (
        _mt_reports_windows,
        "master-target-os app-01",
        "a linux VM needs a linux master target; VM app-01 is mapped to mt-lnx-01, which runs windows "
        "according to ASR",
        "Windows VMs need a Windows master target, Linux VMs a Linux one",
    ),
    (
        _mt_unregistered,
        "master-target-registered mt-lnx-01",
        "master target mt-lnx-01 is not registered with the configuration server (registered: mt-lnx-02, "
        "mt-win-01)",
        "the master target is registered with the configuration server",
    ),
]


@pytest.mark.parametrize(
    ("condition", "check", "words", "rule"), FAILBACK_RULES, ids=[r[1] for r in FAILBACK_RULES]
)
def test_failback_aborts_in_preflight_naming_the_vm_and_the_rule(sim, condition, check, words, rule):
    condition(sim.estate)
    message = refusal(sim, run_failback())
    line = next((ln for ln in message.splitlines() if ln.startswith(f"  ✗ {check}: ")), None)
    assert line is not None, message
    assert words in line and rule in line


def test_every_broken_precondition_is_reported_together(sim):
    for condition in (_vm("migrated", True, "app-01"), _vm("azure_vm_deleted", True, "web-02"), _cs_stopped):
        condition(sim.estate)
    _physical_w2008r2(sim.estate)
    message = refusal(sim, run_failback())
    for check in ("vm-migrated app-01", "azure-vm-deleted web-02", "physical-w2008r2 sql-01"):
        assert f"✗ {check}: " in message
    assert "✗ configuration-server cs-01: " in message


def test_an_unregistered_reprotect_to_azure_process_server_aborts_the_failback(sim, tmp_path):
    plan = tmp_path / "three-tier.yaml"
    plan.write_text(
        THREE_TIER.read_text().replace(
            "    agent_registration_window: 20m",
            "    agent_registration_window: 20m\n    process_server: ps-nope",
        )
    )
    message = refusal(sim, run_failback(plan))
    assert "✗ process-server-registered ps-nope: process server ps-nope " in message
    assert "(failback.reprotect_to_azure.process_server) is not registered with the configuration server" in (
        message
    )


def test_a_plan_already_failed_back_is_not_held_to_the_failback_preconditions(sim):
    """A resumed run: VMs already failed back need no recovery point, master target or clean item."""
    from drplan.observed import Phase

    for name in ("sql-01", "sql-02"):
        sim.estate.vm(name).phase = Phase.committed
        sim.estate.vm(name).azure_vm_deleted = True  # committed: the Azure VM is gone, as expected
    sim.estate.vm("app-01").migrated = True
    message = refusal(sim, run_failback())
    assert "✗ vm-migrated app-01: " in message
    assert "sql-01" not in message and "sql-02" not in message


# -- reprotect (Azure → on-prem): the runbook's preflight ---------------------------------------------
REPROTECT = """
reprotect:
  process_server: {ps}
  retention_drive: "F:"
  datastore: datastore1
  policy: failback-policy
"""


@contextmanager
def reprotect_run(tmp_path, condition, ps="ps-azure-01"):
    """The reprotect preflight's runtime: three-tier failed over to Azure, ``condition`` applied."""
    from drplan.asr import AsrClient, StaticTokenCredential
    from drplan.observed import Phase
    from drplan.plan.loader import load_plan
    from drplan.run.context import Ports, RunContext, RunInputs
    from drplan.run.ports import no_approver, no_events
    from drplan.sim import start_simulator
    from drplan.sim.estate import Estate

    path = tmp_path / "three-tier-reprotect.yaml"
    path.write_text(THREE_TIER.read_text() + REPROTECT.format(ps=ps))
    plan, graph = load_and_compile(path)
    estate = Estate.from_plan(load_plan(THREE_TIER), phase=Phase.failed_over_to_azure)
    condition(estate)
    with start_simulator(estate, speed=SPEED) as sim:
        asr = AsrClient.for_vault(
            plan.azure,
            endpoint=sim.endpoint,
            ca_file=sim.ca_file,
            credential=StaticTokenCredential(sim.token),
            clock=sim.clock,
        )
        rt = RunContext(
            RunInputs(plan, graph, kind="reprotect", mode="simulate"),
            Ports(asr, sim.onprem, sim.clock, no_approver, no_events),
        )
        try:
            yield sim, rt
        finally:
            asr.close()


REPROTECT_RULES = [
    (_vm("migrated", True), {}, "vm-migrated app-01", "the VM was not migrated"),
    (_vm("azure_vm_deleted", True), {}, "azure-vm-deleted app-01", "its Azure VM was not deleted"),
    (_cs_stopped, {}, "configuration-server cs-01", "configuration server running and connected"),
    (
        _mt_reports_windows,
        {},
        "master-target-os app-01",
        "Windows VMs need a Windows master target, Linux VMs a Linux one",
    ),
    (
        _mt_unregistered,
        {},
        "master-target-registered mt-lnx-01",
        "the master target is registered with the configuration server",
    ),
    (
        lambda estate: None,
        {"ps": "ps-nope"},
        "process-server-registered ps-nope",
        "the process server is registered with the configuration server",
    ),
]


@pytest.mark.parametrize(
    ("condition", "options", "check", "rule"), REPROTECT_RULES, ids=[r[2] for r in REPROTECT_RULES]
)
def test_reprotect_preflight_names_the_vm_and_the_rule_before_any_write(
    tmp_path, condition, options, check, rule
):
    from drplan.reprotect_to_onprem.preflight import preflight

    with reprotect_run(tmp_path, condition, **options) as (sim, rt):
        failed = {c.name: c for c in preflight(rt) if not c.ok}
        assert check in failed, sorted(failed)
        subject = check.split(" ", 1)[1]
        assert subject in failed[check].message and failed[check].rule == rule
        assert rule in failed[check].message
        assert sim.audit.requests() == []


def test_reprotect_preflight_passes_on_a_clean_estate(tmp_path):
    from drplan.reprotect_to_onprem.preflight import preflight

    with reprotect_run(tmp_path, lambda estate: None) as (sim, rt):
        checks = preflight(rt)
        assert [c for c in checks if not c.ok] == []
        names = {c.name for c in checks}
        assert {"configuration-server cs-01", "master-target-registered mt-lnx-01"} <= names
        assert "process-server-registered ps-azure-01" in names
        assert sim.audit.requests() == []


# -- the rules over plain item states (no network) ---------------------------------------------------------
def _state(**fields):
    from drplan.observed import ItemRef, ItemState

    base = dict(
        ref=ItemRef("db-01", "f", "c", "i"),
        friendly_name="db-01",
        protection_state="Protected",
        replication_health="Normal",
        allowed_operations=("UnplannedFailover",),
        active_location="Primary",
        provider="InMage",
        current_job=None,
        current_scenario=None,
    )
    return ItemState(**{**base, **fields})


def test_a_physical_w2008r2_sp1_server_is_recognised_from_its_os_details_alone():
    from drplan.failback.preflight import item_checks

    bare = _state(os_version="Windows Server 2008 R2 SP1", discovery_type="Physical")
    both = _state(
        os_version="Windows Server 2008 R2 SP1",
        discovery_type="Physical",
        health_errors=("UnsupportedPhysicalServer: 'db-01' is a physical server",),
    )
    for state in (bare, both):
        failed = [c.name for c in item_checks("db-01", state) if not c.ok]
        assert failed == ["physical-w2008r2 db-01"]  # one check per rule, however ASR shows it
    vmware = _state(os_version="Windows Server 2008 R2 SP1", discovery_type="vCenter")
    assert all(c.ok for c in item_checks("db-01", vmware))


def test_health_errors_that_break_no_failback_rule_do_not_block():
    from drplan.failback.preflight import item_checks

    state = _state(health_errors=("RpoThresholdExceeded: RPO is 31 minutes",))
    assert all(c.ok for c in item_checks("db-01", state))
