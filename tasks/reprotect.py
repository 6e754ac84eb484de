"""Reprotect (Azure → on-prem) step kinds: send it, wait for healthy replication; its preflight.

Thin: each is :func:`tasks.common.run_step` over :data:`drplan.reprotect_to_onprem.steps.STEPS`.
"""

from __future__ import annotations

from prefect import task

import drplan.reprotect_to_onprem.steps
from drplan.run import context as runtime
from tasks.common import TASK_OPTIONS, step_task

reprotect_onprem = step_task(
    "reprotect-onprem",
    retries=3,
    doc="Reprotect a VM or replication group Azure → on-prem (InMageReprotectInput) and wait for the ASR "
    "job.",
)
replication_health = step_task(
    "replication-health", retries=0, doc="Wait until ASR reports every member's replication health Normal."
)


@task(name="reprotect-preflight", task_run_name="preflight", retries=3, **TASK_OPTIONS)
def reprotect_preflight(run_key: str) -> list[dict]:
    """Every reprotect precondition, master-target rules included; never writes."""
    checks = drplan.reprotect_to_onprem.steps.preflight(runtime.get(run_key))
    return [{"name": c.name, "ok": c.ok, "message": c.message, "subject": c.subject} for c in checks]
