"""A small orchestrator on threads: runs a run plan the way the Prefect layer does, without Prefect.

Same semantics: a step starts once its upstream steps are done (skipped steps included), a transient error
is retried up to the step's ``retries`` (waiting on the run's clock), a final failure is recorded on the node.
Every real run uses Prefect (``flows/``); this executor is for fast tests of run semantics and for reading.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from drplan.errors import TransientError
from drplan.run.context import RunContext, bound
from drplan.run.run_plan import PlannedStep, RunPlan, StepKey
from drplan.run.schedule import schedule
from drplan.run.steps import Skipped, Step, failed, run_step

T = TypeVar("T")
RETRY_DELAYS = (2.0, 10.0, 30.0)  # seconds on the run's clock between attempts (as the Prefect tasks)


@dataclass(frozen=True)
class Failed:
    """A step that raised after its retries."""

    error: BaseException


@dataclass
class ThreadExecutor:
    """Runs plan-level reads in the caller's thread and a run plan's steps on a bounded thread pool."""

    max_workers: int = 8
    cap: int = 32
    reads: list[str] = field(default_factory=list)  # plan-level reads, in order
    results: dict[StepKey, object] = field(default_factory=dict)  # each step's result, Skipped or Failed

    def read(self, ctx: RunContext, name: str, fn: Callable[[], T]) -> T:
        self.reads.append(name)
        return _with_retries(ctx, 3, fn)

    def run(self, ctx: RunContext, plan: RunPlan, steps: Mapping[str, Step]) -> None:
        def one(planned: PlannedStep) -> object:
            step = steps[planned.kind]
            try:
                return _with_retries(ctx, step.retries, lambda: run_step(ctx, step, planned.node))
            except Exception as exc:
                failed(ctx, planned.kind, planned.node, str(exc))
                return Failed(exc)

        with bound(ctx), ThreadPoolExecutor(max_workers=self.max_workers) as pool:

            def submit(planned: PlannedStep, _handles: dict[StepKey, Future[object]]) -> Future[object]:
                return pool.submit(contextvars.copy_context().run, one, planned)

            handles = schedule(plan, submit, self.cap)
        self.results.update({k: h.result() for k, h in handles.items()})

    def skipped(self) -> dict[StepKey, str]:
        """Steps that did not run, with the reason shown to the operator."""
        return {k: r.reason for k, r in self.results.items() if isinstance(r, Skipped)}


def _with_retries(ctx: RunContext, retries: int, fn: Callable[[], T]) -> T:
    attempt = 0
    while True:
        try:
            return fn()
        except TransientError:
            if attempt >= retries:
                raise
            ctx.clock.sleep(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
            attempt += 1
