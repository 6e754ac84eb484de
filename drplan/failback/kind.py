"""The failback run, declared: failback → verify per unit in graph order with hooks as their own nodes,
then the commit gate → commit → reprotect to Azure per unit, by the commit policy."""

from __future__ import annotations

from typing import Any

from drplan.failback import preflight as failback_preflight
from drplan.failback.gate import GATE, commit_gate
from drplan.failback.point_choice import precheck_points
from drplan.failback.unit_steps import commit_unit, failback_unit, reprotect_to_azure_unit, verify_unit
from drplan.plan.schema import CommitPolicy
from drplan.run.context import NodeStatus, RunContext, RunInputs
from drplan.run.hooks import HOOK_STEP
from drplan.run.kind import RunKind
from drplan.run.outcomes import RunFailed, outcome, summary
from drplan.run.report import Report
from drplan.run.run_plan import RunShape, Stage
from drplan.run.steps import Step, blocked_by_dependencies, blocked_unless, never_blocked

NAME = "failback"


def _blocked_commit(ctx: RunContext, node: str) -> str | None:
    if ctx.get(node) in (NodeStatus.failed, NodeStatus.skipped):
        return ""
    if ctx.get(GATE) in (NodeStatus.skipped, NodeStatus.failed):
        return ctx.state.reasons.get(GATE) or "the commit gate is closed"
    return blocked_unless(NodeStatus.verified)(ctx, node)


def _blocked_reprotect(ctx: RunContext, node: str) -> str | None:
    if ctx.get(node) == NodeStatus.verified and ctx.get(GATE) == NodeStatus.done and not ctx.dry_run:
        return "commit did not happen"
    if ctx.get(node) == NodeStatus.verified and not ctx.dry_run:
        return "not committed"
    return blocked_unless(NodeStatus.committed)(ctx, node)


STEPS = {
    s.kind: s
    for s in (
        Step(
            "failback",
            failback_unit,
            blocked_by_dependencies,
            retries=3,
            doc="Fail a VM or replication group back to its resolved point(s) and wait for the ASR job(s).",
        ),
        Step(
            "verify",
            verify_unit,
            blocked_unless(NodeStatus.failed_back),
            doc="Verify every member on-prem: powered on, VMware Tools running, guest IP, within the boot "
            "timeout.",
        ),
        HOOK_STEP,
        Step(
            "gate",
            commit_gate,
            never_blocked,
            doc="Open the commit stage: every unit verified, and approved when the commit policy asks.",
        ),
        Step(
            "commit",
            commit_unit,
            _blocked_commit,
            retries=3,
            doc="Commit the failback (deletes the failed-over Azure VM). Only for verified units; at most "
            "once.",
        ),
        Step(
            "reprotect",
            reprotect_to_azure_unit,
            _blocked_reprotect,
            retries=3,
            doc='Reprotect on-prem -> Azure, retrying "agent isn\'t installed" within the registration '
            "window.",
        ),
    )
}


def shape(inputs: RunInputs) -> RunShape:
    """Gate → commit → reprotect after the graph, by policy; ``never`` commits (and reprotects) nothing."""
    stages: tuple[Stage, ...] = ()
    if inputs.commit_policy != CommitPolicy.never:
        stages = (Stage("gate", per_unit=False, node=GATE), Stage("commit"))
        if inputs.reprotect_to_azure:
            stages += (Stage("reprotect"),)
    return RunShape(NAME, ("failback", "verify"), "hook", stages)


def new_report(ctx: RunContext) -> Report:
    report = Report(ctx.plan.name, ctx.mode + (" (dry run)" if ctx.dry_run else ""), ctx.state.started_at)
    for unit in ctx.graph.units.values():
        for vm in unit.vms:
            report.row(unit.name, vm.name, unit.kind)
    return report


def outcome_line(ctx: RunContext, reached_graph: bool, error: BaseException | None) -> str:
    failed, skipped = outcome(ctx)
    if error is not None:
        return "failed"
    if ctx.dry_run:
        return "dry run: nothing was changed"
    if failed or skipped:
        return f"failed: {len(failed)} failed, {len(skipped)} skipped"
    if ctx.state.not_done:
        return "failed back and verified; not committed: " + "; ".join(
            f"{k}: {v}" for k, v in ctx.state.not_done.items()
        )
    if ctx.inputs.commit_policy == CommitPolicy.never:
        return "failed back and verified; not committed (commit policy: never)"
    return "completed"


def result(ctx: RunContext) -> dict[str, Any]:
    failed, skipped = outcome(ctx)
    if failed or skipped:
        raise RunFailed(ctx.plan.name, failed, skipped)
    return summary(ctx, commit=str(ctx.inputs.commit_policy), not_done=dict(ctx.state.not_done))


FAILBACK = RunKind(
    name=NAME,
    steps=STEPS,
    shape=shape,
    new_report=new_report,
    preflight=failback_preflight.preflight,
    resolve_points=precheck_points,
    outcome=outcome_line,
    result=result,
    lock_in_dry_run=False,
)
