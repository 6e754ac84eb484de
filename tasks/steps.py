"""One generic Prefect task per step kind, built from the run kinds' step tables; and the plan-level read.

A step task takes only its node: the run it belongs to is :data:`drplan.run.context.CURRENT`, which the flow
binds and Prefect's task threads copy. A step that must not run ends ``Cancelled(name="Skipped")`` with the
reason in words (the UI never shows it as success) and a WARNING line; a failure is retried only when
transient, then recorded on the node (:func:`for_node`'s hook).

Tasks return nothing to Prefect: Prefect links a task's argument to an earlier task's return value by object
identity, so a returned dict keyed by VM names would draw edges from every task to every other one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.states import Cancelled

from drplan.errors import TransientError
from drplan.kinds import all_steps
from drplan.run.context import current
from drplan.run.hooks import NotRun
from drplan.run.steps import Skipped, Step, failed, run_step

SKIPPED = "Skipped"  # the state name of a step that did not run (type CANCELLED: grey, never green)
RETRY_DELAYS = [2, 10, 30]


def only_transient(task, task_run, state) -> bool:
    """``retry_condition_fn``: retry throttling and 5xx (TransientError) only; never 4xx or permissions."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:  # result not retrievable: do not retry
            return False
    return isinstance(exc, TransientError)


def _options(retries: int) -> dict[str, Any]:
    """Task options: transient errors retried (a delay only where there are retries: no "NaN" in the UI)."""
    out: dict[str, Any] = dict(cache_policy=NONE, retries=retries)
    if retries:
        out.update(retry_condition_fn=only_transient, retry_delay_seconds=RETRY_DELAYS[:retries])
    return out


def _summary(out: object) -> str:
    if isinstance(out, dict):
        return ", ".join(f"{k}: {v}" for k, v in out.items())[:500]
    return "" if out is None else str(out)[:500]


def _step_task(step: Step) -> Task:
    def run(node: str) -> Any:
        ctx = current()
        out = run_step(ctx, step, node)
        logger = get_run_logger()
        if isinstance(out, Skipped):
            reason = out.reason
            if reason.startswith(f"{node}: not run ("):  # a later step of a node already failed or skipped
                why = ctx.state.reasons.get(node, "")
                reason = f"{node} {ctx.get(node)}" + (f": {why}" if why else "")
                logger.warning("%s %s not run: %s", step.kind, node, reason)
            # otherwise the node's "skipped" event has said why, as a WARNING line of this task
            return Cancelled(name=SKIPPED, message=f"not run: {reason}")
        if isinstance(out, NotRun):  # a hook that does not run here (a simulation): its dependents go on
            logger.warning("%s %s not run: %s", step.kind, node, out["result"])
            return Cancelled(name="Not run", message=out["result"])
        if text := _summary(out):
            logger.info("%s %s: %s", step.kind, node, text)
        return None

    run.__name__ = run.__qualname__ = step.kind.replace("-", "_")
    run.__doc__ = step.doc
    return task(name=step.kind, **_options(step.retries))(run)


#: step kind -> its generic task
TASKS: dict[str, Task] = {kind: _step_task(step) for kind, step in all_steps().items()}


def _record_failure(kind: str, node: str) -> Callable[..., None]:
    def on_failure(task, task_run, state) -> None:
        failed(current(), kind, node, state.message or "task failed")

    return on_failure


def step_tags(kind: str) -> list[str]:
    """Tags for the Task Runs filter: the step kind. Not the unit or its VMs (they are in the run name and
    the ``drplan.unit.*`` events): Prefect acquires tag concurrency for every task run, with one service
    thread per distinct tag set that lives as long as the process (390 threads at 100 VMs)."""
    return [f"drplan-step:{kind}"]


def step_label(kind: str, node: str) -> str:
    return "approve commit" if kind == "gate" else f"{kind} {node}"


def for_node(kind: str, node: str, tags: list[str] | None = None) -> Task:
    """The kind's task re-configured for one node: run name ``"<kind> <node>"``, tags, final failure
    recorded."""
    return TASKS[kind].with_options(
        task_run_name=step_label(kind, node), on_failure=[_record_failure(kind, node)], tags=tags or []
    )


@task(name="read", **_options(3))
def read(fn: Callable[[], Any]) -> None:
    """A plan-level read (preflight, recovery points): every read, no write. Its value stays with the caller
    (``fn`` stores it), so no later task is linked to it."""
    fn()
