"""Drill hooks: graph hooks (approvals stop an unattended drill only when the plan says so) and the
``after_cleanup`` hooks that run after the cleanup, also after a failure."""

from __future__ import annotations

from drplan.drill.report import report_of
from drplan.drill.state import FLOW_KIND, state
from drplan.plan.schema import ApprovalHook, Hook
from drplan.run import hooks as run_hooks
from drplan.run.context import NodeStatus, RunContext
from drplan.run.run_plan import final_hooks, hook_of


def _approval_applies(ctx: RunContext, hook: Hook) -> bool:
    if not isinstance(hook, ApprovalHook):
        return True
    return ctx.plan.drill.stop_for_approvals or hook.in_drills


def hook_node(ctx: RunContext, node: str) -> dict[str, str]:
    """A drill hook: shell and wait hooks run; approvals stop the drill only when the plan says so."""
    hook = hook_of(ctx.graph, node)
    report = report_of(ctx)
    if not _approval_applies(ctx, hook):
        what = "approval not required in an unattended drill (drill.stop_for_approvals / in_drills not set)"
        ctx.set(node, NodeStatus.done)
        ctx.emit(node, "hook-done", what)
        if report is not None:
            report.hooks[node] = what
        return {"hook": node, "result": what}
    result = run_hooks.hook_node(ctx, node)
    if report is not None:
        report.hooks[node] = result["result"] or "done"
    return result


def after_cleanup_hook(ctx: RunContext, node: str) -> dict[str, str]:
    """An ``after_cleanup`` hook: runs after the cleanup, also after a failure (undoes drill changes)."""
    ds = state(ctx)
    with ds.lock:
        ds.hooks_done.add(node)
    return hook_node(ctx, node)


def after_cleanup_hooks(ctx: RunContext) -> list[str]:
    """The plan's after-cleanup hooks that run in drills, in graph order."""
    return final_hooks(ctx.graph, FLOW_KIND)
