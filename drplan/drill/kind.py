"""The drill run, declared: ``test-failover X`` → ``drill-verify X`` per unit in graph order (a unit starts
when its dependencies are verified), drill hooks as their own nodes, the ``drill-complete`` gate,
``drill-cleanup X`` for every unit whatever happened, then the ``after_cleanup`` hooks. :func:`finish` runs
after everything, also after a failure or a cancellation: the safety net that cleans up what is left.

Per item, by the provider ASR reports: a classic VM (reprotected toward on-prem) is test-failed over to an
on-prem port group and verified on vCenter; a modernized VM (InMageRcm, replicating to Azure) is test-failed
over into an Azure network and verified through the compute API (:mod:`drplan.drill.forward`); failback
itself cannot be drilled on the modernized providers, and the report says so first.

Measured per VM on the run's clock (simulated time under ``--simulate``): RTO = drill start → test VM
verified; RPO = age of the recovery point used, when it was chosen (as a failback at that moment would lose).
"""

from __future__ import annotations

from typing import Any

from drplan.drill import steps
from drplan.drill.cleanup import cleanup_unit, finish
from drplan.drill.hooks import after_cleanup_hook, hook_node
from drplan.drill.report import missed_targets, new_report, nothing_left, report_of
from drplan.drill.state import FLOW_KIND, state
from drplan.observed import Phase
from drplan.run.context import RunContext, RunInputs
from drplan.run.kind import RunKind
from drplan.run.outcomes import outcome, summary
from drplan.run.run_plan import RunShape, Stage
from drplan.run.steps import Step, never_blocked

#: what `drplan drill` prints per unit (the per-VM rows are in the result's ``vms`` and the table artifact)
COLUMNS = ("unit", "vms", "status", "rto", "rpo", "checks", "cleanup")

STEPS = {
    s.kind: s
    for s in (
        Step(
            "test-failover",
            steps.test_failover_unit,
            steps.blocked_graph,
            retries=3,
            doc="Test-fail a VM or replication group over to the plan's isolated test network (a port group, "
            "or an Azure network for modernized VMs); wait for ASR.",
        ),
        Step(
            "drill-verify",
            steps.verify_unit,
            steps.blocked_verify,
            doc="Verify every member's test VM within the boot timeout: on vCenter (powered on, VMware Tools "
            "running, guest IP), or in Azure for a modernized VM (running, VM agent ready).",
        ),
        Step(
            "drill-hook",
            hook_node,
            steps.blocked_graph,
            doc="Run a drill hook (approvals stop an unattended drill only when the plan says so).",
        ),
        Step(
            "drill-complete",
            steps.complete,
            never_blocked,
            doc="Every unit and hook of the drill has finished: start the cleanup.",
        ),
        Step(
            "drill-cleanup",
            cleanup_unit,
            never_blocked,
            retries=3,
            doc="Clean up the unit's test failovers (removes the test VMs), whatever happened before.",
        ),
        Step(
            "after-cleanup",
            after_cleanup_hook,
            never_blocked,
            doc="Run an after-cleanup hook (undo drill-time changes); runs also when the drill failed.",
        ),
    )
}


def shape(inputs: RunInputs) -> RunShape:
    return RunShape(
        FLOW_KIND,
        ("test-failover", "drill-verify"),
        "drill-hook",
        (Stage("drill-complete", per_unit=False, node=steps.COMPLETE), Stage("drill-cleanup")),
        final_hook_step="after-cleanup",
    )


def _leftovers(ctx: RunContext) -> list[str]:
    return list(state(ctx).leftovers or [])


def outcome_line(ctx: RunContext, started: bool, error: BaseException | None) -> str:
    failed, skipped = outcome(ctx)
    left = _leftovers(ctx)
    if ctx.dry_run:
        return "dry run: nothing was changed"
    if failed or skipped or left:
        return f"failed: {len(failed)} failed, {len(skipped)} skipped; " + nothing_left(left)
    if error is not None:
        return (
            f"stopped: {str(error).splitlines()[0] if str(error) else type(error).__name__}; "
            + nothing_left(left)
        )
    if started:
        report = report_of(ctx)
        missed = missed_targets(report) if report is not None else []
        return (
            "passed: every unit verified; "
            + nothing_left(left)
            + ("; targets missed: " + "; ".join(missed) if missed else "; every target met")
        )
    return "stopped before the drill started; " + nothing_left(left)


def result(ctx: RunContext) -> dict[str, Any]:
    failed, skipped = outcome(ctx)
    left = _leftovers(ctx)
    if failed or skipped or left:
        raise steps.DrillFailed(ctx.plan.name, failed, skipped, left)
    report = report_of(ctx)
    return summary(
        ctx,
        rows=report.units() if report else [],
        vms=report.table() if report else [],
        leftovers=left,
        columns=COLUMNS,
        exercised=list(report.scope) if report else [],
    )


DRILL = RunKind(
    name=FLOW_KIND,
    steps=STEPS,
    shape=shape,
    new_report=new_report,
    preflight=steps.preflight,
    resolve_points=steps.resolve_points,
    outcome=outcome_line,
    result=result,
    finish=finish,
    # a generated simulated estate replicates forward on the modernized providers: the drill is a test
    # failover into Azure (a classic estate, reprotected toward on-prem, is drilled on vCenter)
    simulated_phases={"modernized": Phase.replicating_to_azure},  # forward drills: replicating to Azure
    simulated_provider="modernized",
)
