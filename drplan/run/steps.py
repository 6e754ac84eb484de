"""The step-kind table the Prefect layer mirrors: ``kind -> Step(run, blocked_by)``.

``blocked_by`` says why a step must be skipped (a dependency failed or was skipped), ``run`` does it.
Drills and reprotect add their own kinds to :data:`STEPS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from drplan.failback.unit_steps import commit_unit, failback_unit, reprotect_unit, verify_unit
from drplan.run.context import SUCCESS, NodeStatus, Runtime
from drplan.run.hooks import GATE, commit_gate, hook_node


def deps_blocked(rt: Runtime, deps: Iterable[str]) -> str | None:
    for dep in deps:
        status = rt.get(dep)
        if status == NodeStatus.failed:
            return f"dependency {dep} failed"
        if status == NodeStatus.skipped:
            return f"dependency {dep} was skipped"
        if status not in SUCCESS and not rt.dry_run:
            return f"dependency {dep} is {status}"
    return None


def _blocked_failback(rt: Runtime, node: str) -> str | None:
    return deps_blocked(rt, effective_predecessors(rt, node))


def _blocked_self(required: NodeStatus) -> Callable[[Runtime, str], str | None]:
    def check(rt: Runtime, node: str) -> str | None:
        status = rt.get(node)
        if status in (NodeStatus.failed, NodeStatus.skipped) or (status != required and not rt.dry_run):
            return ""  # already reported: skip quietly
        return None

    return check


def _blocked_commit(rt: Runtime, node: str) -> str | None:
    if rt.get(node) in (NodeStatus.failed, NodeStatus.skipped):
        return ""
    if rt.get(GATE) in (NodeStatus.skipped, NodeStatus.failed):
        return rt.reasons.get(GATE) or "the commit gate is closed"
    return _blocked_self(NodeStatus.verified)(rt, node)


def _blocked_reprotect(rt: Runtime, node: str) -> str | None:
    if rt.get(node) == NodeStatus.verified and rt.get(GATE) == NodeStatus.done and not rt.dry_run:
        return "commit did not happen"
    if rt.get(node) == NodeStatus.verified and not rt.dry_run:
        return "not committed"
    return _blocked_self(NodeStatus.committed)(rt, node)


def effective_predecessors(rt: Runtime, node: str, flow_kind: str = "failback") -> list[str]:
    """The node's graph predecessors, looking through hooks that do not run in this kind of flow."""
    out: list[str] = []
    for p in rt.graph.predecessors(node):
        if in_flow(rt, p, flow_kind):
            out.append(p)
        else:
            out += [q for q in effective_predecessors(rt, p, flow_kind) if q not in out]
    return out


def in_flow(rt: Runtime, node: str, flow_kind: str = "failback") -> bool:
    unit = rt.graph.units[node]
    if unit.kind != "hook":
        return True
    hook = unit.hook
    # after-cleanup hooks (drills) run after the test-failover cleanup, never in the graph phase
    return flow_kind in hook.runs_in and not hook.after_cleanup


@dataclass(frozen=True)
class Step:
    """One step kind: what it does and why it would be skipped (``None``: run; ``""``: skip quietly)."""

    kind: str
    run: Callable[[Runtime, str], Any]
    blocked_by: Callable[[Runtime, str], str | None]
    transition_on_failure: str = "failed"


STEPS: dict[str, Step] = {
    "failback": Step("failback", failback_unit, _blocked_failback),
    "verify": Step("verify", verify_unit, _blocked_self(NodeStatus.failed_back)),
    "hook": Step("hook", hook_node, _blocked_failback),
    "gate": Step("gate", commit_gate, lambda rt, node: None),
    "commit": Step("commit", commit_unit, _blocked_commit),
    "reprotect": Step("reprotect", reprotect_unit, _blocked_reprotect),
}
