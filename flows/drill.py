"""Flow ``drill``: a DR drill of a plan, as a Prefect flow run whose task graph is the plan graph.

Stages: load + compile → preflight (failback preconditions + replicating to on-prem + test network; abort
before any write) → resolve recovery points → per unit in graph order: ``test-failover X`` →
``drill-verify X`` (dependents wait for verification), drill hooks as their own nodes (approvals do not stop
an unattended drill unless the plan says so) → ``drill-complete`` → ``drill-cleanup X`` for every unit
whatever happened → ``after-cleanup`` hooks → report (RTO, RPO, checks per unit against the plan's targets).
Cleanup also runs on failure and cancellation (``finally``: :func:`drplan.drill.steps.finish`).
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import allow_failure

from drplan.drill import steps as drilllib
from drplan.drill.cleanup import finish
from drplan.drill.hooks import after_cleanup_hooks
from drplan.drill.report import missed_targets, new_report, nothing_left
from drplan.failback.point_choice import parse_overrides
from drplan.plan.graph import load_and_compile
from drplan.run.outcomes import outcome
from flows.common import (
    MAX_WORKERS,
    Stage,
    abort_on_failed_preflight,
    ask_approvals_through_prefect,
    exclusive_run,
    open_runtime,
    plan_path,
    publish_report,
    record_submitted,
    resolve_points_or_abort,
    result_summary,
    run_namer,
    simulated_estate_file,
    start_monitor,
    submit_graph,
)
from tasks.common import for_node
from tasks.drill import drill_preflight, drill_resolve_points

FLOW_KIND = drilllib.FLOW_KIND
#: what `drplan drill` prints per unit (the per-VM rows are in the result's ``vms`` and the table artifact)
COLUMNS = ("unit", "vms", "status", "rto", "rpo", "checks", "cleanup")


def submit_after_cleanup(rt, cleanup: list) -> list:
    """The after-cleanup hooks, after every cleanup task and after each other in graph order."""
    futures: dict[str, object] = {}
    hooks = after_cleanup_hooks(rt)
    for node in hooks:
        before = [futures[p] for p in rt.graph.predecessors(node) if p in futures]
        futures[node] = for_node("after-cleanup", rt.key, node).submit(
            rt.key, node, wait_for=[allow_failure(f) for f in [*cleanup, *before]]
        )
    return list(futures.values())


@flow(
    name="drill",
    flow_run_name=run_namer("drill"),
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
    overrides = parse_overrides(recovery_point, graph.units)

    with (
        exclusive_run(the_plan.name, FLOW_KIND),
        simulated_estate_file(drilllib.simulated_estate, the_plan, simulate, estate) as est,
        open_runtime(the_plan, graph, simulate=simulate, estate=est, speed=speed, dry_run=dry_run) as rt,
    ):
        rt.overrides, rt.reprotect = overrides, False
        rt.started_at = rt.clock.now()
        rt.report = report = new_report(rt)
        ask_approvals_through_prefect(rt)
        monitor = start_monitor(rt, FLOW_KIND)
        started = False
        left: list[str] = []
        try:
            checks = drill_preflight(rt.key)
            abort_on_failed_preflight(report, the_plan.name)
            logger.info("preflight: %d checks passed", len(checks))
            resolve_points_or_abort(drill_resolve_points, rt, report)
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
            left = finish(rt, hooks=started)
            failed, skipped = outcome(rt)
            if report.outcome:
                pass
            elif dry_run:
                report.outcome = "dry run: nothing was changed"
            elif failed or skipped or left:
                report.outcome = f"failed: {len(failed)} failed, {len(skipped)} skipped; " + nothing_left(
                    left
                )
            elif started:
                missed = missed_targets(report)
                report.outcome = (
                    "passed: every unit verified; "
                    + nothing_left(left)
                    + ("; targets missed: " + "; ".join(missed) if missed else "; every target met")
                )
            else:
                report.outcome = "stopped before the drill started; " + nothing_left(left)
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
