"""Drill hooks: graph hooks (approvals stop an unattended drill only when the plan says so) and the
``after_cleanup`` hooks that run after the cleanup, also after a failure."""

from __future__ import annotations

from drplan.drill.report import report_of
from drplan.drill.state import FLOW_KIND, state
from drplan.run import hooks as failback_hooks
from drplan.run.context import NodeStatus, Runtime


def _approval_applies(rt: Runtime, hook) -> bool:
    return hook.kind != "approval" or rt.plan.drill.stop_for_approvals or hook.in_drills


def hook_node(rt: Runtime, node: str) -> dict[str, str]:
    """A drill hook: shell and wait hooks run; approvals stop the drill only when the plan says so."""
    hook = rt.graph.units[node].hook
    report = report_of(rt)
    if not _approval_applies(rt, hook):
        what = "approval not required in an unattended drill (drill.stop_for_approvals / in_drills not set)"
        rt.set(node, NodeStatus.done)
        rt.emit(node, "hook-done", what)
        if report is not None:
            report.hooks[node] = what
        return {"hook": node, "result": what}
    result = failback_hooks.hook_node(rt, node)
    if report is not None:
        report.hooks[node] = result["result"] or "done"
    return result


def after_cleanup_hook(rt: Runtime, node: str) -> dict[str, str]:
    """An ``after_cleanup`` hook: runs after the cleanup, also after a failure (undoes drill changes)."""
    ds = state(rt)
    with ds.lock:
        ds.hooks_done.add(node)
    return hook_node(rt, node)


def after_cleanup_hooks(rt: Runtime) -> list[str]:
    """The plan's after-cleanup hooks that run in drills, in graph order."""
    out = []
    for node in rt.graph.order:
        unit = rt.graph.units[node]
        if unit.kind == "hook" and unit.hook.after_cleanup and FLOW_KIND in unit.hook.runs_in:
            out.append(node)
    return out
