"""One generic Prefect task per step kind, built from the run kinds' step tables; and the plan-level read.

A step task takes only its node: the run it belongs to is :data:`drplan.run.context.CURRENT`, which the flow
binds and Prefect's task threads copy. A step that must not run ends ``Completed(name="Skipped")`` with the
reason; a failure is retried only when transient, then recorded on the node (:func:`for_node`'s hook).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Task, task
from prefect.cache_policies import NONE
from prefect.states import Completed

from drplan.errors import TransientError
from drplan.kinds import all_steps
from drplan.run.context import current
from drplan.run.steps import Skipped, Step, failed, run_step


def only_transient(task, task_run, state) -> bool:
    """``retry_condition_fn``: retry throttling and 5xx (TransientError) only; never 4xx or permissions."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:  # result not retrievable: do not retry
            return False
    return isinstance(exc, TransientError)


#: the options of every step task and of the plan-level reads (retry transient errors only)
TASK_OPTIONS: dict[str, Any] = dict(
    cache_policy=NONE, retry_condition_fn=only_transient, retry_delay_seconds=[2, 10, 30]
)


def _step_task(step: Step) -> Task:
    def run(node: str) -> Any:
        out = run_step(current(), step, node)
        return Completed(name="Skipped", message=out.reason) if isinstance(out, Skipped) else out

    run.__name__ = run.__qualname__ = step.kind.replace("-", "_")
    run.__doc__ = step.doc
    return task(name=step.kind, retries=step.retries, **TASK_OPTIONS)(run)


#: step kind -> its generic task
TASKS: dict[str, Task] = {kind: _step_task(step) for kind, step in all_steps().items()}


def _record_failure(kind: str, node: str) -> Callable[..., None]:
    def on_failure(task, task_run, state) -> None:
        failed(current(), kind, node, state.message or "task failed")

    return on_failure


def for_node(kind: str, node: str) -> Task:
    """The kind's task re-configured for one node: run name ``"<kind> <node>"``, final failure recorded."""
    label = "approve commit" if kind == "gate" else f"{kind} {node}"
    return TASKS[kind].with_options(task_run_name=label, on_failure=[_record_failure(kind, node)])


@task(name="read", retries=3, **TASK_OPTIONS)
def read(fn: Callable[[], Any]) -> Any:
    """A plan-level read (preflight, recovery points): every read, no write."""
    return fn()
