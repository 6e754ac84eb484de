"""Flow ``failback``: a recovery plan failed back from Azure to on-prem VMware as a Prefect flow run whose
task graph is the plan graph.

Stages: load + compile → preflight (every precondition; abort before any write) → resolve recovery points
→ per unit in graph order: ``failback X`` → ``verify X`` (dependents wait for verification, never for a
wave) with hooks as their own nodes → ``approve commit`` gate → ``commit X`` → ``reprotect X`` → report.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

import tasks.units  # noqa: F401  (registers the failback, verify, commit and reprotect step kinds)
from drplan.failback.point_choice import parse_overrides
from drplan.plan.graph import load_and_compile
from drplan.plan.schema import CommitPolicy
from drplan.run.hooks import GATE
from drplan.run.outcomes import RunFailed, outcome
from drplan.run.report import Report
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
    start_monitor,
    submit_graph,
    wait_all,
)
from tasks.preflight import preflight, resolve_points

FLOW_KIND = "failback"


def failback_stages(commit_policy: CommitPolicy, reprotect: bool) -> list[Stage]:
    """Post-graph stages by policy: gate → commit → reprotect; ``never`` commits (and reprotects) nothing."""
    if commit_policy == CommitPolicy.never:
        return []
    stages = [Stage("gate", per_unit=False, node=GATE), Stage("commit")]
    if reprotect:
        stages.append(Stage("reprotect"))
    return stages


@flow(
    name="failback",
    flow_run_name=run_namer(),
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS),
    log_prints=True,
)
def failback(
    plan: str,
    recovery_point: list[str] | None = None,
    commit: CommitPolicy | None = None,
    reprotect: bool = True,
    simulate: bool = False,
    dry_run: bool = False,
    estate: str | None = None,
    speed: float = 600.0,
) -> dict:
    """Fail the plan's VMs back to on-prem in dependency order, verify, commit by policy, reprotect to Azure.

    Args:
        plan: path of the plan YAML.
        recovery_point: overrides, ``POLICY`` for every unit or ``UNIT=POLICY`` (latest,
            latest-app-consistent,
            common-app-consistent).
        commit: commit policy override (after-verification, approval, never).
        reprotect: reprotect back to Azure after commit (also needs the plan's reprotect_to_azure.enabled).
        simulate: run against the embedded simulated estate generated from the plan.
        dry_run: every read (preflight, points), no write; returns and prints what it would do.
        estate: simulated estate YAML (implies simulate).
        speed: simulated seconds per wall-clock second.
    """
    logger = get_run_logger()
    the_plan, graph = load_and_compile(plan_path(plan))
    overrides = parse_overrides(recovery_point, graph.units)
    policy = CommitPolicy(commit) if commit else the_plan.failback.commit
    do_reprotect = reprotect and the_plan.failback.reprotect_to_azure.enabled

    with (
        exclusive_run(the_plan.name, FLOW_KIND, enabled=not dry_run),
        open_runtime(the_plan, graph, simulate=simulate, estate=estate, speed=speed, dry_run=dry_run) as rt,
    ):
        rt.overrides, rt.commit_policy, rt.reprotect = overrides, policy, do_reprotect
        rt.started_at = rt.clock.now()
        rt.report = report = Report(the_plan.name, rt.mode + (" (dry run)" if dry_run else ""), rt.started_at)
        for unit in graph.units.values():
            for vm in unit.vms:
                report.row(unit.name, vm.name, unit.kind)
        ask_approvals_through_prefect(rt)
        monitor = start_monitor(rt, FLOW_KIND)
        try:
            record_submitted(1)
            checks = preflight(rt.key)
            abort_on_failed_preflight(report, the_plan.name)
            logger.info("preflight: %d checks passed", len(checks))
            record_submitted(2)
            resolve_points_or_abort(resolve_points, rt, report)
            submitted = submit_graph(
                rt,
                unit_steps=("failback", "verify"),
                flow_kind=FLOW_KIND,
                then=failback_stages(policy, do_reprotect),
            )
            record_submitted(len(submitted.all) + 2)
            wait_all(submitted)
            failed, skipped = outcome(rt)
            not_done = rt.extra.get("not_done", {})
            if dry_run:
                report.outcome = "dry run: nothing was changed"
                for line in rt.would:
                    logger.info("would: %s", line)
            elif failed or skipped:
                report.outcome = f"failed: {len(failed)} failed, {len(skipped)} skipped"
            elif not_done:
                report.outcome = "failed back and verified; not committed: " + "; ".join(
                    f"{k}: {v}" for k, v in not_done.items()
                )
            elif policy == CommitPolicy.never:
                report.outcome = "failed back and verified; not committed (commit policy: never)"
            else:
                report.outcome = "completed"
            if failed or skipped:
                raise RunFailed(the_plan.name, failed, skipped)
            return result_summary(rt, report, commit=str(policy), not_done=not_done)
        finally:
            report.finished_at = rt.clock.now()
            if not report.outcome:
                report.outcome = "failed"
            monitor.finish()
            publish_report(report, FLOW_KIND)
