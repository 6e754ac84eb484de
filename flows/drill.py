"""Flow ``drill``: a DR drill of a plan, as a Prefect flow run whose task graph is the plan graph.

Stages: load + compile → preflight (failback preconditions + replicating to on-prem + test network; abort
before any write) → resolve recovery points → per unit in graph order: ``test-failover X`` →
``drill-verify X`` (dependents wait for verification), drill hooks as their own nodes (approvals do not stop
an unattended drill unless the plan says so) → ``drill-complete`` → ``drill-cleanup X`` for every unit
whatever happened → ``after-cleanup`` hooks → report (RTO, RPO, checks per unit against the plan's targets).
Cleanup also runs on failure and cancellation (``finally``: :func:`drplan.drill.finish`).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.futures import wait
from prefect.runtime import flow_run as current_flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import allow_failure

from drplan import drill as drilllib
from drplan import runbook
from drplan.errors import RecoveryPointError
from drplan.graph import load_and_compile
from flows.common import (
    MAX_WORKERS,
    Monitor,
    Stage,
    exclusive_run,
    open_runtime,
    plan_path,
    publish_report,
    record_submitted,
    result_summary,
    submit_graph,
)
from tasks import hooks as hook_tasks
from tasks.common import for_node
from tasks.drill import drill_preflight, drill_resolve_points

FLOW_KIND = drilllib.FLOW_KIND
#: what `drplan drill` prints per unit (the per-VM rows are in the result's ``vms`` and the table artifact)
COLUMNS = ("unit", "vms", "status", "rto", "rpo", "checks", "cleanup")


def _run_name() -> str:
    params = current_flow_run.parameters or {}
    stem = Path(str(params.get("plan", "plan"))).stem
    suffix = "-dry-run" if params.get("dry_run") else ""
    return f"{stem}-drill{suffix}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


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


def submit_after_cleanup(rt, cleanup: list) -> list:
    """The after-cleanup hooks, after every cleanup task and after each other in graph order."""
    futures: dict[str, object] = {}
    hooks = drilllib.after_cleanup_hooks(rt)
    for node in hooks:
        before = [futures[p] for p in rt.graph.predecessors(node) if p in futures]
        futures[node] = for_node("after-cleanup", rt.key, node).submit(
            rt.key, node, wait_for=[allow_failure(f) for f in [*cleanup, *before]]
        )
    return list(futures.values())


@flow(
    name="drill",
    flow_run_name=_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS),
    log_prints=True,
)
def drill(
    plan: str,
    recovery_point: list[str] | None = None,
    simulate: bool = False,
    dry_run: bool = False,
    estate: str | None = None,
    speed: float = 600.0,
) -> dict:
    """Drill the plan: test failover to its isolated test network in graph order, verify, always clean up, and
    report RTO/RPO/checks per unit against ``drill.targets``.

    Args:
        plan: path of the plan YAML.
        recovery_point: overrides, ``POLICY`` for every unit or ``UNIT=POLICY`` (latest,
            latest-app-consistent,
            common-app-consistent).
        simulate: run against the embedded simulated estate generated from the plan.
        dry_run: every read (preflight, points), no write; returns and prints what it would do.
        estate: simulated estate YAML (implies simulate).
        speed: simulated seconds per wall-clock second.
    """
    logger = get_run_logger()
    the_plan, graph = load_and_compile(plan_path(plan))
    overrides = runbook.parse_overrides(recovery_point, graph.units)

    with (
        exclusive_run(the_plan.name, FLOW_KIND),
        simulated_estate_file(drilllib.simulated_estate, the_plan, simulate, estate) as est,
        open_runtime(the_plan, graph, simulate=simulate, estate=est, speed=speed, dry_run=dry_run) as rt,
    ):
        rt.overrides, rt.reprotect = overrides, False
        rt.started_at = rt.clock.now()
        rt.report = report = drilllib.new_report(rt)
        rt.extra["approve"] = hook_tasks.approve
        rt.extra["flow_run_id"] = str(current_flow_run.id or "")
        monitor = Monitor(rt, FLOW_KIND)
        rt.listeners.append(monitor)
        monitor.start()
        started = False
        left: list[str] = []
        try:
            checks = drill_preflight(rt.key)
            bad = [c for c in report.preflight if not c.ok]
            if bad:
                report.outcome = f"aborted: {len(bad)} preflight check(s) failed; nothing was changed"
                raise runbook.PreflightFailed(the_plan.name, bad)
            logger.info("preflight: %d checks passed", len(checks))
            try:
                drill_resolve_points(rt.key)
            except RecoveryPointError as exc:
                report.outcome = "aborted: no valid recovery point; nothing was changed"
                raise RecoveryPointError(f"{exc}\nnothing was changed") from None
            started = True
            submitted = submit_graph(
                rt,
                unit_steps=("test-failover", "drill-verify"),
                hook_kind="drill-hook",
                flow_kind=FLOW_KIND,
                then=[
                    Stage("drill-complete", per_unit=False, node=drilllib.COMPLETE),
                    Stage("drill-cleanup"),
                ],
            )
            cleanup = [f for (kind, _), f in submitted.futures.items() if kind == "drill-cleanup"]
            after = submit_after_cleanup(rt, cleanup)
            record_submitted(len(submitted.all) + len(after) + 2)
            wait([*submitted.all, *after])
        finally:
            left = drilllib.finish(rt, hooks=started)
            failed, skipped = runbook.outcome(rt)
            if report.outcome:
                pass
            elif dry_run:
                report.outcome = "dry run: nothing was changed"
            elif failed or skipped or left:
                report.outcome = (
                    f"failed: {len(failed)} failed, {len(skipped)} skipped; " + drilllib.nothing_left(left)
                )
            elif started:
                missed = drilllib.missed_targets(report)
                report.outcome = (
                    "passed: every unit verified; "
                    + drilllib.nothing_left(left)
                    + ("; targets missed: " + "; ".join(missed) if missed else "; every target met")
                )
            else:
                report.outcome = "stopped before the drill started; " + drilllib.nothing_left(left)
            report.finished_at = rt.clock.now()
            monitor.finish()
            publish_report(report, FLOW_KIND)
        if dry_run:
            for line in rt.would:
                logger.info("would: %s", line)
        if failed or skipped or left:
            raise drilllib.DrillFailed(the_plan.name, failed, skipped, left)
        return result_summary(
            rt, report, rows=report.units(), vms=report.table(), leftovers=left, columns=COLUMNS
        )
