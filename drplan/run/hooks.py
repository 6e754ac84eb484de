"""Hook nodes of any run: shell (with timeout), approval (the run's approver) and wait (the run's clock)."""

from __future__ import annotations

import os
import subprocess

from drplan.errors import DrplanError
from drplan.plan.schema import ShellHook, WaitHook, format_duration
from drplan.run.context import NodeStatus, RunContext
from drplan.run.ports import Approval
from drplan.run.run_plan import hook_of
from drplan.run.steps import Step, blocked_by_dependencies


def hook_node(ctx: RunContext, node: str) -> dict[str, str]:
    """Run a hook node: shell (with timeout), approval (the run's approver) or wait (run's clock)."""
    hook = hook_of(ctx.graph, node)
    ctx.set(node, NodeStatus.running)
    if isinstance(hook, ShellHook):
        if ctx.dry_run:
            ctx.note(f"hook {node}: would run `{hook.command}` (timeout {format_duration(hook.timeout)})")
            return {"hook": node, "result": "dry-run"}
        env = {**os.environ, "DRPLAN_PLAN": ctx.plan.name, "DRPLAN_HOOK": node, "DRPLAN_MODE": ctx.mode}
        try:
            proc = subprocess.run(
                hook.command,
                shell=True,
                capture_output=True,
                text=True,
                timeout=hook.timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DrplanError(
                f"hook {node}: `{hook.command}` did not finish within {format_duration(hook.timeout)}"
            ) from None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise DrplanError(f"hook {node}: `{hook.command}` exited {proc.returncode}: " + " | ".join(tail))
        result = (proc.stdout.strip().splitlines() or [""])[-1]
    elif isinstance(hook, WaitHook):
        if ctx.dry_run:
            ctx.note(f"hook {node}: would wait {format_duration(hook.duration)}")
            return {"hook": node, "result": "dry-run"}
        ctx.clock.sleep(hook.duration)
        result = f"waited {format_duration(hook.duration)}"
    else:  # approval
        if ctx.dry_run:
            ctx.note(f"hook {node}: would pause for approval: {hook.prompt}")
            return {"hook": node, "result": "dry-run"}
        answer = ask(ctx, node, hook.prompt)
        if not answer.approved:
            raise DrplanError(f"approval {node} was declined{declined_by(answer)}")
        result = "approved" + (f" by {answer.approver}" if answer.approver else "")
    ctx.set(node, NodeStatus.done)
    ctx.emit(node, "hook-done", result)
    if ctx.report is not None:
        ctx.report.update(node, node, status="done", note=result)
    return {"hook": node, "result": result}


def ask(ctx: RunContext, node: str, prompt: str) -> Approval:
    """Ask the run's approver about ``node`` (an approval hook or a gate), announcing it first."""
    ctx.emit(node, "approval-requested", prompt, run_id=ctx.inputs.run_id)
    return ctx.ports.approver(node, prompt)


def declined_by(answer: Approval) -> str:
    return (f" by {answer.approver}" if answer.approver else "") + (
        f": {answer.comment}" if answer.comment else ""
    )


#: the hook step of failbacks and reprotects (a drill has its own: approvals stop a drill only on request)
HOOK_STEP = Step("hook", hook_node, blocked_by_dependencies, doc="Run one hook node of the plan.")
