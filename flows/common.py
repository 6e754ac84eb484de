"""What every drplan flow shares: plan loading, runtime setup (real / simulated / external simulator),
the ONE function that turns a compiled graph into task submissions, one-run-per-plan, events and artifacts.

A drill or reprotect flow reuses all of it: it picks the per-unit step kinds (``unit_steps``), the
post-graph stages (``then``) and the hook filter (``flow_kind``) and calls :func:`submit_graph`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.events import emit_event
from prefect.futures import PrefectFuture, wait
from prefect.runtime import flow_run as current_flow_run
from prefect.settings import PREFECT_HOME
from prefect.states import Crashed
from prefect.utilities.annotations import allow_failure

from drplan.errors import RecoveryPointError
from drplan.failback.preflight import PreflightFailed
from drplan.run import context as runtime
from drplan.run import steps as stepkinds
from drplan.run.context import NodeStatus, Runtime, UnitEvent
from drplan.run.host_lock import PlanBusy, PlanLock, lock_dir
from drplan.run.outcomes import outcome
from drplan.run.report import Report
from drplan.run.targets import open_targets
from tasks.common import for_node

log = logging.getLogger(__name__)

#: bound on concurrently running task threads (Prefect's default pool is unbounded; prefect-notes §2)
MAX_WORKERS = int(os.environ.get("DRPLAN_MAX_WORKERS", "64"))
#: bound on concurrently running tasks of each per-unit post-graph kind (commit, reprotect, cleanup)
MAX_COMMITS = int(os.environ.get("DRPLAN_MAX_COMMITS", "32"))
ACTIVE = [StateType.RUNNING, StateType.PAUSED, StateType.PENDING, StateType.CANCELLING]
#: task runs each flow run submitted, by flow run id (the CLI waits until the API has recorded them all)
SUBMITTED: dict[str, int] = {}


def plan_tag(plan_name: str) -> str:
    return f"drplan-plan:{plan_name}"


# -- the flows' shared preamble --------------------------------------------------------------------------
def run_namer(kind: str = "") -> Callable[[], str]:
    """A ``flow_run_name`` callable: ``<plan file stem>[-<kind>][-dry-run]-<UTC time>``."""
    infix = f"-{kind}" if kind else ""

    def run_name() -> str:
        params = current_flow_run.parameters or {}
        stem = Path(str(params.get("plan", "plan"))).stem
        suffix = "-dry-run" if params.get("dry_run") else ""
        return f"{stem}{infix}{suffix}-{datetime.now(UTC):%Y%m%d-%H%M%S}"

    return run_name


@contextlib.contextmanager
def simulated_estate_file(make_estate, plan, simulate: bool, estate: str | None) -> Iterator[str | None]:
    """Under ``simulate`` without an estate file: ``make_estate(plan)`` in a temporary estate file (the
    drill's adds its test network, the reprotect's starts failed over to Azure)."""
    if not simulate or estate:
        yield estate
        return
    with tempfile.TemporaryDirectory(prefix="drplan-") as tmp:
        path = Path(tmp) / "estate.yaml"
        path.write_text(make_estate(plan).to_yaml(), encoding="utf-8")
        yield str(path)


def ask_approvals_through_prefect(rt: Runtime) -> None:
    """Approval hooks pause this flow run for input (``tasks.hooks.approve``)."""
    from tasks import hooks as hook_tasks

    rt.extra["approve"] = hook_tasks.approve
    rt.extra["flow_run_id"] = str(current_flow_run.id or "")


def start_monitor(rt: Runtime, flow_kind: str) -> Monitor:
    """Events and the progress artifact for the run's unit transitions, from now on."""
    monitor = Monitor(rt, flow_kind)
    rt.listeners.append(monitor)
    monitor.start()
    return monitor


def abort_on_failed_preflight(report: Report, plan_name: str) -> None:
    """Raise :class:`PreflightFailed` (the report says nothing was changed) if any preflight check failed."""
    bad = [c for c in report.preflight if not c.ok]
    if bad:
        report.outcome = f"aborted: {len(bad)} preflight check(s) failed; nothing was changed"
        raise PreflightFailed(plan_name, bad)


def resolve_points_or_abort(resolve: Callable[[str], Any], rt: Runtime, report: Report) -> None:
    """Run the points-resolving task; without a valid point for every unit the run stops, nothing written."""
    try:
        resolve(rt.key)
    except RecoveryPointError as exc:
        report.outcome = "aborted: no valid recovery point; nothing was changed"
        raise RecoveryPointError(f"{exc}\nnothing was changed") from None


# -- runtime setup -----------------------------------------------------------------------------------------
@contextlib.contextmanager
def open_runtime(
    plan,
    graph,
    *,
    simulate: bool = False,
    estate: str | None = None,
    speed: float = 600.0,
    dry_run: bool = False,
) -> Iterator[Runtime]:
    """Build the run's ASR client, on-prem site and clock (:func:`drplan.run.targets.open_targets`), register
    the runtime, and tear it down after."""
    with open_targets(
        plan, simulate=simulate, estate=estate, speed=speed, secret_loader=_prefect_secret
    ) as targets:
        rt = Runtime(
            plan=plan,
            graph=graph,
            asr=targets.asr,
            onprem=targets.onprem,
            dry_run=dry_run,
            mode=targets.mode,
            clock=targets.clock,
        )
        runtime.register(rt)
        try:
            yield rt
        finally:
            runtime.unregister(rt.key)


def _prefect_secret(name: str) -> str:
    from prefect.blocks.system import Secret

    return Secret.load(name).get()


# -- one run per plan ------------------------------------------------------------------------------------
@contextlib.contextmanager
def exclusive_run(plan_name: str, flow_kind: str, *, enabled: bool = True) -> Iterator[PlanLock | None]:
    """Refuse to start while another run of the same plan is active; tag this flow run with the plan.

    Two guards: a host-local ``flock`` (dropped by the kernel when its process dies) and the API: an active
    flow run tagged with the plan. An active run that the lock file names as the previous, now dead, holder
    is a leftover of a killed process: it is marked Crashed and this run continues from ASR's state.
    """
    if not enabled:  # a dry run writes nothing: it neither takes nor waits for the plan
        yield None
        return
    run_id = str(current_flow_run.id or "")
    lock = PlanLock(plan_name, lock_dir(PREFECT_HOME.value()))
    previous = lock.acquire(flow_run=run_id, flow=flow_kind)
    try:
        if run_id:
            _claim_in_api(plan_name, flow_kind, run_id, previous)
        yield lock
    finally:
        lock.release()


def _claim_in_api(plan_name: str, flow_kind: str, run_id: str, previous: dict) -> None:
    tag = plan_tag(plan_name)
    with get_client(sync_client=True) as client:
        me = client.read_flow_run(run_id)
        client.update_flow_run(me.id, tags=sorted({*me.tags, "drplan", tag, f"drplan-flow:{flow_kind}"}))
        active = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[tag]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE)),
            )
        )
        for other in active:
            if str(other.id) == run_id:
                continue
            stale = previous.get("flow_run") == str(other.id) and previous.get("host") == socket.gethostname()
            if stale:
                client.set_flow_run_state(
                    other.id,
                    Crashed(message=f"its process (pid {previous.get('pid')}) died; superseded by {run_id}"),
                    force=True,
                )
                get_run_logger().warning(
                    "flow run %s (%s) of plan %s was left running by a killed process: "
                    "marked Crashed; continuing from ASR's state",
                    other.name,
                    other.id,
                    plan_name,
                )
                continue
            raise PlanBusy(
                f"plan {plan_name} already has an active run: flow run {other.name} ({other.id}) is "
                f"{other.state_name or other.state_type}; wait for it to finish or cancel it "
                f"(prefect flow-run cancel {other.id})"
            )


# -- the ONE submit function -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    """A post-graph stage: a step kind run per unit, or once for the whole plan (a gate) as node ``node``."""

    kind: str
    per_unit: bool = True
    node: str = ""


@dataclass
class Submitted:
    futures: dict[tuple[str, str], PrefectFuture] = field(default_factory=dict)  # (kind, node) -> future
    terminal: dict[str, PrefectFuture] = field(
        default_factory=dict
    )  # graph node -> its last graph-phase future

    @property
    def all(self) -> list[PrefectFuture]:
        return list(self.futures.values())


def submit_graph(
    rt: Runtime,
    *,
    unit_steps: Sequence[str] = ("failback", "verify"),
    hook_kind: str = "hook",
    flow_kind: str = "failback",
    then: Sequence[Stage] = (),
) -> Submitted:
    """Turn the compiled plan graph into task submissions whose ``wait_for`` edges are the plan's edges.

    Graph phase, in topological order: a unit becomes a chain of ``unit_steps`` tasks (e.g. ``failback X`` →
    ``verify X``), a hook one ``hook_kind`` task; a node's first task waits for the terminal task of each of
    its graph predecessors (hooks that do not run in ``flow_kind`` are looked through). Then each ``then``
    stage: a gate waits for the graph's sinks; a per-unit stage waits for the gate just before it, or else
    for the unit's previous task. Every ``wait_for`` is ``allow_failure`` so a failed upstream leads to an
    explicit *Skipped* state naming the reason, never a silent NotReady.

    A task is submitted only once every upstream future is done (a scheduler loop fed by done-callbacks), so
    no worker thread sits blocked on ``wait_for`` and the pool bound is the real concurrency. Per-unit
    ``then`` stages (commit, reprotect, cleanup) run at most :data:`MAX_COMMITS` at once per kind: the commit
    gate releases them in a bounded stream, not one burst. Returns once every task has been submitted.
    """
    specs, terminal = _plan_submissions(rt, unit_steps, hook_kind, flow_kind, then)
    capped = {stage.kind for stage in then if stage.per_unit}
    out = _run_submissions(rt.key, specs, capped, max(1, MAX_COMMITS))
    out.terminal = {node: out.futures[k] for node, k in terminal.items()}
    return out


Key = tuple[str, str]  # (step kind, node)


def _plan_submissions(
    rt: Runtime, unit_steps: Sequence[str], hook_kind: str, flow_kind: str, then: Sequence[Stage]
) -> tuple[dict[Key, list[Key]], dict[str, Key]]:
    """Every (kind, node) task to submit, in submission order, with the keys of its upstream tasks; and
    each graph node's last graph-phase task."""
    graph = rt.graph
    specs: dict[Key, list[Key]] = {}
    terminal: dict[str, Key] = {}
    nodes = [n for n in graph.order if stepkinds.in_flow(rt, n, flow_kind)]
    preds = {n: stepkinds.effective_predecessors(rt, n, flow_kind) for n in nodes}
    for node in nodes:
        upstream = [terminal[p] for p in preds[node]]
        kinds = (hook_kind,) if graph.units[node].kind == "hook" else tuple(unit_steps)
        for kind in kinds:
            specs[(kind, node)] = upstream
            upstream = [(kind, node)]
        terminal[node] = upstream[0]

    has_succ = {p for n in nodes for p in preds[n]}
    sinks = [terminal[n] for n in nodes if n not in has_succ]
    units = [n for n in nodes if graph.units[n].kind != "hook"]
    last = {n: [terminal[n]] for n in units}
    gate: list[Key] | None = None
    for stage in then:
        if not stage.per_unit:
            specs[(stage.kind, stage.node)] = sinks
            gate = [(stage.kind, stage.node)]
            continue
        for n in units:
            specs[(stage.kind, n)] = list(gate if gate is not None else last[n])
            last[n] = [(stage.kind, n)]
        gate = None
    return specs, terminal


def _run_submissions(key: str, specs: dict[Key, list[Key]], capped: set[str], cap: int) -> Submitted:
    """Submit each task when all its upstream futures are done (``wait_for`` still names them, for the
    API's edges); at most ``cap`` running tasks of each kind in ``capped``."""
    out = Submitted()
    done: queue.SimpleQueue[Key] = queue.SimpleQueue()
    finished: set[Key] = set()
    waiting = {k: set(ups) for k, ups in specs.items()}
    dependents: dict[Key, list[Key]] = {}
    for k, ups in specs.items():
        for u in set(ups):
            dependents.setdefault(u, []).append(k)
    order = {k: i for i, k in enumerate(specs)}
    ready = [k for k, ups in waiting.items() if not ups]
    held: dict[str, list[Key]] = {}  # capped kind -> ready keys waiting for a slot, in submission order
    running: dict[str, int] = {}

    def submit(k: Key) -> None:
        kind, node = k
        upstream = [allow_failure(out.futures[u]) for u in specs[k]]
        future = for_node(kind, key, node).submit(key, node, wait_for=upstream)
        out.futures[k] = future
        running[kind] = running.get(kind, 0) + 1
        future.add_done_callback(lambda _f, k=k: done.put(k))

    def release(keys: list[Key]) -> None:
        for k in sorted(keys, key=order.__getitem__):
            if k[0] in capped and running.get(k[0], 0) >= cap:
                held.setdefault(k[0], []).append(k)
            else:
                submit(k)

    release(ready)
    while len(finished) < len(specs):
        if not any(running.values()):
            raise RuntimeError(f"submit_graph: {len(specs) - len(finished)} task(s) can never be submitted")
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
    out.futures = {k: out.futures[k] for k in specs}
    return out


# -- monitoring: events, progress, report ----------------------------------------------------------------
class Monitor:
    """Listener turning unit transitions into Prefect events and progress-artifact updates."""

    def __init__(self, rt: Runtime, flow_kind: str):
        self.rt, self.flow_kind = rt, flow_kind
        self.units = [n for n, u in rt.graph.units.items() if u.kind != "hook"]
        self.progress_id = None

    def start(self) -> None:
        self.progress_id = create_progress_artifact(
            0.0,
            key=_artifact_key(self.rt.plan.name, "progress"),
            description=f"{self.flow_kind} of plan {self.rt.plan.name}: units done / total",
        )

    def __call__(self, event: UnitEvent) -> None:
        if event.run_key != self.rt.key:
            return
        plan = self.rt.plan.name
        emit_event(
            event=f"drplan.unit.{event.transition}",
            resource={
                "prefect.resource.id": f"drplan.unit.{plan}.{event.node}",
                "prefect.resource.name": event.node,
                "drplan.plan": plan,
                "drplan.kind": self.rt.graph.units[event.node].kind
                if event.node in self.rt.graph.units
                else "gate",
            },
            payload={"message": event.message, "flow": self.flow_kind, "mode": self.rt.mode, **event.payload},
        )
        if self.progress_id is not None and event.transition in ("verified", "failed", "skipped"):
            final = {
                NodeStatus.verified,
                NodeStatus.committed,
                NodeStatus.reprotected,
                NodeStatus.failed,
                NodeStatus.skipped,
            }
            done = sum(1 for u in self.units if self.rt.get(u) in final)
            with contextlib.suppress(Exception):
                update_progress_artifact(self.progress_id, 100.0 * done / max(1, len(self.units)))

    def finish(self) -> None:
        if self.progress_id is not None:
            with contextlib.suppress(Exception):
                update_progress_artifact(self.progress_id, 100.0)


def _artifact_key(plan_name: str, what: str) -> str:
    # artifact keys: lowercase letters, numbers and dashes only
    import re

    return re.sub(r"[^a-z0-9-]+", "-", f"drplan-{plan_name}-{what}".lower()).strip("-")


def publish_report(report: Report, flow_kind: str) -> None:
    """The run's markdown report and the same rows as a table artifact."""
    create_markdown_artifact(
        report.markdown(),
        key=_artifact_key(report.plan_name, f"{flow_kind}-report"),
        description=f"drplan {flow_kind} report for plan {report.plan_name}",
    )
    rows = report.table()
    if rows:
        create_table_artifact(
            rows,
            key=_artifact_key(report.plan_name, f"{flow_kind}-table"),
            description=f"drplan {flow_kind} per-VM rows for plan {report.plan_name}",
        )


def wait_all(submitted: Submitted) -> None:
    wait(submitted.all)


def record_submitted(count: int) -> None:
    run_id = current_flow_run.id
    if run_id:
        SUBMITTED[str(run_id)] = count


def plan_path(plan: str | os.PathLike) -> Path:
    return Path(plan).expanduser()


def result_summary(rt: Runtime, report: Report, **extra: Any) -> dict[str, Any]:
    failed, skipped = outcome(rt)
    return {
        "plan": rt.plan.name,
        "mode": rt.mode,
        "outcome": report.outcome,
        "failed": failed,
        "skipped": skipped,
        "rows": report.table(),
        "would": list(rt.would),
        **extra,
    }


# -- CLI support (the drplan library must not import Prefect) -----------------------------------------------
def resume_when_paused(flow_run_id, answer, *, timeout: float = 300.0) -> bool:
    """Wait until the flow run is Paused, then resume it with ``answer()`` as its run input."""
    import time

    from prefect.flow_runs import resume_flow_run

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if run.state and run.state.is_paused():
                break
            if (run.state and run.state.is_final()) or time.monotonic() > deadline:
                return False
            time.sleep(0.5)
    resume_flow_run(flow_run_id, run_input=answer())
    return True


def wait_until_recorded(flow_run_id, expected: int, timeout: float = 60.0) -> bool:
    """Wait (bounded) until the API has recorded every task run of the flow run, each in a final state.

    The ephemeral local server dies with this process together with its unrecorded events (prefect-notes §1),
    so the CLI calls this before exiting.
    """
    import time

    from prefect.client.schemas.filters import FlowRunFilterId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            if len(runs) >= expected and all(r.state and r.state.is_final() for r in runs):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)
