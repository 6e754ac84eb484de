"""Failback run semantics on the library executor (no Prefect): skip propagation, commit policies, dry run,
hook gating and the approval gate, asserted from what ASR received (the simulator's audit log)."""

from __future__ import annotations

from run_support import Approver, execute

from drplan.failback.kind import FAILBACK
from drplan.plan.schema import CommitPolicy
from drplan.run.outcomes import RunFailed
from drplan.run.ports import Approval
from drplan.run.steps import Skipped
from drplan.sim.estate import OperationFault

VMS = {"sql-01", "sql-02", "app-01", "app-02", "web-01", "web-02"}


def _vms(requests: list[dict]) -> set[str]:
    return {r["vm"] for r in requests}


def test_an_approved_failback_fails_back_commits_and_reprotects_every_vm_once():
    run = execute(FAILBACK)
    assert run.error is None, run.error
    assert run.result["outcome"] == "completed"
    for op in ("unplannedFailover", "failoverCommit"):  # exactly once each
        assert sorted(r["vm"] for r in run.requests(op)) == sorted(VMS), op
    assert _vms(run.requests("reProtect")) == VMS  # retried while the agent re-registers
    assert [node for node, _ in run.approver.asked] == ["commit-gate"]
    # commit comes after verification, for every unit
    for unit in ("sql", "app-01", "web-02"):
        seen = run.transitions(unit)
        assert seen.index("verified") < seen.index("committed") < seen.index("reprotected"), seen


def test_a_failing_unit_skips_exactly_its_descendants_and_nothing_is_committed():
    def fail_app01(estate):
        estate.faults.operations.append(
            OperationFault(operation="unplannedFailover", vm="app-01", mode="always")
        )

    run = execute(FAILBACK, tweak=fail_app01)
    assert isinstance(run.error, RunFailed)
    assert set(run.error.failed) == {"app-01"}
    assert run.error.skipped == {
        "web-01": "dependency app-01 failed",
        "web-02": "dependency app-01 failed",
    }
    assert _vms(run.requests("unplannedFailover")) == {"sql-01", "sql-02", "app-01", "app-02"}
    assert run.requests("failoverCommit") == [], "a unit was committed although the gate stayed closed"
    # a skipped step is recorded as skipped, with the reason, never as a success
    assert run.executor.skipped()[("failback", "web-01")] == "dependency app-01 failed"
    assert run.ctx.report.outcome == "failed: 1 failed, 2 skipped"


def test_dry_run_reads_everything_writes_nothing_and_says_what_it_would_do():
    run = execute(FAILBACK, dry_run=True)
    assert run.error is None, run.error
    assert run.requests() == []
    would = "\n".join(run.result["would"])
    assert all(f"VM {vm} (unit" in would for vm in VMS)
    assert "would commit" in would and "would reprotect to Azure" in would
    assert run.result["outcome"] == "dry run: nothing was changed"


def test_commit_policy_never_verifies_and_commits_nothing():
    run = execute(FAILBACK, commit=CommitPolicy.never)
    assert run.error is None, run.error
    assert _vms(run.requests("unplannedFailover")) == VMS
    assert run.requests("failoverCommit") == [] and run.requests("reProtect") == []
    assert run.result["outcome"] == "failed back and verified; not committed (commit policy: never)"
    assert ("gate", "commit-gate") not in run.executor.results  # no gate step is planned at all


def test_a_declined_approval_commits_nothing_and_says_who_declined():
    approver = Approver(Approval(False, "night-lead", "app team not ready"))
    run = execute(FAILBACK, approver=approver)
    assert run.error is None, run.error  # declining is a decision, not a failure
    assert run.requests("failoverCommit") == []
    assert run.result["not_done"]["gate commit-gate"] == "commit declined by night-lead: app team not ready"
    assert isinstance(run.executor.results[("commit", "sql")], Skipped)
    assert run.result["outcome"].startswith("failed back and verified; not committed")


def test_a_failing_hook_stops_its_dependents_and_the_rest_goes_on(plan_file):
    plan = plan_file(
        "hooks:\n"
        "  - {name: check-app, kind: shell, command: 'exit 3', depends_on: [app-01, app-02],\n"
        "     in_simulation: true}\n"
        "  - {name: wait-a-bit, kind: wait, duration: 5m, depends_on: [sql]}\n"
    )
    text = plan.read_text().replace(
        "    depends_on: [app-01, app-02]\n", "    depends_on: [check-app]\n"
    )  # web-01 and web-02 wait for the hook
    plan.write_text(text)
    run = execute(FAILBACK, plan)
    assert isinstance(run.error, RunFailed)
    assert set(run.error.failed) == {"check-app"} and "exited 3" in run.error.failed["check-app"]
    assert set(run.error.skipped) == {"web-01", "web-02"}
    assert _vms(run.requests("unplannedFailover")) == {"sql-01", "sql-02", "app-01", "app-02"}
    assert "hook-done" in run.transitions("wait-a-bit")


def test_an_approval_hook_pauses_the_graph_and_a_decline_fails_it(plan_file):
    plan = plan_file(
        "hooks:\n  - {name: go-web, kind: approval, prompt: 'Bring the web tier up?', depends_on: [app-01]}\n"
    )
    plan.write_text(
        plan.read_text().replace("    depends_on: [app-01, app-02]\n", "    depends_on: [go-web, app-02]\n")
    )
    approver = Approver(Approval(False, "dr-lead", ""))
    run = execute(FAILBACK, plan, approver=approver)
    assert any(
        node == "go-web" and prompt.startswith("Bring the web tier up?") for node, prompt in approver.asked
    )
    assert isinstance(run.error, RunFailed)
    assert run.error.failed["go-web"].endswith("approval go-web was declined by dr-lead")
    assert not {"web-01", "web-02"} & _vms(run.requests("unplannedFailover"))
