"""Running one step over a unit's members concurrently, bounded, with every failure reported together."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from drplan.errors import DrplanError, TransientError
from drplan.run.context import Runtime

MEMBER_WORKERS = 16  # bound for a group's concurrent members / concurrent preflight reads


def members(rt: Runtime, unit: str):
    return list(rt.graph.units[unit].vms)


def concurrently(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """Run ``fn`` over ``items`` concurrently; after all have finished, raise if any failed.

    One error is re-raised as is (so a transient error stays retryable); several are joined into one message.
    """
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(MEMBER_WORKERS, len(items))) as pool:
        futures = [pool.submit(fn, i) for i in items]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if len(errors) == 1 or (errors and all(isinstance(e, TransientError) for e in errors)):
        raise errors[0]
    if errors:
        raise DrplanError("; ".join(str(e) for e in errors)) from errors[0]
    return [f.result() for f in futures]
