"""The modernized failback preflight (drplan.failback.preflight_modernized) against the simulated estate,
through the real SDK: every rule refuses naming the VM and the rule, all failures together, zero writes."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from failback_support import THREE_TIER

from drplan.asr import AsrClient, StaticTokenCredential
from drplan.failback.preflight_modernized import classic_warning, modernized_checks
from drplan.observed import Phase
from drplan.plan.graph import load_and_compile
from drplan.recovery import preconditions as pre
from drplan.run.context import Ports, RunContext, RunInputs
from drplan.run.ports import no_approver, no_events
from drplan.sim import Estate, start_simulator


@contextmanager
def modern_run(condition=lambda estate: None, after_start=lambda sim: None):
    plan, graph = load_and_compile(THREE_TIER)
    estate = Estate.from_plan(plan, provider="modernized", phase=Phase.reprotected_to_onprem)
    condition(estate)
    with start_simulator(estate, speed=3000) as sim:
        after_start(sim)
        asr = AsrClient.for_vault(
            plan.azure,
            endpoint=sim.endpoint,
            ca_file=sim.ca_file,
            credential=StaticTokenCredential(sim.token),
            clock=sim.clock,
        )
        ctx = RunContext(
            RunInputs(plan, graph, kind="failback", mode="simulate"),
            Ports(asr, sim.onprem, sim.clock, no_approver, no_events),
        )
        try:
            refs = asr.discover([v.name for v in plan.vms])
            states = asr.item_states(list(refs.values()))
            yield sim, ctx, states
        finally:
            asr.close()


def _vm(field, value, vm="app-01"):
    return lambda estate: setattr(estate.vm(vm), field, value)


def _appliance(field, value):
    return lambda estate: [setattr(a, field, value) for a in estate.appliances]


def _crowded(estate):
    for v in estate.vms:
        v.disks, v.appliance = 12, estate.appliances[0].name


RULES = [
    (_appliance("connected", False), None, "appliance appliance-01", pre.RULE_APPLIANCE),
    (_appliance("health", "Critical"), None, "appliance appliance-01", pre.RULE_APPLIANCE),
    (_crowded, None, "appliance-disks appliance-01", pre.RULE_DISKS),
    (_appliance("datastores", ["ds-elsewhere"]), None, "datastore app-01", pre.RULE_DATASTORE),
    (
        lambda e: setattr(e.vcenter, "host", "vc-other.example.local"),
        None,
        "vcenter-discovered",
        pre.RULE_VCENTER,
    ),
    (_vm("agent_registered_after_failover", False), None, "agent-registered app-01", pre.RULE_AGENT),
    (_vm("agent_heartbeat_age", 7200.0), None, "agent-registered app-01", pre.RULE_AGENT),
    (_vm("replication_health", "Warning"), None, "replication-health app-01", pre.RULE_HEALTH),
    (None, lambda sim: sim.onprem.add_snapshot("app-01"), "onprem-snapshots app-01", pre.RULE_SNAPSHOTS),
]


@pytest.mark.parametrize(
    ("condition", "after", "check", "rule"), RULES, ids=[f"{r[2]}-{i}" for i, r in enumerate(RULES)]
)
def test_each_modernized_rule_refuses_naming_the_subject_and_the_rule_with_zero_writes(
    condition, after, check, rule
):
    with modern_run(condition or (lambda e: None), after or (lambda s: None)) as (sim, ctx, states):
        checks = modernized_checks(ctx, states)
        failed = {c.name: c for c in checks if not c.ok}
        name = next((n for n in failed if n.startswith(check)), None)
        assert name is not None, sorted(failed)
        assert failed[name].rule == rule and rule in failed[name].message
        assert sim.audit.requests() == []


def test_a_clean_modernized_estate_passes_every_check_and_names_each():
    with modern_run() as (sim, ctx, states):
        checks = modernized_checks(ctx, states)
        assert [c for c in checks if not c.ok] == []
        names = {c.name.split(" ", 1)[0] for c in checks}
        assert names >= {
            "appliance",
            "appliance-disks",
            "datastore",
            "vcenter-discovered",
            "azure-vm-running",
            "agent-registered",
            "planned-failover-allowed",
            "replication-health",
            "onprem-snapshots",
            "initial-replication",
            "modernized-policy",
        }
        assert classic_warning(states) is None
        assert sim.audit.requests() == []


def test_every_failure_is_reported_together():
    def both(estate):
        estate.vm("app-01").replication_health = "Critical"
        estate.vm("web-01").agent_registered_after_failover = False

    with modern_run(both) as (sim, ctx, states):
        failed = {c.name for c in modernized_checks(ctx, states) if not c.ok}
        assert {"replication-health app-01", "agent-registered web-01"} <= failed


def test_a_policy_the_modernized_api_cannot_keep_is_refused_naming_the_setting():
    checks = pre.modernized_policy_check("sql", "group", "common-app-consistent", "per-item")
    assert not checks[0].ok and "failback_mode: recovery-plan" in checks[0].message
    ok = pre.modernized_policy_check("sql", "group", "common-app-consistent", None)
    assert ok[0].ok and "multi-VM sync" in ok[0].message
    assert pre.modernized_policy_check("web-01", "vm", "latest", None)[0].message == "CrashConsistent"


def test_the_classic_warning_says_what_migration_needs():
    text = pre.classic_support_warning(["sql-01", "app-01"])
    assert text is not None and "March 2026" in text and "9.50" in text and "10 machines" in text
    assert "replicating forward" in text and "re-create" in text
    assert pre.classic_support_warning([]) is None


@pytest.mark.parametrize("listing", [False, True], ids=["a GET each", "one listing"])
def test_a_stopped_azure_vm_is_refused_whether_read_one_by_one_or_listed(monkeypatch, listing):
    """From :data:`AZURE_VM_LISTING` VMs on, one ``statusOnly`` listing of the subscription replaces a GET
    per VM: the same verdicts, from one request."""
    from drplan.failback import preflight_modernized

    monkeypatch.setattr(preflight_modernized, "AZURE_VM_LISTING", 1 if listing else 10_000)

    def stop(sim):
        sim.engine.items["app-01"].azure_vm = "stopped"

    with modern_run(after_start=stop) as (sim, ctx, states):
        sim.reset_counts()
        checks = {c.name: c for c in modernized_checks(ctx, states) if c.name.startswith("azure-vm-running")}
        assert (
            not checks["azure-vm-running app-01"].ok
            and "deallocated, not running" in checks["azure-vm-running app-01"].message
        )
        assert all(c.ok for name, c in checks.items() if name != "azure-vm-running app-01")
        assert len(checks) == len(states)
        listed = sim.request_counts[("GET", "VirtualMachines_ListAll")]
        got = sim.request_counts[("GET", "VirtualMachines_Get")]
        assert (listed, got) == ((1, 0) if listing else (0, len(states)))
