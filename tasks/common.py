"""The generic part of every drplan task: runtime lookup, skip propagation, failure recording, retry rule."""

from __future__ import annotations

from typing import Any

from prefect import Task, task
from prefect.cache_policies import NONE
from prefect.states import Completed

from drplan.errors import TransientError
from drplan.run import context as runtime
from drplan.run import outcomes
from drplan.run.steps import STEPS

#: step kind -> generic Prefect task (filled by the modules defining them; see :func:`register`)
TASKS: dict[str, Task] = {}


def register(kind: str, task: Task) -> Task:
    TASKS[kind] = task
    return task


def only_transient(task, task_run, state) -> bool:
    """``retry_condition_fn``: retry throttling and 5xx (TransientError) only; never 4xx or permissions."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:  # result not retrievable: do not retry
            return False
    return isinstance(exc, TransientError)


def run_step(kind: str, run_key: str, node: str) -> Any:
    """Run one step of one node, or return a ``Skipped`` state naming why it did not run."""
    rt = runtime.get(run_key)
    step = STEPS[kind]
    reason = step.blocked_by(rt, node)
    if reason is not None:
        outcomes.skip(rt, kind, node, reason)
        return Completed(name="Skipped", message=reason or f"{node}: not run ({rt.get(node)})")
    try:
        return step.run(rt, node)
    except outcomes.SkipStep as exc:
        outcomes.skip(rt, kind, node, str(exc))
        return Completed(name="Skipped", message=str(exc))
    except BaseException as exc:
        rt.extra.setdefault("errors", {})[(kind, node)] = exc
        raise


#: the options of every per-node step task and of the plan-level reads (retry transient errors only)
TASK_OPTIONS: dict[str, Any] = dict(
    cache_policy=NONE, retry_condition_fn=only_transient, retry_delay_seconds=[2, 10, 30]
)


def step_task(kind: str, *, retries: int, doc: str) -> Task:
    """The generic task of one step kind (:func:`run_step` of ``kind``), registered for :func:`for_node`."""

    def run(run_key: str, node: str):
        return run_step(kind, run_key, node)

    run.__name__ = run.__qualname__ = kind.replace("-", "_")
    run.__doc__ = doc
    return register(kind, task(name=kind, retries=retries, **TASK_OPTIONS)(run))


def _on_failure(kind: str, run_key: str, node: str):
    def hook(task, task_run, state) -> None:
        rt = runtime.get(run_key)
        exc = rt.extra.get("errors", {}).get((kind, node)) or RuntimeError(state.message or "task failed")
        outcomes.fail(rt, kind, node, exc)

    return hook


def for_node(kind: str, run_key: str, node: str) -> Task:
    """The kind's task re-configured for one node: run name ``"<kind> <node>"``, failures recorded."""
    task = TASKS[kind]
    label = "approve commit" if kind == "gate" else f"{kind} {node}"
    return task.with_options(task_run_name=label, on_failure=[_on_failure(kind, run_key, node)])
