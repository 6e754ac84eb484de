"""Per-unit step kinds of a failback: failback, verify, commit, reprotect (to Azure)."""

from __future__ import annotations

from tasks.common import step_task

failback = step_task(
    "failback",
    retries=3,
    doc="Fail a VM or replication group back to its resolved point(s) and wait for the ASR job(s).",
)
verify = step_task(
    "verify",
    retries=0,
    doc="Verify every member on-prem: powered on, VMware Tools running, guest IP, within the boot timeout.",
)
commit = step_task(
    "commit",
    retries=3,
    doc="Commit the failback (deletes the failed-over Azure VM). Only for verified units; at most once.",
)
reprotect = step_task(
    "reprotect",
    retries=3,
    doc='Reprotect on-prem -> Azure, retrying "agent isn\'t installed" within the registration window.',
)
