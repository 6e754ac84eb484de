"""How a step ends other than in success: skipped (:class:`SkipStep`, :func:`skip`) or failed (:func:`fail`),
and the run's outcome (:func:`outcome`, :class:`RunFailed`)."""

from __future__ import annotations

import re
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
        rows = ctx.report.rows_of(node) or [ctx.report.row(node, node, _row_kind(ctx, node))]
        for r in rows:
            ctx.report.update(node, r.vm, status="skipped", note=reason)


def fail(ctx: RunContext, kind: str, node: str, exc: BaseException) -> None:
    """Record a step's final failure (after any retries)."""
    reason = f"{kind}: {exc}"
    ctx.set(node, NodeStatus.failed, reason)
    ctx.emit(node, "failed", reason, step=kind)
    if ctx.report is not None:
        rows = ctx.report.rows_of(node) or [ctx.report.row(node, node, _row_kind(ctx, node))]
        for r in rows:
            ctx.report.update(node, r.vm, status=f"failed ({kind})", note=str(exc).splitlines()[0][:300])


def _row_kind(ctx: RunContext, node: str) -> str:
    unit = ctx.graph.units.get(node)
    return unit.kind if unit is not None else "gate"


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


# -- what the operator reads first: the facts, then what needs attention ----------------------------------
_JOB = re.compile(r"\(job ([^\s)]+)")
_UNCOMMITTED = (NodeStatus.failed_back, NodeStatus.verified)


def _units(ctx: RunContext) -> list[str]:
    return [n for n in ctx.graph.order if ctx.graph.units[n].kind != "hook"]


def error_of(ctx: RunContext, node: str) -> tuple[str, str]:
    """(the first line of the error that failed ``node``, the ASR job id it names, or "")."""
    with ctx.lock:
        errors = [e for (_, n), e in ctx.state.errors.items() if n == node]
    reason = ctx.state.reasons.get(node, "")
    exc = errors[-1] if errors else None
    text = str(exc).splitlines()[0] if exc is not None and str(exc) else reason
    job = getattr(exc, "job", "") or next(iter(_JOB.findall(text) or _JOB.findall(reason)), "")
    return text[:400], job


def uncommitted(ctx: RunContext) -> list[str]:
    """Failback units that are failed back on-prem but not committed (their Azure VMs still exist)."""
    if ctx.inputs.kind != "failback" or ctx.dry_run:
        return []
    return [u for u in _units(ctx) if ctx.get(u) in _UNCOMMITTED]


def not_started(ctx: RunContext) -> dict[str, str]:
    """Units that never started, with why."""
    out = {}
    for u in _units(ctx):
        status = ctx.get(u)
        if status == NodeStatus.skipped:
            out[u] = ctx.state.reasons.get(u, "not run")
        elif status == NodeStatus.pending:
            out[u] = "the run stopped before it"
    return out


def needs_attention(ctx: RunContext, command: str = "") -> list[str]:
    """Markdown bullets, most urgent first: failed units (error and job id), units failed back but not
    committed and what that means, units not started and why, the next command to run."""
    failed, _ = outcome(ctx)
    lines = []
    for node in failed:
        text, job = error_of(ctx, node)
        lines.append(f"- ✗ **{node}** failed: {text}" + (f" (ASR job `{job}`)" if job else ""))
    waiting = uncommitted(ctx)
    if waiting:
        lines.append(
            f"- ⚠ **not committed**: {', '.join(f'**{u}**' for u in waiting)} "
            f"{'is' if len(waiting) == 1 else 'are'} failed back to on-prem but not committed: "
            "the Azure VMs still exist and nothing protects the on-prem VMs until commit and reprotect"
        )
    later = not_started(ctx)
    if later:
        lines.append("- ○ **not started**: " + "; ".join(f"**{u}** ({why})" for u, why in later.items()))
    for what, why in ctx.state.not_done.items():
        if not waiting or not what.startswith(("commit ", "reprotect ", "gate ")):
            lines.append(f"- ⚠ {what}: {why}")
    if lines and command:
        lines.append(f"- ▶ **next:** fix the cause, then `{command}` (a re-run continues from ASR's state)")
    return lines


def facts_line(ctx: RunContext) -> str:
    """One line for the flow run's state message, leading with the facts: counts, then names."""
    units = _units(ctx)
    if all(ctx.get(u) == NodeStatus.pending for u in units):
        return ""  # stopped before the first unit: the error itself is the fact
    failed, _ = outcome(ctx)
    failed_units = [u for u in units if u in failed]
    parts = []
    if failed_units:
        first = failed_units[0]
        text, job = error_of(ctx, first)
        parts.append(
            f"{len(failed_units)} of {len(units)} units failed ({', '.join(failed_units)}): "
            f"{first}: {text[:160]}" + (f" [job {job}]" if job else "")
        )
    failed_hooks = [n for n in failed if n not in units]
    if failed_hooks:
        parts.append(f"hook(s) failed: {', '.join(failed_hooks)}")
    waiting = uncommitted(ctx)
    if waiting:
        parts.append(f"{len(waiting)} failed back but NOT committed ({', '.join(waiting)})")
    later = not_started(ctx)
    if later:
        parts.append(f"{len(later)} not started ({', '.join(later)})")
    return "; ".join(parts)
