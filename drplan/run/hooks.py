"""Hook nodes (shell, approval, wait) and the commit gate of a failback."""

from __future__ import annotations

import os
import subprocess

from drplan.errors import DrplanError
from drplan.plan.schema import CommitPolicy, format_duration
from drplan.run.context import SUCCESS, NodeStatus, Runtime
from drplan.run.outcomes import SkipStep

GATE = "commit-gate"


def hook_node(rt: Runtime, node: str) -> dict[str, str]:
    """Run a hook node: shell (with timeout), approval (``rt.extra['approve']``) or wait (run's clock)."""
    hook = rt.graph.units[node].hook
    rt.set(node, NodeStatus.running)
    if hook.kind == "shell":
        if rt.dry_run:
            rt.note(f"hook {node}: would run `{hook.command}` (timeout {format_duration(hook.timeout)})")
            return {"hook": node, "result": "dry-run"}
        env = {**os.environ, "DRPLAN_PLAN": rt.plan.name, "DRPLAN_HOOK": node, "DRPLAN_MODE": rt.mode}
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
    elif hook.kind == "wait":
        if rt.dry_run:
            rt.note(f"hook {node}: would wait {format_duration(hook.duration)}")
            return {"hook": node, "result": "dry-run"}
        rt.clock.sleep(hook.duration)
        result = f"waited {format_duration(hook.duration)}"
    else:  # approval
        if rt.dry_run:
            rt.note(f"hook {node}: would pause for approval: {hook.prompt}")
            return {"hook": node, "result": "dry-run"}
        rt.emit(node, "approval-requested", hook.prompt, flow_run_id=rt.extra.get("flow_run_id"))
        approved, by, comment = rt.extra["approve"](node, hook.prompt)
        if not approved:
            raise DrplanError(
                f"approval {node} was declined"
                + (f" by {by}" if by else "")
                + (f": {comment}" if comment else "")
            )
        result = "approved" + (f" by {by}" if by else "")
    rt.set(node, NodeStatus.done)
    rt.emit(node, "hook-done", result)
    if rt.report is not None:
        rt.report.update(node, node, status="done", note=result)
    return {"hook": node, "result": result}


def commit_gate(rt: Runtime, node: str = GATE) -> dict[str, str]:
    """Decide whether anything may be committed: every unit verified, and approval when the policy asks."""
    policy = rt.commit_policy or rt.plan.failback.commit
    units = [u.name for u in rt.graph.units.values() if u.kind != "hook"]
    unverified = [u for u in units if rt.get(u) not in SUCCESS]
    if unverified and not rt.dry_run:
        raise SkipStep(f"nothing committed: not every unit was verified ({', '.join(unverified)})")
    if policy == CommitPolicy.approval:
        if rt.dry_run:
            rt.note("commit: would pause for approval, then commit every unit")
            return {"gate": "dry-run"}
        prompt = (
            f"Commit the failback of {len(units)} unit(s) of plan {rt.plan.name}? This deletes the Azure VMs."
        )
        rt.emit(node, "approval-requested", prompt, flow_run_id=rt.extra.get("flow_run_id"))
        approved, by, comment = rt.extra["approve"](node, prompt)
        if not approved:
            raise SkipStep(
                "commit declined" + (f" by {by}" if by else "") + (f": {comment}" if comment else "")
            )
    rt.set(node, NodeStatus.done)
    rt.emit(node, "commit-approved" if policy == CommitPolicy.approval else "commit-ready")
    return {"gate": "open"}
