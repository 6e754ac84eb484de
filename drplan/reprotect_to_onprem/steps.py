"""The reprotect steps: send the reprotect Azure → on-prem per unit, then wait for healthy replication."""

from __future__ import annotations

import logging

from drplan.errors import PreconditionError
from drplan.plan.schema import format_duration
from drplan.run.budgets import budget as job_budget
from drplan.run.context import NodeStatus, RunContext
from drplan.run.fanout import concurrently

log = logging.getLogger(__name__)

HEALTH_POLL = 60.0  # seconds on the run's clock between replication-health reads


def reprotect_unit(ctx: RunContext, unit: str) -> dict[str, str]:
    """Reprotect every member Azure → on-prem (concurrently) and wait for the ASR jobs."""
    ctx.set(unit, NodeStatus.running)
    ctx.emit(unit, "reprotect-started")
    results = dict(concurrently(lambda vm: _reprotect_vm(ctx, unit, vm), list(ctx.graph.units[unit].vms)))
    if not ctx.dry_run:
        ctx.set(unit, NodeStatus.done)  # dependents may start their reprotect; health is awaited per unit
    ctx.emit(unit, "reprotect-sent", ", ".join(f"{k}: {v}" for k, v in results.items()))
    return results


def _reprotect_vm(ctx: RunContext, unit: str, vm) -> tuple[str, str]:
    inputs = ctx.state.reprotect_inputs.get(vm.name)
    if inputs is None:
        return vm.name, "already reprotected"
    if ctx.dry_run:
        ctx.note(f"VM {vm.name}: would reprotect to on-prem via {inputs.describe()}")
        return vm.name, "dry-run"
    if ctx.report is not None:
        ctx.report.update(unit, vm.name, status="reprotecting", note=inputs.describe())
    ref = ctx.state.refs[vm.name]
    if inputs.provider == "modernized":
        job = ctx.asr.reprotect_to_onprem_modernized(
            ref,
            appliance=inputs.appliance or "",
            datastore=inputs.datastore or "",
            log_storage_account=inputs.log_storage_account or "",
            policy=inputs.policy,
            timeout=job_budget(ctx, vm, "reprotect"),
        )
    else:
        job = ctx.asr.reprotect_to_onprem(
            ref,
            master_target_id=inputs.master_target,
            process_server_id=inputs.process_server,
            retention_drive=inputs.retention_drive,
            profile_id=inputs.policy,
            datastore_name=inputs.datastore,
            timeout=job_budget(ctx, vm, "reprotect"),
        )
    if ctx.report is not None:
        ctx.report.update(unit, vm.name, status="reprotected", reprotect=f"sent {ctx.clock.now():%H:%M:%S}")
    return vm.name, "reprotect job " + (job.name or "done")


def _progress(ctx: RunContext, ref, state) -> tuple[int | None, str]:
    """A modernized item's initial replication / resync progress toward on-prem (``None`` on classic)."""
    if state.family != "modernized":
        return None, ""
    return ctx.asr.replication_progress(ref, state=state)


def health_unit(ctx: RunContext, unit: str) -> dict[str, str]:
    """Wait, on the run's clock, until every member's replication health is Normal (bounded)."""
    if ctx.dry_run:
        return {}

    def one(vm) -> tuple[str, str]:
        ref = ctx.state.refs[vm.name]
        budget = job_budget(ctx, vm, "reprotect")
        deadline = ctx.clock.monotonic() + budget
        seen: list[str] = []
        while True:
            state = ctx.asr.item_state(ref)
            health = state.replication_health or "unknown"
            if not seen or seen[-1] != health:
                seen.append(health)
            percent, what = _progress(ctx, ref, state)
            shown = f"{health}, {what} {percent}%" if percent is not None else health
            ctx.emit(
                unit, "replication-health", f"{vm.name}: {shown}", vm=vm.name, health=health, progress=percent
            )
            if ctx.report is not None and percent is not None:
                ctx.report.update(unit, vm.name, verification=f"{what} {percent}%")
            if health.lower() == "normal" and (percent is None or percent >= 100):
                break
            if ctx.clock.monotonic() >= deadline:
                raise PreconditionError(
                    f"reprotect of VM {vm.name}: replication health is still {health} after "
                    f"{format_duration(budget)}; check the process server and master target in ASR",
                    vm=vm.name,
                    operation="reprotect to on-prem",
                    rule="replication health OK",
                )
            ctx.clock.sleep(HEALTH_POLL)
        now = ctx.clock.now()
        what = " → ".join(seen)
        if ctx.report is not None:
            ctx.report.update(
                unit,
                vm.name,
                status="protected",
                verified_at=now,
                verification=f"health {what} at {now:%H:%M:%S}",
            )
        return vm.name, f"health {what}"

    results = dict(concurrently(one, list(ctx.graph.units[unit].vms)))
    ctx.set(unit, NodeStatus.verified)
    ctx.emit(unit, "verified", "; ".join(f"{k}: {v}" for k, v in results.items()), vms=list(results))
    return results
