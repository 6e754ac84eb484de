"""The submit loop of ``flows.common``: a task is submitted only when its upstream tasks are done (no worker
thread blocked on ``wait_for``), with every upstream still named in ``wait_for``; per-kind caps hold."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from flows import common


class FakeFuture:
    """What ``submit_graph`` needs of a Prefect future: ``add_done_callback``."""

    def __init__(self, inner: Future):
        self.inner = inner

    def add_done_callback(self, fn) -> None:
        self.inner.add_done_callback(lambda _f: fn(self))


class Recorder:
    def __init__(self, pool: ThreadPoolExecutor):
        self.pool, self.lock = pool, threading.Lock()
        self.done: set[tuple[str, str]] = set()
        self.running: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.submitted: list[tuple[tuple[str, str], list]] = []
        self.violations: list[str] = []

    def for_node(self, kind, key, node):
        rec = self

        class Task:
            def submit(self, _key, _node, wait_for):
                ups = [f.unwrap() if hasattr(f, "unwrap") else f for f in wait_for]
                rec.submitted.append(((kind, node), ups))

                def run():
                    with rec.lock:
                        rec.running[kind] = rec.running.get(kind, 0) + 1
                        rec.peak[kind] = max(rec.peak.get(kind, 0), rec.running[kind])
                    time.sleep(0.002)
                    with rec.lock:
                        rec.running[kind] -= 1
                        rec.done.add((kind, node))

                return FakeFuture(rec.pool.submit(run))

        return Task()


def _specs(width: int) -> dict:
    """``width`` independent units: failback → verify, a gate, then commit → reprotect per unit."""
    specs: dict = {}
    for i in range(width):
        specs[("failback", f"u{i}")] = []
        specs[("verify", f"u{i}")] = [("failback", f"u{i}")]
    specs[("gate", "gate")] = [("verify", f"u{i}") for i in range(width)]
    for i in range(width):
        specs[("commit", f"u{i}")] = [("gate", "gate")]
        specs[("reprotect", f"u{i}")] = [("commit", f"u{i}")]
    return specs


@pytest.mark.parametrize("cap", [1, 3])
def test_tasks_start_after_their_upstream_and_the_commit_burst_is_capped(monkeypatch, cap):
    with ThreadPoolExecutor(max_workers=16) as pool:
        rec = Recorder(pool)
        monkeypatch.setattr(common, "for_node", rec.for_node)
        specs = _specs(12)
        out = common._run_submissions("run", specs, {"commit", "reprotect"}, cap)

    assert set(out.futures) == set(specs)
    assert len(rec.submitted) == len(specs)
    seen: set = set()
    for key, _ups in rec.submitted:
        assert all(u in seen for u in specs[key]), f"{key} submitted before its upstream"
        seen.add(key)
    by_key = dict(rec.submitted)
    for key, ups in by_key.items():  # wait_for still names every upstream future (the API's edges)
        assert ups == [out.futures[u] for u in specs[key]]
    assert rec.peak["commit"] <= cap and rec.peak["reprotect"] <= cap
    assert rec.done == set(specs)
