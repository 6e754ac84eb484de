"""How a step ends other than in success: skipped (:class:`SkipStep`, :func:`skip`) or failed (:func:`fail`),
and the run's outcome (:func:`outcome`, :class:`RunFailed`)."""

from __future__ import annotations

from collections.abc import Sequence

from drplan.errors import DrplanError
from drplan.observed import CheckResult
from drplan.run.context import SUCCESS, NodeStatus, RunContext


class RunFailed(DrplanError):
    """The run ended with failed or skipped units. One message names them all."""

    def __init__(
        self,
        plan: str,
        failed: dict[str, str],
        skipped: dict[str, str],
        extra: str = "",
        what: str = "failback",
    ):
        self.plan, self.failed, self.skipped = plan, dict(failed), dict(skipped)
        lines = [f"{what} of plan {plan} did not complete: {len(failed)} failed, {len(skipped)} skipped"]
        lines += [f"  failed  {n}: {r}" for n, r in failed.items()]
        lines += [f"  skipped {n}: {r}" for n, r in skipped.items()]
        if extra:
            lines.append(extra)
        super().__init__("\n".join(lines))


class PreflightFailed(DrplanError):
    """At least one precondition failed; nothing was written. ``checks`` are the failed checks."""

    def __init__(self, plan: str, checks: Sequence[CheckResult]):
        self.checks = list(checks)
        lines = [f"preflight of plan {plan} failed: {len(self.checks)} check(s); nothing was changed"]
        lines += [f"  ✗ {c.name}: {c.message}" for c in self.checks]
        super().__init__("\n".join(lines))


class SkipStep(DrplanError):
    """Raised by a step that decides, from what it read, that it must not run. Not a failure."""


def skip(ctx: RunContext, kind: str, node: str, reason: str) -> None:
    """Mark a node skipped (unless a reason-less quiet skip of an already failed/skipped node)."""
    if not reason:
        return
    if kind in ("gate",) or (kind in ("commit", "reprotect") and ctx.get(node) in SUCCESS):
        with ctx.lock:
            ctx.state.not_done[f"{kind} {node}"] = reason
        if ctx.report is not None and kind != "gate":
            for r in ctx.report.rows_of(node):
                ctx.report.update(node, r.vm, **{kind: f"skipped: {reason}"})
        if kind == "gate":
            ctx.set(node, NodeStatus.skipped, reason)
        ctx.emit(node, f"{kind}-skipped", reason)
        return
    ctx.set(node, NodeStatus.skipped, reason)
    ctx.emit(node, "skipped", reason)
    if ctx.report is not None:
        rows = ctx.report.rows_of(node) or [ctx.report.row(node, node)]
        for r in rows:
            ctx.report.update(node, r.vm, status="skipped", note=reason)


def fail(ctx: RunContext, kind: str, node: str, exc: BaseException) -> None:
    """Record a step's final failure (after any retries)."""
    reason = f"{kind}: {exc}"
    ctx.set(node, NodeStatus.failed, reason)
    ctx.emit(node, "failed", reason, step=kind)
    if ctx.report is not None:
        rows = ctx.report.rows_of(node) or [ctx.report.row(node, node)]
        for r in rows:
            ctx.report.update(node, r.vm, status=f"failed ({kind})", note=str(exc).splitlines()[0][:300])


def outcome(ctx: RunContext) -> tuple[dict[str, str], dict[str, str]]:
    """(failed, skipped) nodes with their reasons, in graph order."""
    failed, skipped = {}, {}
    for node in ctx.graph.order:
        status = ctx.get(node)
        if status == NodeStatus.failed:
            failed[node] = ctx.state.reasons.get(node, "")
        elif status == NodeStatus.skipped:
            skipped[node] = ctx.state.reasons.get(node, "")
    return failed, skipped


def summary(ctx: RunContext, **extra: object) -> dict[str, object]:
    """A run's result: plan, mode, outcome, failed and skipped nodes, report rows, dry-run lines."""
    failed, skipped = outcome(ctx)
    report = ctx.report
    return {
        "plan": ctx.plan.name,
        "mode": ctx.mode,
        "outcome": report.outcome if report is not None else "",
        "failed": failed,
        "skipped": skipped,
        "rows": report.table() if report is not None else [],
        "would": list(ctx.state.would),
        **extra,
    }
