"""Hook nodes (shell, approval, wait) and the commit gate. Approvals pause the flow run for input."""

from __future__ import annotations

import os

from prefect import task
from prefect.cache_policies import NONE
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from tasks.common import register, run_step

APPROVAL_TIMEOUT = int(os.environ.get("DRPLAN_APPROVAL_TIMEOUT", str(24 * 3600)))


class Approval(RunInput):
    """What an approver sends (UI form or ``resume_flow_run(id, run_input={...})``)."""

    approved: bool = True
    approver: str = ""
    comment: str = ""


def approve(node: str, prompt: str) -> tuple[bool, str, str]:
    """Pause the flow run until someone answers; the run stays up (no deployment needed)."""
    from prefect import get_run_logger

    get_run_logger().warning("waiting for approval %s: %s", node, prompt)
    poll = int(os.environ.get("DRPLAN_APPROVAL_POLL_SECONDS", "5"))
    answer = pause_flow_run(
        wait_for_input=Approval.with_initial_data(description=prompt),
        timeout=APPROVAL_TIMEOUT,
        poll_interval=poll,
        key=f"approval-{node}",
    )
    return answer.approved, answer.approver, answer.comment


@task(name="hook", cache_policy=NONE)
def hook(run_key: str, node: str):
    """Run one hook node of the plan."""
    return run_step("hook", run_key, node)


@task(name="gate", cache_policy=NONE)
def commit_gate(run_key: str, node: str):
    """Open the commit stage: every unit verified, and approved when the commit policy asks for it."""
    return run_step("gate", run_key, node)


register("hook", hook)
register("gate", commit_gate)
