"""The scheduler every orchestrator uses: a step is submitted only when its upstream steps are done (no worker
thread blocked waiting), with every upstream handle passed along; per-kind caps hold."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from drplan.run.run_plan import PlannedStep, RunPlan
from drplan.run.schedule import schedule


def _plan(width: int) -> RunPlan:
    """``width`` independent units: failback → verify, a gate, then commit → reprotect per unit."""
    steps = []
    for i in range(width):
        steps += [
            PlannedStep("failback", f"u{i}", ()),
            PlannedStep("verify", f"u{i}", (("failback", f"u{i}"),)),
        ]
    steps.append(PlannedStep("gate", "gate", tuple(("verify", f"u{i}") for i in range(width))))
    for i in range(width):
        steps += [
            PlannedStep("commit", f"u{i}", (("gate", "gate"),)),
            PlannedStep("reprotect", f"u{i}", (("commit", f"u{i}"),)),
        ]
    return RunPlan(tuple(steps), frozenset({"commit", "reprotect"}))


@pytest.mark.parametrize("cap", [1, 3])
def test_steps_start_after_their_upstream_and_the_commit_burst_is_capped(cap):
    plan = _plan(12)
    lock = threading.Lock()
    done: set = set()
    running: dict[str, int] = {}
    peak: dict[str, int] = {}
    submitted: list = []

    with ThreadPoolExecutor(max_workers=16) as pool:

        def submit(step: PlannedStep, handles: dict) -> Future:
            assert all(u in done for u in step.upstream), f"{step.key} submitted before its upstream"
            submitted.append((step.key, [handles[u] for u in step.upstream]))

            def run():
                with lock:
                    running[step.kind] = running.get(step.kind, 0) + 1
                    peak[step.kind] = max(peak.get(step.kind, 0), running[step.kind])
                time.sleep(0.002)
                with lock:
                    running[step.kind] -= 1
                    done.add(step.key)

            return pool.submit(run)

        handles = schedule(plan, submit, cap)

    assert list(handles) == plan.keys() and len(submitted) == len(plan)
    for key, ups in submitted:  # every upstream handle is passed along (the orchestrator's own edges)
        step = next(s for s in plan.steps if s.key == key)
        assert ups == [handles[u] for u in step.upstream]
    assert peak["commit"] <= cap and peak["reprotect"] <= cap
    assert done == set(plan.keys())
