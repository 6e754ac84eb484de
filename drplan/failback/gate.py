"""The commit gate of a failback: nothing is committed before every unit is verified, and approved when
the commit policy asks for it."""

from __future__ import annotations

from drplan.plan.schema import CommitPolicy
from drplan.run.context import SUCCESS, NodeStatus, RunContext
from drplan.run.hooks import ask, declined_by
from drplan.run.outcomes import SkipStep

GATE = "commit-gate"


def commit_gate(ctx: RunContext, node: str = GATE) -> dict[str, str]:
    """Decide whether anything may be committed: every unit verified, and approval when the policy asks."""
    policy = ctx.inputs.commit_policy
    units = [u.name for u in ctx.graph.units.values() if u.kind != "hook"]
    unverified = [u for u in units if ctx.get(u) not in SUCCESS]
    if unverified and not ctx.dry_run:
        raise SkipStep(f"nothing committed: not every unit was verified ({', '.join(unverified)})")
    if policy == CommitPolicy.approval:
        if ctx.dry_run:
            ctx.note("commit: would pause for approval, then commit every unit")
            return {"gate": "dry-run"}
        prompt = (
            f"Commit the failback of {len(units)} unit(s) of plan {ctx.plan.name}? "
            "This deletes the Azure VMs."
        )
        answer = ask(ctx, node, prompt)
        if not answer.approved:
            raise SkipStep(f"commit declined{declined_by(answer)}")
    ctx.set(node, NodeStatus.done)
    ctx.emit(node, "commit-approved" if policy == CommitPolicy.approval else "commit-ready")
    return {"gate": "open"}
