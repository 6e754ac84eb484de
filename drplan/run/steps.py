"""Step kinds and how any step runs: skip when blocked, run, record a failure for the orchestrator.

A :class:`Step` says what one kind of step does (``run``), why it must not run (``blocked_by``: ``None``
to run, a reason to skip, ``""`` to skip quietly because the node was already reported) and how often a
transient error is retried. Each run kind has its own table of steps (:mod:`drplan.kinds`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from drplan.run import outcomes
from drplan.run.context import SUCCESS, NodeStatus, RunContext
from drplan.run.run_plan import effective_predecessors

StepFn = Callable[[RunContext, str], object]
BlockedFn = Callable[[RunContext, str], str | None]


@dataclass(frozen=True)
class Step:
    """One step kind: what it does, why it would be skipped, how often a transient error is retried."""

    kind: str
    run: StepFn
    blocked_by: BlockedFn
    retries: int = 0
    doc: str = ""


@dataclass(frozen=True)
class Skipped:
    """A step that did not run, and why (shown to the operator; never success)."""

    reason: str


def run_step(ctx: RunContext, step: Step, node: str) -> object:
    """Run one step of one node; a :class:`Skipped` when it must not run. A failure is recorded in
    ``ctx.state.errors`` and raised (the orchestrator retries transient ones, then calls :func:`failed`)."""
    reason = step.blocked_by(ctx, node)
    if reason is not None:
        outcomes.skip(ctx, step.kind, node, reason)
        return Skipped(reason or f"{node}: not run ({ctx.get(node)})")
    try:
        return step.run(ctx, node)
    except outcomes.SkipStep as exc:
        outcomes.skip(ctx, step.kind, node, str(exc))
        return Skipped(str(exc))
    except BaseException as exc:
        with ctx.lock:
            ctx.state.errors[(step.kind, node)] = exc
        raise


def failed(ctx: RunContext, kind: str, node: str, fallback: str = "step failed") -> None:
    """Record a step's final failure (after its retries) with the error it raised."""
    with ctx.lock:
        exc = ctx.state.errors.get((kind, node))
    outcomes.fail(ctx, kind, node, exc if exc is not None else RuntimeError(fallback))


# -- why a step would not run ------------------------------------------------------------------------------
def deps_blocked(ctx: RunContext, deps: Iterable[str]) -> str | None:
    """The reason a node must not start: a dependency failed, was skipped or did not succeed."""
    for dep in deps:
        status = ctx.get(dep)
        if status == NodeStatus.failed:
            return f"dependency {dep} failed"
        if status == NodeStatus.skipped:
            return f"dependency {dep} was skipped"
        if status not in SUCCESS and not ctx.dry_run:
            return f"dependency {dep} is {status}"
    return None


def blocked_by_dependencies(ctx: RunContext, node: str) -> str | None:
    """A graph-phase step: runs once each of its effective predecessors succeeded."""
    return deps_blocked(ctx, effective_predecessors(ctx.graph, node, ctx.inputs.kind))


def blocked_unless(required: NodeStatus) -> BlockedFn:
    """A later step of a node: runs only if the node reached ``required`` (quiet skip otherwise)."""

    def check(ctx: RunContext, node: str) -> str | None:
        status = ctx.get(node)
        if status in (NodeStatus.failed, NodeStatus.skipped) or (status != required and not ctx.dry_run):
            return ""  # already reported: skip quietly
        return None

    return check


def never_blocked(ctx: RunContext, node: str) -> str | None:
    """Steps that run whatever happened before (gates that decide themselves, drill cleanup)."""
    return None
