"""Reprotect (Azure → on-prem) step kinds: send it, wait for healthy replication; its preflight.

Thin: each is :func:`tasks.common.run_step` over :data:`drplan.reprotect.STEPS`.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

import drplan.reprotect
from drplan import runtime
from tasks.common import only_transient, register, run_step

_COMMON = dict(cache_policy=NONE, retry_condition_fn=only_transient, retry_delay_seconds=[2, 10, 30])


@task(name="reprotect-onprem", retries=3, **_COMMON)
def reprotect_onprem(run_key: str, node: str):
    """Reprotect a VM or replication group Azure → on-prem (InMageReprotectInput) and wait for the ASR job."""
    return run_step("reprotect-onprem", run_key, node)


@task(name="replication-health", retries=0, **_COMMON)
def replication_health(run_key: str, node: str):
    """Wait until ASR reports every member's replication health Normal."""
    return run_step("replication-health", run_key, node)


@task(name="reprotect-preflight", task_run_name="preflight", retries=3, **_COMMON)
def reprotect_preflight(run_key: str) -> list[dict]:
    """Every reprotect precondition, master-target rules included; never writes."""
    checks = drplan.reprotect.preflight(runtime.get(run_key))
    return [{"name": c.name, "ok": c.ok, "message": c.message, "subject": c.subject} for c in checks]


for _t in (reprotect_onprem, replication_health):
    register(_t.name, _t)
