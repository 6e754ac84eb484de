"""A kind of run, declared: its steps, how it lays out the plan graph, its plan-level reads and how it ends.

Failback, drill and reprotect-to-on-prem are three values of :class:`RunKind` (:mod:`drplan.kinds`); one
driver (:func:`drplan.run.driver.drive`) runs any of them on any orchestrator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drplan.observed import CheckResult, Phase
from drplan.run.context import RunContext, RunInputs
from drplan.run.report import Report
from drplan.run.run_plan import RunShape
from drplan.run.steps import Step


def _nothing_to_finish(ctx: RunContext, reached_graph: bool) -> None:
    return None


@dataclass(frozen=True)
class RunKind:
    """One kind of run, end to end."""

    name: str  # failback | drill | reprotect
    steps: Mapping[str, Step]  # step kind -> step
    shape: Callable[[RunInputs], RunShape]  # how the plan graph becomes steps (may depend on the inputs)
    new_report: Callable[[RunContext], Report]
    preflight: Callable[[RunContext], list[CheckResult]]  # every precondition, read, never written
    outcome: Callable[[RunContext, bool, BaseException | None], str]  # the report's outcome line
    result: Callable[[RunContext], dict[str, Any]]  # the run's result; raises when it did not succeed
    resolve_points: Callable[[RunContext], object] | None = None  # before the graph: choose recovery points
    finish: Callable[[RunContext, bool], object] = _nothing_to_finish  # always, after the graph (cleanup)
    simulated_provider: str = "modernized"  # the ASR providers of a generated simulated estate
    #: where a generated simulated estate starts, by provider (absent: ready to fail back)
    simulated_phases: Mapping[str, Phase] = field(default_factory=dict)

    def simulated_phase(self, provider: str) -> Phase | None:
        """Where a simulated estate of ``provider`` generated for this kind of run starts."""
        return self.simulated_phases.get(provider)

    lock_in_dry_run: bool = True  # whether a dry run also takes the plan (a failback dry run does not)
