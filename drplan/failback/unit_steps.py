"""The failback unit steps: failback, verify on-prem, commit, reprotect to Azure; each over a unit's members.

Every write first reads the item's real phase in ASR, so a re-run after a crash continues where ASR is (no VM
failed back twice, no commit issued twice, in-flight jobs awaited, not re-issued).
"""

from __future__ import annotations

import logging

from drplan.errors import AgentNotInstalledError, PreconditionError, RecoveryPointError
from drplan.failback.preflight import DONE_FAILBACK
from drplan.observed import Phase
from drplan.plan.schema import GroupFailbackMode, RecoveryPointPolicy, format_duration
from drplan.run.budgets import budget
from drplan.run.context import NodeStatus, RunContext
from drplan.run.fanout import concurrently, members

log = logging.getLogger(__name__)


def failback_unit(ctx: RunContext, unit: str) -> dict[str, str]:
    """Fail every member back (concurrently, each to its chosen point) and wait for the ASR jobs."""
    ctx.set(unit, NodeStatus.running)
    ctx.emit(unit, "failback-started")
    if _by_recovery_plan(ctx, unit) and not ctx.dry_run:
        results = list(_failback_by_recovery_plan(ctx, unit).items())
    else:
        results = concurrently(lambda vm: _failback_vm(ctx, unit, vm), members(ctx, unit))
    if ctx.dry_run:
        return dict(results)
    ctx.set(unit, NodeStatus.failed_back)
    ctx.emit(unit, "failed-back", ", ".join(f"{vm}: {what}" for vm, what in results))
    return dict(results)


def _by_recovery_plan(ctx: RunContext, unit: str) -> bool:
    u = ctx.graph.units[unit]
    mode = u.failback_mode or ctx.plan.failback.group_failback_mode
    return u.kind == "group" and mode == GroupFailbackMode.recovery_plan


def _failback_by_recovery_plan(ctx: RunContext, unit: str) -> dict[str, str]:
    """A group failed back through an ASR recovery plan (``failback_mode: recovery-plan``): one job."""
    u = ctx.graph.units[unit]
    refs = [ctx.state.refs[vm.name] for vm in u.vms]
    start = ctx.clock.now()
    jobs = ctx.asr.failback_group(
        unit,
        refs,
        mode=GroupFailbackMode.recovery_plan,
        policy=u.policy or RecoveryPointPolicy.common_app_consistent,
        timeout=max(budget(ctx, vm, "failback") for vm in u.vms),
    )
    if ctx.report is not None:
        for vm, job in jobs.items():
            ctx.report.update(
                unit,
                vm,
                status="failed-back",
                failback_start=job.start or start,
                failback_end=job.end or ctx.clock.now(),
                note=f"recovery plan job {job.name}",
            )
    return {vm: f"recovery plan job {job.name or '(done)'}" for vm, job in jobs.items()}


def _failback_vm(ctx: RunContext, unit: str, vm) -> tuple[str, str]:
    from drplan.recovery.phase import phase_of

    ref = ctx.state.refs[vm.name]
    state = ctx.asr.item_state(ref)
    phase = phase_of(state)
    choice = ctx.state.choices.get(vm.name)
    if phase in DONE_FAILBACK:
        if ctx.report is not None:
            row = ctx.report.row(unit, vm.name)
            ctx.report.update(
                unit,
                vm.name,
                status="failed-back",
                failback_end=row.failback_end or state.last_successful_failover_time,
                note=(row.note + "; " if row.note else "") + "already failed back (resumed)",
            )
        if ctx.dry_run:
            ctx.note(f"VM {vm.name}: already {phase}; would not fail it back again")
        return vm.name, f"already {phase}"
    if ctx.dry_run:
        if phase == Phase.failback_in_progress:
            ctx.note(f"VM {vm.name}: would wait for its in-flight failback job")
        elif choice is not None:
            ctx.note(
                f"VM {vm.name} (unit {unit}): would fail back to {choice.policy} point "
                f"{choice.point.time.isoformat()}, data loss {format_duration(choice.data_loss_seconds)}"
            )
        return vm.name, "dry-run"
    if choice is None and phase != Phase.failback_in_progress:
        raise RecoveryPointError(f"failback of VM {vm.name}: no recovery point was resolved")
    if ctx.report is not None and phase == Phase.reprotected_to_onprem:
        ctx.report.update(unit, vm.name, failback_start=ctx.clock.now(), status="failing-back")
    # The adapter checks the phase on the state just read (no second GET): a job already running is
    # awaited, work already done not re-issued; a failed write re-reads before deciding again.
    job = ctx.asr.failback(
        ref, choice.point if choice else None, timeout=budget(ctx, vm, "failback"), state=state
    )
    if ctx.report is not None:
        row = ctx.report.row(unit, vm.name)
        ctx.report.update(
            unit,
            vm.name,
            status="failed-back",
            failback_end=job.end or ctx.clock.now(),
            failback_start=row.failback_start or job.start,
        )
    if getattr(job, "reused", False):
        return vm.name, f"awaited job {job.name or '(done)'}"
    return vm.name, f"failed back to {choice.point.id.rsplit('/', 1)[-1] if choice else 'its point'}"


def verify_unit(ctx: RunContext, unit: str) -> dict[str, str]:
    """Wait until every member is up on-prem (power, tools, guest IP) within its boot timeout."""
    if ctx.dry_run:
        for vm in members(ctx, unit):
            ctx.note(f"VM {vm.name}: would verify on-prem (powered on, tools running, guest IP)")
        return {}

    def one(vm) -> tuple[str, str]:
        unit_obj = ctx.graph.units[unit]
        timeout = unit_obj.verify_timeouts.get(vm.name) or vm.verify.timeout or ctx.plan.defaults.boot_timeout
        state = ctx.onprem.wait_for_boot(
            vm.vcenter_name or vm.name,
            timeout=timeout,
            require_tools=vm.verify.tools_running,
            require_ip=vm.verify.guest_ip,
        )
        now = ctx.clock.now()
        what = f"{state.power_state}, tools {state.tools_running_status}, ip {state.guest_ip or '-'}"
        if ctx.report is not None:
            rto = (now - ctx.state.started_at).total_seconds() if ctx.state.started_at else None
            ctx.report.update(
                unit,
                vm.name,
                status="verified",
                verified_at=now,
                rto=rto,
                verification=f"ok {now:%H:%M:%S} ip {state.guest_ip or '-'}",
            )
        return vm.name, what

    results = dict(concurrently(one, members(ctx, unit)))
    ctx.set(unit, NodeStatus.verified)
    ctx.emit(unit, "verified", "; ".join(f"{k}: {v}" for k, v in results.items()), vms=list(results))
    return results


def commit_unit(ctx: RunContext, unit: str) -> dict[str, str]:
    """Commit every member's failback (deletes the Azure VM). Only for a verified unit; at most once."""
    if ctx.get(unit) != NodeStatus.verified and not ctx.dry_run:
        raise PreconditionError(
            f"commit of {unit}: refused, the unit was not verified on-prem",
            vm=unit,
            operation="commit",
            rule="commit only after verification",
        )

    def one(vm) -> tuple[str, str]:
        from drplan.recovery.phase import phase_of

        ref = ctx.state.refs[vm.name]
        state = ctx.asr.item_state(ref)
        phase = phase_of(state)
        if phase in (Phase.committed, Phase.reprotected_to_azure):
            if ctx.report is not None:
                ctx.report.update(unit, vm.name, commit="already committed")
            return vm.name, "already committed"
        if ctx.dry_run:
            ctx.note(f"VM {vm.name}: would commit the failback")
            return vm.name, "dry-run"
        if phase != Phase.failed_back:
            raise PreconditionError(
                f"commit of VM {vm.name}: item is {phase}, not failed back",
                vm=vm.name,
                operation="commit",
                rule="commit only after failback",
            )
        ctx.asr.commit(ref, timeout=budget(ctx, vm, "commit"), state=state)
        now = ctx.clock.now()
        if ctx.report is not None:
            ctx.report.update(unit, vm.name, committed_at=now, commit=f"ok {now:%H:%M:%S}")
        return vm.name, "committed"

    if _by_recovery_plan(ctx, unit) and not ctx.dry_run:
        refs = [ctx.state.refs[vm.name] for vm in members(ctx, unit)]
        jobs = ctx.asr.commit_group(
            unit,
            refs,
            mode=GroupFailbackMode.recovery_plan,
            timeout=max(budget(ctx, vm, "commit") for vm in members(ctx, unit)),
        )
        now = ctx.clock.now()
        for vm in jobs:
            if ctx.report is not None:
                ctx.report.update(unit, vm, committed_at=now, commit=f"ok {now:%H:%M:%S}")
        results = {vm: "committed (recovery plan)" for vm in jobs}
    else:
        results = dict(concurrently(one, members(ctx, unit)))
    if not ctx.dry_run:
        ctx.set(unit, NodeStatus.committed)
        ctx.emit(unit, "committed")
    return results


def reprotect_to_azure_unit(ctx: RunContext, unit: str) -> dict[str, str]:
    """Reprotect every member back to Azure; retry "agent isn't installed" within the registration window."""
    opts = ctx.plan.failback.reprotect_to_azure

    def one(vm) -> tuple[str, str]:
        from drplan.recovery.phase import phase_of

        ref = ctx.state.refs[vm.name]
        state = ctx.asr.item_state(ref)
        phase = phase_of(state)
        if phase == Phase.reprotected_to_azure:
            if ctx.report is not None:
                ctx.report.update(unit, vm.name, reprotect="already reprotected")
            return vm.name, "already reprotected"
        if ctx.dry_run:
            ctx.note(
                f"VM {vm.name}: would reprotect to Azure (retrying 'agent isn't installed' for up to "
                f"{format_duration(opts.agent_registration_window)})"
            )
            return vm.name, "dry-run"
        attempts = _reprotect_with_retry(ctx, vm, ref, opts, state=state)
        now = ctx.clock.now()
        if ctx.report is not None:
            ctx.report.update(
                unit,
                vm.name,
                reprotected_at=now,
                reprotect=f"ok {now:%H:%M:%S}" + (f" ({attempts} attempts)" if attempts > 1 else ""),
            )
        return vm.name, f"reprotected after {attempts} attempt(s)"

    results = dict(concurrently(one, members(ctx, unit)))
    if not ctx.dry_run:
        ctx.set(unit, NodeStatus.reprotected)
        ctx.emit(unit, "reprotected")
    return results


def _reprotect_with_retry(
    ctx: RunContext, vm, ref, opts, *, first_delay: float = 30.0, max_delay: float = 240.0, state=None
) -> int:
    window = opts.agent_registration_window
    deadline = ctx.clock.monotonic() + window
    delay, attempt = first_delay, 0
    kwargs = {k: v for k, v in (("process_server_id", opts.process_server), ("policy_id", opts.policy)) if v}
    while True:
        attempt += 1
        try:
            # the first attempt decides on the state the step just read; a retry reads afresh
            ctx.asr.reprotect_to_azure(
                ref, timeout=budget(ctx, vm, "reprotect"), state=state if attempt == 1 else None, **kwargs
            )
            return attempt
        except AgentNotInstalledError as exc:
            left = deadline - ctx.clock.monotonic()
            if left <= 0:
                raise AgentNotInstalledError(
                    f"reprotect to Azure of VM {vm.name}: the mobility agent is not registered with the "
                    f"configuration server after {format_duration(window)} ({attempt} attempts): {exc}",
                    vm=vm.name,
                    operation="reprotect to Azure",
                ) from None
            log.info(
                "reprotect of %s: agent not registered yet, retrying in %ss (attempt %s)",
                vm.name,
                round(min(delay, left)),
                attempt,
            )
            ctx.clock.sleep(min(delay, left))
            delay = min(delay * 2, max_delay)
