"""One measured failback flow run, in a fresh process (so its peak RSS is its own).

    python -m benchmarks.orchestrate PLAN.yaml OUT.json [--visibility-timeout 60]

Expects the simulator's environment (``DRPLAN_SIM_ENDPOINT``, ``DRPLAN_SIM_CA_FILE``: the flow then drives
the external simulator over HTTPS) and a private ``PREFECT_HOME``; with ``PREFECT_API_URL`` it runs against
that server, otherwise on Prefect's default local (ephemeral) engine, which this process starts and warms up
before the clock starts. Writes one JSON object to ``OUT.json``:

``compile_s`` (load + validate + compile), ``makespan_s`` (the flow call, end to end), ``cpu_s`` (this
process's CPU time during it), ``pre_s``/``graph_phase_s``/``post_s``/``tail_s`` (see :func:`phases`),
``exec_span_s`` (first failback start to last reprotect, from the run's report), ``outcome``,
``task_runs`` (submitted by the flow),
``visible`` / ``visible_after_s`` (final-state task runs the API shows, and how long after the flow's end they
all were), ``rss_mb`` (peak RSS of this process, VmHWM), ``server_rss_mb`` (peak of the ephemeral server
child, when there is one), ``peak_threads``, ``units_failed`` / ``units_failed_throttled`` (units whose report
row ended ``failed (...)``, and those of them failed by ARM's throttling: a 429 in the error).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil


def peak_rss_mb(pid: int | None = None) -> float | None:
    """VmHWM (peak resident set) of a process, in MB."""
    try:
        text = Path(f"/proc/{pid or 'self'}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


class Sampler(threading.Thread):
    """Peak thread count of this process, sampled every ``every`` seconds."""

    def __init__(self, every: float = 0.25):
        super().__init__(daemon=True, name="bench-sampler")
        self.every, self.peak_threads, self._stop = every, 0, threading.Event()
        self.proc = psutil.Process()

    def run(self) -> None:
        while not self._stop.is_set():
            self.peak_threads = max(self.peak_threads, self.proc.num_threads())
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()


def count_completed(flow_run_id) -> tuple[int, int]:
    """(task runs in a final state, all task runs) of the flow run, as the API reports them. Final:
    COMPLETED (Skipped is a Completed state), FAILED, CRASHED, CANCELLED: a failed unit's tasks count too."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    flows = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])).model_dump(mode="json", exclude_unset=True)
    final = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
    done = TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=final)))
    with get_client(sync_client=True) as client:
        completed = client.request(
            "POST",
            "/task_runs/count",
            json={"flow_runs": flows, "task_runs": done.model_dump(mode="json", exclude_unset=True)},
        ).json()
        total = client.request("POST", "/task_runs/count", json={"flow_runs": flows}).json()
    return int(completed), int(total)


def wait_visible(flow_run_id, expected: int, timeout: float) -> tuple[int, float | None]:
    """Poll the API until ``expected`` task runs are visible in a final state; (visible, seconds or None)."""
    start = time.perf_counter()
    visible = 0
    while True:
        with contextlib.suppress(Exception):  # the API lagging or busy: keep polling until the timeout
            visible, _total = count_completed(flow_run_id)
        elapsed = time.perf_counter() - start
        if visible >= expected:
            return visible, round(elapsed, 2)
        if elapsed >= timeout:
            return visible, None
        time.sleep(0.25)


def phases(rows: list[dict], start: datetime, end: datetime) -> dict[str, float | None]:
    """Where the makespan went (the simulated clock runs at speed 1 from wall-clock now, so report times
    and wall times compare): before the first failback (preflight, points), the graph phase (first failback
    to last verification), the post phase (to the last reprotect), and the tail (report, artifacts)."""

    def times(key: str) -> list[datetime]:
        return [datetime.fromisoformat(r[key]) for r in rows if r.get(key)]

    starts, verified, done = times("failback_start"), times("verified_at"), times("reprotected_at")
    if not (starts and verified and done):
        return {"pre_s": None, "graph_phase_s": None, "post_s": None, "tail_s": None}
    return {
        "pre_s": round((min(starts) - start).total_seconds(), 2),
        "graph_phase_s": round((max(verified) - min(starts)).total_seconds(), 2),
        "post_s": round((max(done) - max(verified)).total_seconds(), 2),
        "tail_s": round((end - max(done)).total_seconds(), 2),
    }


THROTTLE_MARKS = ("429", "throttl", "toomanyrequests")


def failed_units(rows: list[dict]) -> tuple[list[str], list[str]]:
    """(units that failed, those of them whose error was ARM's throttling: 429 / SubscriptionRequestsThrottled
    / TooManyRequests in the report's note)."""
    failed = sorted({r["unit"] for r in rows if str(r.get("status", "")).startswith("failed (")})
    throttled = sorted(
        {
            r["unit"]
            for r in rows
            if str(r.get("status", "")).startswith("failed (")
            and any(mark in str(r.get("note", "")).lower() for mark in THROTTLE_MARKS)
        }
    )
    return failed, throttled


def failed_in_message(message: str) -> tuple[list[str], list[str]]:
    """The same two lists from a failed run's ``RunFailed`` message (its lines ``failed  UNIT: error``), for
    a flow that raised instead of returning its report rows."""
    failed, throttled = set(), set()
    for line in message.splitlines():
        words = line.split(None, 2)
        if len(words) >= 2 and words[0] == "failed" and words[1].endswith(":"):
            unit = words[1][:-1]
            failed.add(unit)
            if any(mark in line.lower() for mark in THROTTLE_MARKS):
                throttled.add(unit)
    return sorted(failed), sorted(throttled)


def _span(rows: list[dict]) -> float | None:
    starts = [r["failback_start"] for r in rows if r.get("failback_start")]
    ends: list[str] = [
        e for r in rows if (e := r.get("reprotected_at") or r.get("committed_at") or r.get("verified_at"))
    ]
    if not starts or not ends:
        return None
    return round(
        (max(map(datetime.fromisoformat, ends)) - min(map(datetime.fromisoformat, starts))).total_seconds(), 2
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plan")
    parser.add_argument("out")
    parser.add_argument("--visibility-timeout", type=float, default=60.0)
    args = parser.parse_args(argv)

    # as the CLI does: the local engine's server (a child process) records task runs and events in batches
    os.environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE", "500")
    os.environ.setdefault("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE", "500")
    from drplan.plan.graph import load_and_compile

    start = time.perf_counter()
    load_and_compile(args.plan)
    compile_s = time.perf_counter() - start

    from prefect import flow

    @flow(name="bench-warmup")
    def warmup() -> int:
        return 1

    warmup()  # starts (or reaches) the API outside the measured window

    from drplan.run.events import observing
    from drplan.settings import Settings
    from flows.failback import failback

    settings = Settings()
    planned: dict[str, int] = {}

    def record_planned(event) -> None:
        if event.node == "(run)" and event.transition == "planned":
            planned[str(event.payload["run_id"])] = int(event.payload["task_runs"])

    sampler = Sampler()
    sampler.start()
    start, started_at, cpu0 = time.perf_counter(), datetime.now(UTC), time.process_time()
    with observing(record_planned):
        state = failback(plan=str(args.plan), commit="after-verification", return_state=True)
    makespan, ended_at, cpu = time.perf_counter() - start, datetime.now(UTC), time.process_time() - cpu0
    sampler.stop()
    result = state.result(raise_on_failure=False)
    flow_run_id = state.state_details.flow_run_id
    expected = planned.get(str(flow_run_id), 0)
    outcome = result.get("outcome") if isinstance(result, dict) else f"{state.type.value}: {state.message}"
    rows = result.get("rows", []) if isinstance(result, dict) else []
    visible, visible_after = wait_visible(flow_run_id, expected, args.visibility_timeout)
    children = psutil.Process().children(recursive=True)
    server_rss = max((peak_rss_mb(c.pid) or 0 for c in children), default=0) or None
    failed, throttled = failed_units(rows) if rows else failed_in_message(str(result))
    out = {
        "units_failed": len(failed),
        "units_failed_throttled": len(throttled),
        "failed_units": failed[:50],
        "compile_s": round(compile_s, 3),
        "makespan_s": round(makespan, 2),
        "cpu_s": round(cpu, 2),  # orchestrator CPU (all threads) during the flow call
        "exec_span_s": _span(rows),
        **phases(rows, started_at, ended_at),
        "outcome": outcome,
        "flow_state": state.type.value,
        "flow_run_id": str(flow_run_id),
        "task_runs": expected,
        "visible": visible,
        "visible_after_s": visible_after,
        "rss_mb": peak_rss_mb(),
        "server_rss_mb": server_rss if not os.environ.get("PREFECT_API_URL") else None,
        "peak_threads": sampler.peak_threads,
        "max_workers": settings.max_workers,
        "max_commits": settings.max_commits,
    }
    Path(args.out).write_text(json.dumps(out, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
