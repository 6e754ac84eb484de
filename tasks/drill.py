"""Drill step kinds: test failover, verify the test VM, drill hooks, the drill-complete gate, cleanup and
after-cleanup hooks. Thin: each is :func:`tasks.common.run_step` over :data:`drplan.drill.STEPS`."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

import drplan.drill  # noqa: F401  (adds the drill step kinds to drplan.runbook.STEPS)
from tasks.common import only_transient, register, run_step

_COMMON = dict(cache_policy=NONE, retry_condition_fn=only_transient, retry_delay_seconds=[2, 10, 30])


@task(name="test-failover", retries=3, **_COMMON)
def test_failover(run_key: str, node: str):
    """Test-fail a VM or replication group over to the plan's isolated test network and wait for ASR."""
    return run_step("test-failover", run_key, node)


@task(name="drill-verify", retries=0, **_COMMON)
def drill_verify(run_key: str, node: str):
    """Verify every member's test VM: powered on, VMware Tools running, guest IP, within the boot timeout."""
    return run_step("drill-verify", run_key, node)


@task(name="drill-hook", retries=0, **_COMMON)
def drill_hook(run_key: str, node: str):
    """Run a drill hook (approvals stop an unattended drill only when the plan says so)."""
    return run_step("drill-hook", run_key, node)


@task(name="drill-complete", retries=0, **_COMMON)
def drill_complete(run_key: str, node: str):
    """Every unit and hook of the drill has finished: start the cleanup."""
    return run_step("drill-complete", run_key, node)


@task(name="drill-cleanup", retries=3, **_COMMON)
def drill_cleanup(run_key: str, node: str):
    """Clean up the unit's test failovers (removes the test VMs), whatever happened before."""
    return run_step("drill-cleanup", run_key, node)


@task(name="after-cleanup", retries=0, **_COMMON)
def after_cleanup(run_key: str, node: str):
    """Run an after-cleanup hook (undo drill-time changes); runs also when the drill failed."""
    return run_step("after-cleanup", run_key, node)


for _t in (test_failover, drill_verify, drill_hook, drill_complete, drill_cleanup, after_cleanup):
    register(_t.name, _t)


@task(
    name="drill-preflight",
    task_run_name="preflight",
    cache_policy=NONE,
    retries=3,
    retry_condition_fn=only_transient,
    retry_delay_seconds=[2, 10, 30],
)
def drill_preflight(run_key: str) -> list[dict]:
    """The failback preconditions plus the drill's own (replicating to on-prem, test network)."""
    from drplan import runtime

    checks = drplan.drill.preflight(runtime.get(run_key))
    return [
        {"name": c.name, "ok": c.ok, "message": c.message, "subject": c.subject, "rule": c.rule}
        for c in checks
    ]


@task(
    name="drill-resolve-points",
    task_run_name="resolve recovery points",
    cache_policy=NONE,
    retries=3,
    retry_condition_fn=only_transient,
    retry_delay_seconds=[2, 10, 30],
)
def drill_resolve_points(run_key: str) -> dict:
    """Each VM's point by the plan's policy; a drill measures its age (RPO) instead of refusing it."""
    from drplan import runtime

    return drplan.drill.resolve_points(runtime.get(run_key))
