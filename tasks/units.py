"""Per-unit step kinds of a failback: failback, verify, commit, reprotect (to Azure)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from tasks.common import only_transient, register, run_step

_COMMON = dict(cache_policy=NONE, retry_condition_fn=only_transient, retry_delay_seconds=[2, 10, 30])


@task(name="failback", retries=3, **_COMMON)
def failback(run_key: str, node: str):
    """Fail a VM or replication group back to its resolved point(s) and wait for the ASR job(s)."""
    return run_step("failback", run_key, node)


@task(name="verify", retries=0, **_COMMON)
def verify(run_key: str, node: str):
    """Verify every member on-prem: powered on, VMware Tools running, guest IP, within the boot timeout."""
    return run_step("verify", run_key, node)


@task(name="commit", retries=3, **_COMMON)
def commit(run_key: str, node: str):
    """Commit the failback (deletes the failed-over Azure VM). Only for verified units; at most once."""
    return run_step("commit", run_key, node)


@task(name="reprotect", retries=3, **_COMMON)
def reprotect(run_key: str, node: str):
    """Reprotect on-prem -> Azure, retrying "agent isn't installed" within the registration window."""
    return run_step("reprotect", run_key, node)


for _t in (failback, verify, commit, reprotect):
    register(_t.name, _t)
