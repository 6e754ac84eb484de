"""Hook nodes of any run: shell (with timeout), approval (the run's approver) and wait (the run's clock).

A shell hook gets a minimal environment plus the variables it declares (``env``); every known secret value
is redacted from what it prints before that reaches a report, an event, a log or the terminal. Under
``--simulate`` a shell hook runs only when it opts in (``in_simulation``): a simulation must never switch a
real load balancer. Approvals record who answered and what, in the report, the log and an event.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Iterable, Mapping

from drplan.errors import DrplanError
from drplan.plan.schema import ShellHook, WaitHook, format_duration
from drplan.run.context import NodeStatus, RunContext
from drplan.run.ports import Approval
from drplan.run.run_plan import hook_of
from drplan.run.steps import Step, blocked_by_dependencies

log = logging.getLogger(__name__)

#: what every shell hook gets from drplan's environment, whatever it declares
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME")
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL", re.I)
REDACTED = "***"


class NotRun(dict):
    """A hook's result when it did not run (a simulation): its dependents go on, but the orchestrator never
    shows it as success. ``self["result"]`` says why."""


def hook_node(ctx: RunContext, node: str) -> dict[str, str]:
    """Run a hook node: shell (with timeout), approval (the run's approver) or wait (run's clock)."""
    hook = hook_of(ctx.graph, node)
    ctx.set(node, NodeStatus.running)
    if isinstance(hook, ShellHook):
        if ctx.dry_run:
            ctx.note(f"hook {node}: would run `{hook.command}` (timeout {format_duration(hook.timeout)})")
            return {"hook": node, "result": "dry-run"}
        if ctx.mode != "real" and not hook.in_simulation:
            return _not_run(ctx, node, "not run in simulation (the hook does not set in_simulation: true)")
        result = run_shell(ctx, node, hook)
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
        ctx.report.update(node, node, kind="hook", status="done", note=result)
    return {"hook": node, "result": result}


def _not_run(ctx: RunContext, node: str, why: str) -> NotRun:
    ctx.set(node, NodeStatus.done)
    ctx.emit(node, "hook-not-run", why)
    if ctx.report is not None:
        ctx.report.update(node, node, kind="hook", status="not run", note=why)
        ctx.report.not_run[node] = why
    return NotRun(hook=node, result=why)


def hook_env(ctx: RunContext, node: str, hook: ShellHook, environ: Mapping[str, str]) -> dict[str, str]:
    """The hook's environment: the basics, the variables it declares, and which run it is part of."""
    env = {k: environ[k] for k in (*BASE_ENV, *hook.env) if k in environ}
    env.update(DRPLAN_PLAN=ctx.plan.name, DRPLAN_HOOK=node, DRPLAN_MODE=ctx.mode)
    return env


def known_secrets(ctx: RunContext, environ: Mapping[str, str]) -> list[str]:
    """Values to redact: variables whose names say secret, and the variable the plan's vCenter password is
    read from. Longest first, so a secret that contains another is redacted whole."""
    names = {k for k in environ if _SECRET_NAME.search(k)}
    ref = ctx.plan.vcenter.password if ctx.plan.vcenter is not None else None
    env_name = getattr(ref, "env", None)
    if env_name:
        names.add(env_name)
    values = {environ[n] for n in names if len(environ.get(n, "")) >= 4}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    for value in secrets:
        text = text.replace(value, REDACTED)
    return text


def run_shell(ctx: RunContext, node: str, hook: ShellHook) -> str:
    """Run the hook's command; its last output line on success, a redacted error with its tail otherwise."""
    environ = dict(os.environ)
    secrets = known_secrets(ctx, environ)
    command = redact(hook.command, secrets)
    try:
        proc = subprocess.run(
            hook.command,
            shell=True,
            capture_output=True,
            text=True,
            timeout=hook.timeout,
            env=hook_env(ctx, node, hook, environ),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DrplanError(
            f"hook {node}: `{command}` did not finish within {format_duration(hook.timeout)}"
        ) from None
    if proc.returncode != 0:
        tail = redact((proc.stderr or proc.stdout).strip(), secrets).splitlines()[-5:]
        raise DrplanError(f"hook {node}: `{command}` exited {proc.returncode}: " + " | ".join(tail))
    return redact((proc.stdout.strip().splitlines() or [""])[-1], secrets)


def approval_details(ctx: RunContext) -> str:
    """What an approver needs to see: each unit, its status, the point it failed back to and the data loss."""
    if ctx.report is None:
        return ""
    lines = []
    for u in ctx.report.unit_rows():
        if not u["VMs"]:
            continue
        point = f", point {u['point']}" if u["point"] else ""
        loss = f", data loss {u['data loss']}" if u["data loss"] else ""
        vms = "" if u["VMs"] == u["unit"] else f" ({u['VMs']})"
        lines.append(f"- {u['unit']}{vms}: {u['status']}{point}{loss}")
    return "\n".join(lines)


def ask(ctx: RunContext, node: str, prompt: str) -> Approval:
    """Ask the run's approver about ``node`` (an approval hook or a gate), announcing it first; record who
    answered and what in the report, the log and an event."""
    details = approval_details(ctx)
    full = f"{prompt}\n\n{details}" if details else prompt
    ctx.emit(node, "approval-requested", full, run_id=ctx.inputs.run_id)
    answer = ctx.ports.approver(node, full)
    verdict = "approved" if answer.approved else "declined"
    who = answer.approver or "nobody named"
    line = f"{node}: {verdict} by {who}" + (f": {answer.comment}" if answer.comment else "")
    log.warning("approval %s", line)
    ctx.emit(
        node,
        f"approval-{verdict}",
        line,
        approver=answer.approver,
        comment=answer.comment,
        approved=answer.approved,
    )
    if ctx.report is not None:
        said = f": “{answer.comment}”" if answer.comment else ""
        ctx.report.approvals.append(f"**{node}** {verdict} by **{who}** at {ctx.clock.now():%H:%M:%S}{said}")
    return answer


def declined_by(answer: Approval) -> str:
    return (f" by {answer.approver}" if answer.approver else "") + (
        f": {answer.comment}" if answer.comment else ""
    )


#: the hook step of failbacks and reprotects (a drill has its own: approvals stop a drill only on request)
HOOK_STEP = Step("hook", hook_node, blocked_by_dependencies, doc="Run one hook node of the plan.")
