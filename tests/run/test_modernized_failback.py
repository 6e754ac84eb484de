"""Failback on the modernized providers (InMageRcm -> InMageRcmFailback) on the library executor, asserted
from the simulator's audit log: the group through one recovery plan (ApplicationConsistent, multi-VM sync),
standalone VMs by item planned failover (CrashConsistent), commit after verification, reprotect per item;
a mixed plan; a failed planned failover rolled back and retried on the re-run."""

from __future__ import annotations

from run_support import THREE_TIER, simulated

from drplan.failback.kind import FAILBACK
from drplan.plan.loader import load_plan
from drplan.plan.schema import CommitPolicy
from drplan.run.outcomes import RunFailed
from drplan.sim.estate import Estate, OperationFault

SPEED = 600.0  # heartbeat and registration ages are measured in simulated minutes: keep them realistic
VMS = {"sql-01", "sql-02", "app-01", "app-02", "web-01", "web-02"}
STANDALONE = VMS - {"sql-01", "sql-02"}


def _accepted(sim, operation: str | None = None) -> list[dict]:
    return sim.audit.requests(operation, outcome="accepted")


def test_a_modernized_plan_fails_back_through_planned_failovers_by_point_type_and_reprotects_per_item():
    with simulated(provider="modernized", speed=SPEED) as bench:
        run = bench.run(FAILBACK)
        assert run.error is None, run.error
        planned = _accepted(bench.sim, "plannedFailover")
        (group,) = [r for r in planned if r.get("target") == "plan"]
        assert (
            group["vms"] == ["sql-01", "sql-02"] and group["recovery_point_type"] == "ApplicationConsistent"
        )
        items = {r["vm"]: r["recovery_point_type"] for r in planned if r.get("target") == "item"}
        assert items == dict.fromkeys(STANDALONE, "CrashConsistent")
        assert _accepted(bench.sim, "unplannedFailover") == [], (
            "a classic operation reached a modernized vault"
        )
        assert {r.get("provider") for r in _accepted(bench.sim, "reProtect")} == {"InMageRcmFailback"}
        assert {r["vm"] for r in _accepted(bench.sim, "reProtect")} == VMS
        # graph order: the app tier starts only once the group is verified; commit only after verification
        order = [(e.node, e.transition) for e in run.events]
        assert order.index(("sql", "verified")) < order.index(("app-01", "failback-started"))
        for unit in ("sql", "app-01", "web-02"):
            assert order.index((unit, "verified")) < order.index((unit, "committed"))
        rows = {r.vm: r for r in run.ctx.report.rows if r.vm in VMS}
        assert all(r.point and r.point_time for r in rows.values()), "a VM's applied point is not reported"


def test_a_plan_mixing_providers_fails_each_vm_back_through_its_own_providers_operations():
    def web_tier_still_classic(estate):
        classic = Estate.from_plan(load_plan(THREE_TIER), provider="classic")
        estate.master_targets, estate.process_servers = classic.master_targets, classic.process_servers
        for vm in estate.vms:
            if vm.name.startswith("web"):
                old = classic.vm(vm.name)
                vm.provider, vm.master_target, vm.process_server = (
                    "classic",
                    old.master_target,
                    old.process_server,
                )

    with simulated(provider="modernized", speed=SPEED, tweak=web_tier_still_classic) as bench:
        run = bench.run(FAILBACK, commit=CommitPolicy.never)
        assert run.error is None, run.error
        classic = {r["vm"] for r in _accepted(bench.sim, "unplannedFailover")}
        modern = {r["vm"] for r in _accepted(bench.sim, "plannedFailover") if r.get("target") == "item"}
        assert classic == {"web-01", "web-02"} and modern == {"app-01", "app-02"}
        assert any(c.name == "classic-support" and "web-01" in c.subject for c in run.ctx.report.preflight)
        for row in run.ctx.report.rows:  # what ASR applied is reported: the point each item failed over to
            if row.vm in VMS:
                applied = bench.asr.item_state(run.ctx.state.refs[row.vm]).failover_recovery_point_id
                assert applied and row.point.lower() == applied.lower(), row.vm


def test_a_failed_planned_failover_rolls_back_skips_its_dependents_and_the_rerun_completes():
    def app01_fails_once(estate):
        estate.faults.operations.append(OperationFault(operation="plannedFailover", vm="app-01", mode="once"))

    with simulated(provider="modernized", speed=SPEED, tweak=app01_fails_once) as bench:
        first = bench.run(FAILBACK, commit=CommitPolicy.never)
        assert isinstance(first.error, RunFailed)
        assert set(first.error.failed) == {"app-01"} and "rolled" in first.error.failed["app-01"]
        assert set(first.error.skipped) == {"web-01", "web-02"}
        again = bench.run(FAILBACK)
        assert again.error is None, again.error
        app01 = [r for r in _accepted(bench.sim, "plannedFailover") if r.get("vm") == "app-01"]
        assert len(app01) == 2  # the rolled-back attempt, then the retry
        assert {r["vm"] for r in _accepted(bench.sim, "failoverCommit") if r.get("vm")} >= STANDALONE
