"""Drill step kinds: test failover, verify the test VM, drill hooks, the drill-complete gate, cleanup and
after-cleanup hooks. Thin: each is :func:`tasks.common.run_step` over :data:`drplan.drill.steps.STEPS`."""

from __future__ import annotations

from prefect import task

import drplan.drill.steps  # noqa: F401  (adds the drill step kinds to drplan.run.steps.STEPS)
from tasks.common import TASK_OPTIONS, step_task

test_failover = step_task(
    "test-failover",
    retries=3,
    doc="Test-fail a VM or replication group over to the plan's isolated test network and wait for ASR.",
)
drill_verify = step_task(
    "drill-verify",
    retries=0,
    doc="Verify every member's test VM: powered on, VMware Tools running, guest IP, within the boot timeout.",
)
drill_hook = step_task(
    "drill-hook",
    retries=0,
    doc="Run a drill hook (approvals stop an unattended drill only when the plan says so).",
)
drill_complete = step_task(
    "drill-complete", retries=0, doc="Every unit and hook of the drill has finished: start the cleanup."
)
drill_cleanup = step_task(
    "drill-cleanup",
    retries=3,
    doc="Clean up the unit's test failovers (removes the test VMs), whatever happened before.",
)
after_cleanup = step_task(
    "after-cleanup",
    retries=0,
    doc="Run an after-cleanup hook (undo drill-time changes); runs also when the drill failed.",
)


@task(name="drill-preflight", task_run_name="preflight", retries=3, **TASK_OPTIONS)
def drill_preflight(run_key: str) -> list[dict]:
    """The failback preconditions plus the drill's own (replicating to on-prem, test network)."""
    from drplan.run import context as runtime

    checks = drplan.drill.steps.preflight(runtime.get(run_key))
    return [
        {"name": c.name, "ok": c.ok, "message": c.message, "subject": c.subject, "rule": c.rule}
        for c in checks
    ]


@task(name="drill-resolve-points", task_run_name="resolve recovery points", retries=3, **TASK_OPTIONS)
def drill_resolve_points(run_key: str) -> dict:
    """Each VM's point by the plan's policy; a drill measures its age (RPO) instead of refusing it."""
    from drplan.run import context as runtime

    return drplan.drill.steps.resolve_points(runtime.get(run_key))
