"""The drill on the modernized providers, on the library executor (no Prefect), from the simulator's audit
log: a forward test failover into Azure of every InMageRcm item in graph order, each test VM verified through
the compute API, every test VM cleaned up (also when a unit fails mid-drill), RTO/RPO per unit, no failback
request; a plan mixing providers drills each VM through its own provider."""

from __future__ import annotations

from datetime import datetime

from run_support import THREE_TIER, simulated

from drplan.drill.kind import DRILL
from drplan.observed import Phase
from drplan.plan.loader import load_plan
from drplan.sim.estate import Estate, OperationFault

SPEED = 600.0
VMS = {"sql-01", "sql-02", "app-01", "app-02", "web-01", "web-02"}
FAILBACK_OPS = ("plannedFailover", "unplannedFailover", "failoverCommit", "reProtect", "failoverCancel")
HOOKS = """
hooks:
  - {name: smoke, kind: shell, command: 'exit 0', depends_on: [web-01, web-02], in_simulation: true}
  - {name: restore-dns, kind: shell, command: 'exit 0', after_cleanup: true, in_simulation: true}
"""


def _drill(plan=THREE_TIER, tweak=None, phase=Phase.replicating_to_azure, provider="modernized"):
    """Drill ``plan`` on a fresh estate; returns the run and the test VMs read through the compute API."""
    with simulated(plan, tweak, phase=phase, provider=provider, speed=SPEED) as bench:
        seen: list[tuple[str, str, bool]] = []
        read = bench.asr.azure_vm

        def recording(name, **kw):
            st = read(name, **kw)
            seen.append((name, st.power_state, st.agent_ready))
            return st

        bench.asr.azure_vm = recording
        run = bench.run(DRILL)
        gone = {vm: not read(f"{vm}-test").exists for vm in VMS}
    return run, seen, gone


def _vms(requests: list[dict]) -> set[str]:
    return {r["vm"] for r in requests}


def test_a_modernized_drill_test_fails_over_into_azure_in_graph_order_verifies_and_cleans_up(plan_file):
    run, seen, gone = _drill(plan_file(HOOKS))
    assert run.error is None, run.error
    assert run.result["outcome"].startswith("passed: every unit verified; no test VM left behind")
    tests = run.requests("testFailover")
    assert _vms(tests) == VMS == _vms(run.requests("testFailoverCleanup"))
    assert {(r["provider"], r["direction"]) for r in tests} == {("InMageRcm", "PrimaryToRecovery")}
    assert all(r["recovery_point"] for r in tests)  # the drill's point, by id
    sql = {r["recovery_point_time"] for r in tests if r["vm"] in ("sql-01", "sql-02")}
    assert len(sql) == 1  # the group's common app-consistent point
    bodies = [e["body"]["properties"] for e in run.sim.request_log if e["route"].endswith("_TestFailover")]
    assert {b["networkId"].rsplit("/", 1)[-1] for b in bodies} == {"vnet-dr-test"}
    for op in FAILBACK_OPS:
        assert run.requests(op) == [], op
    order = [(e.node, e.transition) for e in run.events]
    assert order.index(("sql", "verified")) < order.index(("app-01", "test-failover-started"))
    assert order.index(("app-01", "verified")) < order.index(("web-01", "test-failover-started"))
    assert max(i for i, (_, t) in enumerate(order) if t == "cleaned-up") < order.index(
        ("restore-dns", "hook-done")
    )
    # every test VM verified in Azure through the compute API: running, VM agent ready
    assert {name for name, power, ready in seen if power == "running" and ready} == {f"{v}-test" for v in VMS}
    assert all(gone.values()), gone
    assert run.result["leftovers"] == []
    vms = {r["vm"]: r for r in run.result["vms"]}
    assert {r["checks"] for r in vms.values()} == {"✓ running, ✓ VM agent ready"}
    assert vms["web-01"]["test_vm"] == "web-01-test (Azure)"


def test_a_modernized_drill_reports_rto_and_rpo_per_unit_and_what_it_exercised(plan_file):
    run, _, _ = _drill(plan_file(HOOKS))
    assert run.error is None, run.error
    units = {u["unit"]: u for u in run.result["rows"]}
    assert set(units) == {"sql", "app-01", "app-02", "web-01", "web-02"}
    for u in units.values():
        assert float(u["rto_seconds"]) > 0 and float(u["rpo_seconds"]) >= 0, u
        assert u["rto_met"] in ("true", "false") and u["rpo_met"] in ("true", "false")
    assert float(units["web-01"]["rto_seconds"]) > float(units["sql"]["rto_seconds"])  # later in the order
    # each unit's point is decided again right before its test failover (a point chosen at the start may
    # have left ASR's retention by then): the web tier's is newer than any point known when the drill began
    vms = {r["vm"]: r for r in run.result["vms"]}
    began = run.ctx.state.points_resolved_at
    assert began is not None and datetime.fromisoformat(vms["web-01"]["point_time"]) > began
    sent = {r["vm"]: r["recovery_point"] for r in run.requests("testFailover")}
    assert sent["web-01"] == vms["web-01"]["point"]
    exercised, not_exercised = run.result["exercised"]
    assert exercised.startswith("exercised: forward recovery") and "in plan order" in exercised
    assert "failback itself" in not_exercised and "cannot be drilled" in not_exercised
    md = run.ctx.report.markdown().splitlines()
    assert md[2].startswith("**exercised:** forward recovery") and "cannot be drilled" in md[4]


def test_a_unit_failing_mid_drill_still_cleans_up_every_test_vm_in_azure(plan_file):
    def fail_app01(estate):
        estate.faults.operations.append(OperationFault(operation="testFailover", vm="app-01", mode="always"))

    run, _, gone = _drill(plan_file(HOOKS), tweak=fail_app01)
    assert run.error is not None and "app-01" in str(run.error)
    started = _vms(run.requests("testFailover"))
    assert {"sql-01", "sql-02", "app-01"} <= started and not {"web-01", "web-02"} & started
    assert started - {"app-01"} <= _vms(run.requests("testFailoverCleanup"))
    assert all(gone.values()), gone
    assert run.ctx.state.drill is not None and run.ctx.state.drill.leftovers == []
    assert "hook-done" in run.transitions("restore-dns")
    for op in FAILBACK_OPS:
        assert run.requests(op) == [], op


def test_a_test_vm_that_never_gets_ready_fails_its_unit_and_is_still_cleaned_up(plan_file):
    slow = plan_file(HOOKS)
    slow.write_text(slow.read_text().replace("boot_timeout: 10m", "boot_timeout: 1m"))
    run, seen, gone = _drill(slow)
    # the simulated VM agent takes longer than a minute to report Ready: every first unit fails verification
    assert run.error is not None and "not up within 60s" in str(run.error)
    assert _vms(run.requests("testFailover")) == {"sql-01", "sql-02"}
    assert _vms(run.requests("testFailoverCleanup")) == {"sql-01", "sql-02"}
    assert all(gone.values()) and run.result is None
    assert any(name == "sql-01-test" and power == "running" and not ready for name, power, ready in seen)


def test_a_modernized_vm_reprotected_toward_on_prem_is_refused_by_preflight_with_zero_writes():
    run, _, _ = _drill(phase=Phase.reprotected_to_onprem)
    assert run.error is not None
    assert "a modernized drill is a test failover into Azure" in str(run.error)
    assert run.requests() == []


def test_the_classic_drill_still_runs_on_vcenter():
    run, seen, _ = _drill(phase=Phase.reprotected_to_onprem, provider="classic")
    assert run.error is None, run.error
    assert _vms(run.requests("testFailover")) == VMS == _vms(run.requests("testFailoverCleanup"))
    assert {r["provider"] for r in run.requests("testFailover")} == {"InMage"}
    assert seen == [] and run.result["exercised"] == []


def test_a_plan_mixing_providers_drills_each_vm_through_its_own_provider():
    def classic_web(estate):  # the web tier still on the classic providers, reprotected toward on-prem
        classic = Estate.from_plan(load_plan(THREE_TIER), provider="classic")
        estate.master_targets, estate.process_servers = classic.master_targets, classic.process_servers
        for vm in estate.vms:
            if vm.name.startswith("web-"):
                old = classic.vm(vm.name)
                vm.provider, vm.phase = "classic", Phase.reprotected_to_onprem
                vm.master_target, vm.process_server = old.master_target, old.process_server

    run, seen, gone = _drill(tweak=classic_web)
    assert run.error is None, run.error
    providers = {r["vm"]: r["provider"] for r in run.requests("testFailover")}
    assert providers == {
        **{vm: "InMageRcm" for vm in VMS if not vm.startswith("web-")},
        "web-01": "InMage",
        "web-02": "InMage",
    }
    assert {name for name, *_ in seen} >= {"sql-01-test", "app-01-test"}
    assert not {"web-01-test", "web-02-test"} & {name for name, *_ in seen}
    assert _vms(run.requests("testFailoverCleanup")) == VMS and run.result["leftovers"] == []
