"""Submitting a run plan's steps as their upstream steps finish, for any orchestrator.

A step is handed to ``submit`` only once every upstream step is done (no worker thread sits blocked on its
upstream), so the orchestrator's pool bound is the real concurrency; steps of a ``capped`` kind (commit,
reprotect, cleanup) run at most ``cap`` at once, released in a bounded stream rather than one burst.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Protocol, TypeVar

from drplan.run.run_plan import PlannedStep, RunPlan, StepKey


class Handle(Protocol):
    """What ``submit`` returns: anything that calls back when the step is done (Prefect or stdlib future)."""

    def add_done_callback(self, fn: Callable[..., object], /) -> None: ...


H = TypeVar("H", bound=Handle)


def schedule(
    plan: RunPlan, submit: Callable[[PlannedStep, dict[StepKey, H]], H], cap: int
) -> dict[StepKey, H]:
    """Submit every step of ``plan``; return each step's handle, in plan order, once all are done.

    ``submit(step, handles)`` starts one step; ``handles`` holds the handles of its upstream steps (for the
    orchestrator's own edges)."""
    specs = {s.key: s for s in plan.steps}
    handles: dict[StepKey, H] = {}
    done: queue.SimpleQueue[StepKey] = queue.SimpleQueue()
    finished: set[StepKey] = set()
    waiting = {k: set(s.upstream) for k, s in specs.items()}
    dependents: dict[StepKey, list[StepKey]] = {}
    for k, s in specs.items():
        for u in set(s.upstream):
            dependents.setdefault(u, []).append(k)
    order = {k: i for i, k in enumerate(specs)}
    held: dict[str, list[StepKey]] = {}  # capped kind -> ready steps waiting for a slot, in plan order
    running: dict[str, int] = {}

    def start(k: StepKey) -> None:
        handle = submit(specs[k], handles)
        handles[k] = handle
        running[k[0]] = running.get(k[0], 0) + 1
        handle.add_done_callback(lambda _h, k=k: done.put(k))

    def release(keys: list[StepKey]) -> None:
        for k in sorted(keys, key=order.__getitem__):
            if k[0] in plan.capped and running.get(k[0], 0) >= cap:
                held.setdefault(k[0], []).append(k)
            else:
                start(k)

    release([k for k, ups in waiting.items() if not ups])
    while len(finished) < len(specs):
        if not any(running.values()):
            raise RuntimeError(f"schedule: {len(specs) - len(finished)} step(s) can never start")
        k = done.get()
        finished.add(k)
        running[k[0]] -= 1
        newly = []
        for d in dependents.get(k, ()):
            waiting[d].discard(k)
            if not waiting[d]:
                newly.append(d)
        queued = held.get(k[0])
        if queued:
            newly.append(queued.pop(0))
        release(newly)
    return {k: handles[k] for k in specs}
