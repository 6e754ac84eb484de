"""Flow ``reprotect``: reprotect a plan's VMs from Azure to on-prem (``InMageReprotectInput``), the step that
prepares a failback, as a Prefect flow run whose task graph is the plan graph
(:mod:`drplan.reprotect_to_onprem.kind`): ``reprotect-onprem X`` in graph order, then
``replication-health X``."""

from __future__ import annotations

from prefect import flow

from drplan.reprotect_to_onprem.kind import REPROTECT_TO_ONPREM
from flows.run import SettingsTaskRunner, run_kind, run_namer


@flow(
    name="reprotect", flow_run_name=run_namer("reprotect"), task_runner=SettingsTaskRunner(), log_prints=True
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
    return run_kind(REPROTECT_TO_ONPREM, plan, simulate=simulate, dry_run=dry_run, estate=estate, speed=speed)
