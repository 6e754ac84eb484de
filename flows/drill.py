"""Flow ``drill``: a DR drill of a plan as a Prefect flow run whose task graph is the plan graph
(:mod:`drplan.drill.kind`): test failover → verify per unit in graph order, drill hooks, then cleanup of
every unit whatever happened and the after-cleanup hooks; the report measures RTO/RPO against targets."""

from __future__ import annotations

from prefect import flow

from drplan.drill.kind import DRILL
from flows.run import SettingsTaskRunner, run_kind, run_namer


@flow(name="drill", flow_run_name=run_namer("drill"), task_runner=SettingsTaskRunner(), log_prints=True)
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
            latest-app-consistent, common-app-consistent).
        simulate: run against the embedded simulated estate generated from the plan.
        dry_run: every read (preflight, points), no write; returns and prints what it would do.
        estate: simulated estate YAML (implies simulate).
        speed: simulated seconds per wall-clock second.
    """
    return run_kind(
        DRILL,
        plan,
        recovery_point=recovery_point,
        simulate=simulate,
        dry_run=dry_run,
        estate=estate,
        speed=speed,
    )
