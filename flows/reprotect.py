"""Flow ``reprotect``: reprotect a plan's VMs from Azure to on-prem (``InMageReprotectInput``), the step that
prepares a failback, as a Prefect flow run whose task graph is the plan graph.

Stages: load + compile → preflight (master-target rules, phases, inputs; abort before any write) → per unit
in graph order: ``reprotect-onprem X`` → then per unit ``replication-health X`` (waits until ASR reports
replication health Normal) → report per VM.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from drplan.plan.graph import load_and_compile
from drplan.reprotect_to_onprem import steps as reprotectlib
from drplan.run.outcomes import RunFailed, outcome
from flows.common import (
    MAX_WORKERS,
    Stage,
    abort_on_failed_preflight,
    exclusive_run,
    open_runtime,
    plan_path,
    publish_report,
    record_submitted,
    result_summary,
    run_namer,
    simulated_estate_file,
    start_monitor,
    submit_graph,
    wait_all,
)
from tasks.reprotect import reprotect_preflight

FLOW_KIND = reprotectlib.FLOW_KIND


class ReprotectFailed(RunFailed):
    """Some units were not reprotected. One message names them all."""

    def __init__(self, plan: str, failed: dict[str, str], skipped: dict[str, str]):
        super().__init__(plan, failed, skipped)
        self.args = (str(self).replace(f"failback of plan {plan}", f"reprotect of plan {plan}", 1),)

    def __str__(self) -> str:
        return self.args[0]


@flow(
    name="reprotect",
    flow_run_name=run_namer("reprotect"),
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS),
    log_prints=True,
)
def reprotect(
    plan: str,
    simulate: bool = False,
    dry_run: bool = False,
    estate: str | None = None,
    speed: float = 600.0,
) -> dict:
    """Reprotect the plan's VMs Azure → on-prem with the plan's master targets and ``reprotect`` inputs, and
    wait until their replication is healthy.

    Args:
        plan: path of the plan YAML.
        simulate: run against the embedded simulated estate generated from the plan (VMs in Azure).
        dry_run: every read (preflight), no write; returns and prints what it would do.
        estate: simulated estate YAML (implies simulate).
        speed: simulated seconds per wall-clock second.
    """
    logger = get_run_logger()
    the_plan, graph = load_and_compile(plan_path(plan))
    with (
        exclusive_run(the_plan.name, FLOW_KIND),
        simulated_estate_file(reprotectlib.simulated_estate, the_plan, simulate, estate) as est,
        open_runtime(the_plan, graph, simulate=simulate, estate=est, speed=speed, dry_run=dry_run) as rt,
    ):
        rt.reprotect = False
        rt.started_at = rt.clock.now()
        rt.report = report = reprotectlib.new_report(rt)
        monitor = start_monitor(rt, FLOW_KIND)
        try:
            checks = reprotect_preflight(rt.key)
            abort_on_failed_preflight(report, the_plan.name)
            logger.info(
                "preflight: %d checks passed; %d VM(s) to reprotect",
                len(checks),
                len(rt.extra.get("todo", {})),
            )
            submitted = submit_graph(
                rt, unit_steps=("reprotect-onprem",), flow_kind=FLOW_KIND, then=[Stage("replication-health")]
            )
            record_submitted(len(submitted.all) + 1)
            wait_all(submitted)
            failed, skipped = outcome(rt)
            if dry_run:
                report.outcome = "dry run: nothing was changed"
                for line in rt.would:
                    logger.info("would: %s", line)
            elif failed or skipped:
                report.outcome = f"failed: {len(failed)} failed, {len(skipped)} skipped"
            else:
                report.outcome = "completed: every VM protected toward on-prem, replication health Normal"
            if failed or skipped:
                raise ReprotectFailed(the_plan.name, failed, skipped)
            return result_summary(
                rt, report, columns=("unit", "vm", "status", "reprotect", "health", "inputs")
            )
        finally:
            report.finished_at = rt.clock.now()
            if not report.outcome:
                report.outcome = "failed"
            monitor.finish()
            publish_report(report, FLOW_KIND)
