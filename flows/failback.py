"""Flow ``failback``: a recovery plan failed back from Azure to on-prem VMware as a Prefect flow run whose
task graph is the plan graph (:mod:`drplan.failback.kind`): preflight → recovery points → per unit in graph
order ``failback X`` → ``verify X`` with hooks as their own nodes → ``approve commit`` → ``commit X`` →
``reprotect X`` → report."""

from __future__ import annotations

from prefect import flow

from drplan.failback.kind import FAILBACK
from drplan.plan.schema import CommitPolicy
from flows.run import SettingsTaskRunner, run_kind, run_namer


@flow(name="failback", flow_run_name=run_namer("failback"), task_runner=SettingsTaskRunner(), log_prints=True)
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
            latest-app-consistent, common-app-consistent).
        commit: commit policy override (after-verification, approval, never).
        reprotect: reprotect back to Azure after commit (also needs the plan's reprotect_to_azure.enabled).
        simulate: run against the embedded simulated estate generated from the plan.
        dry_run: every read (preflight, points), no write; returns and prints what it would do.
        estate: simulated estate YAML (implies simulate).
        speed: simulated seconds per wall-clock second.
    """
    return run_kind(
        FAILBACK,
        plan,
        recovery_point=recovery_point,
        commit=commit,
        reprotect=reprotect,
        simulate=simulate,
        dry_run=dry_run,
        estate=estate,
        speed=speed,
    )
