"""The reprotect run (Azure → on-prem, ``InMageReprotectInput``), declared: ``reprotect-onprem X`` per unit in
graph order, then ``replication-health X`` per unit (until ASR reports replication health Normal)."""

from __future__ import annotations

from typing import Any

from drplan.observed import Phase
from drplan.reprotect_to_onprem.inputs import FLOW_KIND
from drplan.reprotect_to_onprem.preflight import preflight
from drplan.reprotect_to_onprem.report import new_report
from drplan.reprotect_to_onprem.steps import health_unit, reprotect_unit
from drplan.run.context import NodeStatus, RunContext, RunInputs
from drplan.run.hooks import HOOK_STEP
from drplan.run.kind import RunKind
from drplan.run.outcomes import RunFailed, outcome, summary
from drplan.run.run_plan import RunShape, Stage
from drplan.run.steps import Step, blocked_by_dependencies, blocked_unless

COLUMNS = ("unit", "vm", "status", "reprotect", "health", "inputs")

STEPS = {
    s.kind: s
    for s in (
        Step(
            "reprotect-onprem",
            reprotect_unit,
            blocked_by_dependencies,
            retries=3,
            doc="Reprotect a VM or replication group Azure -> on-prem (InMageReprotectInput); wait for ASR.",
        ),
        Step(
            "replication-health",
            health_unit,
            blocked_unless(NodeStatus.done),
            doc="Wait until ASR reports every member's replication health Normal.",
        ),
        HOOK_STEP,
    )
}


def shape(inputs: RunInputs) -> RunShape:
    return RunShape(FLOW_KIND, ("reprotect-onprem",), "hook", (Stage("replication-health"),))


def outcome_line(ctx: RunContext, reached_graph: bool, error: BaseException | None) -> str:
    failed, skipped = outcome(ctx)
    if error is not None:
        return "failed"
    if ctx.dry_run:
        return "dry run: nothing was changed"
    if failed or skipped:
        return f"failed: {len(failed)} failed, {len(skipped)} skipped"
    return "completed: every VM protected toward on-prem, replication health Normal"


def result(ctx: RunContext) -> dict[str, Any]:
    failed, skipped = outcome(ctx)
    if failed or skipped:
        raise RunFailed(ctx.plan.name, failed, skipped, what="reprotect")
    return summary(ctx, columns=COLUMNS)


REPROTECT_TO_ONPREM = RunKind(
    name=FLOW_KIND,
    steps=STEPS,
    shape=shape,
    new_report=new_report,
    preflight=preflight,
    outcome=outcome_line,
    result=result,
    simulated_phases={"modernized": Phase.failed_over_to_azure, "classic": Phase.failed_over_to_azure},
)
