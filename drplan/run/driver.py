"""The one driver every run goes through, whatever the orchestrator: preflight (abort before any write) →
recovery points (abort before any write) → the run plan's steps → the kind's finish → outcome and result.

An :class:`Orchestrator` executes the plan-level reads and the run plan: Prefect for every real run
(``flows/``), :class:`drplan.run.executor.ThreadExecutor` for tests and for reading.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from drplan.errors import RecoveryPointError
from drplan.run.context import RunContext
from drplan.run.kind import RunKind
from drplan.run.outcomes import PreflightFailed
from drplan.run.run_plan import RunPlan, build_run_plan
from drplan.run.steps import Step

T = TypeVar("T")


class Orchestrator(Protocol):
    """Runs a plan-level read (``name``: preflight, resolve-points) and a run plan's steps."""

    def read(self, ctx: RunContext, name: str, fn: Callable[[], T]) -> T: ...

    def run(self, ctx: RunContext, plan: RunPlan, steps: Mapping[str, Step]) -> None: ...


def drive(ctx: RunContext, kind: RunKind, orchestrator: Orchestrator) -> dict[str, Any]:
    """Run ``kind`` on ``ctx`` with ``orchestrator``; returns the result or raises what the kind says."""
    ctx.state.started_at = ctx.clock.now()
    report = ctx.state.report = kind.new_report(ctx)
    reached_graph = False
    error: BaseException | None = None
    try:
        checks = orchestrator.read(ctx, "preflight", lambda: kind.preflight(ctx))
        bad = [c for c in checks if not c.ok]
        if bad:
            report.outcome = f"aborted: {len(bad)} preflight check(s) failed; nothing was changed"
            raise PreflightFailed(ctx.plan.name, bad)
        if kind.resolve_points is not None:
            resolve = kind.resolve_points
            try:
                orchestrator.read(ctx, "resolve-points", lambda: resolve(ctx))
            except RecoveryPointError as exc:
                report.outcome = "aborted: no valid recovery point; nothing was changed"
                raise RecoveryPointError(f"{exc}\nnothing was changed") from None
        run_plan = build_run_plan(ctx.graph, kind.shape(ctx.inputs))
        ctx.state.submitted = len(run_plan) + (2 if kind.resolve_points else 1)
        ctx.emit(
            "(run)",
            "planned",
            f"{len(run_plan)} steps",
            steps=len(run_plan),
            task_runs=ctx.state.submitted,
            run_id=ctx.inputs.run_id,
        )
        reached_graph = True
        orchestrator.run(ctx, run_plan, kind.steps)
    except BaseException as exc:
        error = exc
        raise
    finally:
        kind.finish(ctx, reached_graph)
        if not report.outcome:
            report.outcome = kind.outcome(ctx, reached_graph, error)
        report.finished_at = ctx.clock.now()
    return kind.result(ctx)
