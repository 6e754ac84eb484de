"""How a step ends other than in success: skipped (:class:`SkipStep`, :func:`skip`) or failed (:func:`fail`),
and the run's outcome (:func:`outcome`, :class:`RunFailed`)."""

from __future__ import annotations

from drplan.errors import DrplanError
from drplan.run.context import SUCCESS, NodeStatus, Runtime


class RunFailed(DrplanError):
    """The run ended with failed or skipped units. One message names them all."""

    def __init__(self, plan: str, failed: dict[str, str], skipped: dict[str, str], extra: str = ""):
        self.plan, self.failed, self.skipped = plan, dict(failed), dict(skipped)
        lines = [f"failback of plan {plan} did not complete: {len(failed)} failed, {len(skipped)} skipped"]
        lines += [f"  failed  {n}: {r}" for n, r in failed.items()]
        lines += [f"  skipped {n}: {r}" for n, r in skipped.items()]
        if extra:
            lines.append(extra)
        super().__init__("\n".join(lines))


class SkipStep(DrplanError):
    """Raised by a step that decides, from what it read, that it must not run. Not a failure."""


def skip(rt: Runtime, kind: str, node: str, reason: str) -> None:
    """Mark a node skipped (unless a reason-less quiet skip of an already failed/skipped node)."""
    if not reason:
        return
    if kind in ("gate",) or (kind in ("commit", "reprotect") and rt.get(node) in SUCCESS):
        rt.extra.setdefault("not_done", {})[f"{kind} {node}"] = reason
        if rt.report is not None and kind != "gate":
            for r in rt.report.rows_of(node):
                rt.report.update(node, r.vm, **{kind: f"skipped: {reason}"})
        if kind == "gate":
            rt.set(node, NodeStatus.skipped, reason)
        rt.emit(node, f"{kind}-skipped", reason)
        return
    rt.set(node, NodeStatus.skipped, reason)
    rt.emit(node, "skipped", reason)
    if rt.report is not None:
        rows = rt.report.rows_of(node) or [rt.report.row(node, node)]
        for r in rows:
            rt.report.update(node, r.vm, status="skipped", note=reason)


def fail(rt: Runtime, kind: str, node: str, exc: BaseException) -> None:
    """Record a step's final failure (after any retries)."""
    reason = f"{kind}: {exc}"
    rt.set(node, NodeStatus.failed, reason)
    rt.emit(node, "failed", reason, step=kind)
    if rt.report is not None:
        rows = rt.report.rows_of(node) or [rt.report.row(node, node)]
        for r in rows:
            rt.report.update(node, r.vm, status=f"failed ({kind})", note=str(exc).splitlines()[0][:300])


def outcome(rt: Runtime) -> tuple[dict[str, str], dict[str, str]]:
    """(failed, skipped) nodes with their reasons, in graph order."""
    failed, skipped = {}, {}
    for node in rt.graph.order:
        status = rt.get(node)
        if status == NodeStatus.failed:
            failed[node] = rt.reasons.get(node, "")
        elif status == NodeStatus.skipped:
            skipped[node] = rt.reasons.get(node, "")
    return failed, skipped
