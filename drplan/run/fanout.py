"""Running one step over a unit's members concurrently, bounded, with every failure reported together."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from drplan.errors import DrplanError, TransientError
from drplan.run.context import RunContext

T = TypeVar("T")
MEMBER_WORKERS = 16  # bound for a group's concurrent members / concurrent preflight reads


def members(ctx: RunContext, unit: str) -> list:
    return list(ctx.graph.units[unit].vms)


def concurrently(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """Run ``fn`` over ``items`` concurrently; after all have finished, raise if any failed.

    One error is re-raised as is (so a transient error stays retryable); several are joined into one message.
    """
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(MEMBER_WORKERS, len(items))) as pool:
        # each thread runs in a copy of the caller's context: the run, its logger and its events follow
        futures = [pool.submit(contextvars.copy_context().run, fn, i) for i in items]
    errors = [e for f in futures if (e := f.exception()) is not None]
    if len(errors) == 1 or (errors and all(isinstance(e, TransientError) for e in errors)):
        raise errors[0]
    if errors:
        raise DrplanError("; ".join(str(e) for e in errors)) from errors[0]
    return [f.result() for f in futures]


def gather(jobs: Sequence[Callable[[], T]], max_workers: int = MEMBER_WORKERS) -> list[T]:
    """Run independent reads concurrently (each in a copy of the caller's context); results in order."""
    if len(jobs) <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=min(max_workers, len(jobs))) as pool:
        return list(pool.map(lambda job: contextvars.copy_context().run(job), jobs))
