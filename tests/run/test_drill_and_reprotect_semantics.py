"""Drill and reprotect-to-on-prem run semantics on the library executor (no Prefect), from the audit log."""

from __future__ import annotations

from run_support import execute

from drplan.drill.kind import DRILL
from drplan.reprotect_to_onprem.kind import REPROTECT_TO_ONPREM
from drplan.sim.estate import OperationFault

VMS = {"sql-01", "sql-02", "app-01", "app-02", "web-01", "web-02"}
HOOKS = """
hooks:
  - {name: smoke, kind: shell, command: 'exit 0', depends_on: [web-01, web-02], in_simulation: true}
  - {name: restore-dns, kind: shell, command: 'exit 0', after_cleanup: true, in_simulation: true}
"""


def _vms(requests: list[dict]) -> set[str]:
    return {r["vm"] for r in requests}


def test_a_drill_test_fails_over_every_vm_in_graph_order_and_cleans_every_one_up(plan_file):
    run = execute(DRILL, plan_file(HOOKS))
    assert run.error is None, run.error
    assert run.result["outcome"].startswith("passed: every unit verified")
    assert _vms(run.requests("testFailover")) == VMS == _vms(run.requests("testFailoverCleanup"))
    assert run.result["leftovers"] == []
    order = [(e.node, e.transition) for e in run.events]
    assert order.index(("sql", "verified")) < order.index(("app-01", "test-failover-started"))
    cleaned = [i for i, (_, what) in enumerate(order) if what == "cleaned-up"]
    assert max(cleaned) < order.index(("restore-dns", "hook-done"))  # after-cleanup hooks run last


def test_a_failed_drill_unit_still_cleans_up_everything_it_started(plan_file):
    def fail_app01(estate):
        estate.faults.operations.append(OperationFault(operation="testFailover", vm="app-01", mode="always"))

    run = execute(DRILL, plan_file(HOOKS), tweak=fail_app01)
    assert run.error is not None and "app-01" in str(run.error)
    started = _vms(run.requests("testFailover"))
    assert {"sql-01", "sql-02"} <= started and not {"web-01", "web-02"} & started
    assert started - {"app-01"} <= _vms(run.requests("testFailoverCleanup"))
    assert run.ctx.state.drill is not None and run.ctx.state.drill.leftovers == []
    assert "hook-done" in run.transitions("restore-dns")  # after-cleanup hooks run also after a failure


def test_reprotect_to_onprem_sends_one_reprotect_per_vm_then_waits_for_healthy_replication():
    run = execute(REPROTECT_TO_ONPREM)
    assert run.error is None, run.error
    assert sorted(r["vm"] for r in run.requests("reProtect")) == sorted(VMS)
    assert run.result["outcome"] == "completed: every VM protected toward on-prem, replication health Normal"
    assert {row["status"] for row in run.result["rows"]} == {"protected"}


def test_a_reprotect_dry_run_writes_nothing():
    run = execute(REPROTECT_TO_ONPREM, dry_run=True)
    assert run.error is None, run.error
    assert run.requests() == []
    assert any("would reprotect to on-prem" in line for line in run.result["would"])
