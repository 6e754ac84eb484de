"""The failback unit steps: failback, verify on-prem, commit, reprotect to Azure; each over a unit's members.

Every write first reads the item's real phase in ASR, so a re-run after a crash continues where ASR is (no VM
failed back twice, no commit issued twice, in-flight jobs awaited, not re-issued).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from drplan.errors import AgentNotInstalledError, MixedPointsError, PreconditionError
from drplan.failback.point_choice import applied_points, by_recovery_plan, decide_unit
from drplan.observed import ItemState, Phase
from drplan.plan.schema import GroupFailbackMode, RecoveryPointPolicy, Vm, format_duration
from drplan.recovery.phase import DONE_FAILBACK, is_modernized, phase_of
from drplan.recovery.points import CRASH_CONSISTENT, CUSTOM, PointDecision
from drplan.run.budgets import budget
from drplan.run.context import NodeStatus, RunContext
from drplan.run.fanout import concurrently, members

log = logging.getLogger(__name__)


def failback_unit(ctx: RunContext, unit: str) -> dict[str, str]:
    """Fail every member back, each to the point decided for it immediately before the write, and wait for
    the ASR jobs; then record the point ASR applied. A member already failed back is not sent again, one
    whose failback is running is awaited first (a group is then held to its point time)."""
    ctx.set(unit, NodeStatus.running)
    ctx.emit(unit, "failback-started")
    vms = members(ctx, unit)
    states = _fresh_states(ctx, vms)
    running = [vm for vm in vms if phase_of(states[vm.name]) == Phase.failback_in_progress]
    seen: dict[str, ItemState] = {}  # the items as their jobs' ends showed them (no need to read again)
    if running and not ctx.dry_run:  # let a failback already under way end before deciding for the rest
        concurrently(lambda vm: _send(ctx, unit, vm, None, states[vm.name], seen), running)
        states = _fresh_states(ctx, vms)
    decision = decide_unit(ctx, unit, states)
    if ctx.dry_run:
        return dict(_dry_run(ctx, unit, vm, states[vm.name], decision) for vm in vms)
    todo = [vm for vm in vms if phase_of(states[vm.name]) == Phase.reprotected_to_onprem]
    results = {vm.name: f"already {phase_of(states[vm.name])}" for vm in vms if vm not in todo}
    for vm in vms:
        if vm not in todo:
            _note_resumed(ctx, unit, vm.name, states[vm.name])
    if todo and decision is not None and decision.by_recovery_plan:
        results.update(_send_by_recovery_plan(ctx, unit, decision))
    elif todo and decision is not None:
        sent = concurrently(lambda vm: _send(ctx, unit, vm, decision, states[vm.name], seen), todo)
        results.update(dict(sent))
    applied = _record_applied(ctx, unit, decision, [vm.name for vm in vms], seen)
    ctx.set(unit, NodeStatus.failed_back)
    ctx.emit(unit, "failed-back", ", ".join(f"{vm}: {what}" for vm, what in results.items()), **applied)
    return results


def _fresh_states(ctx: RunContext, vms: list[Vm]) -> dict[str, ItemState]:
    return ctx.asr.item_states([ctx.state.refs[vm.name] for vm in vms])


def _send(
    ctx: RunContext,
    unit: str,
    vm: Vm,
    decision: PointDecision | None,
    state: ItemState,
    seen: dict[str, ItemState],
) -> tuple[str, str]:
    """One item failback (``Custom`` point id); ``decision`` ``None``: await the one already running."""
    point = decision.choices[vm.name].point if decision is not None and not decision.resolved_by_asr else None
    if ctx.report is not None:
        ctx.report.update(unit, vm.name, failback_start=ctx.clock.now(), status="failing-back")
    # The adapter checks the phase on the state just read: a job already running is awaited, work already
    # done is not re-issued, and a failed write re-reads before deciding again.
    ref, timeout = ctx.state.refs[vm.name], budget(ctx, vm, "failback")
    if is_modernized(state):  # planned failover by point type: ASR makes or picks the point when it runs
        point_type = decision.asr_type if decision is not None else CRASH_CONSISTENT
        job = ctx.asr.planned_failback(ref, point_type, timeout=timeout, state=state)
    else:  # a point id, or the type ASR resolves when the job runs (LatestTime, LatestTag)
        resolved = decision.asr_type if decision is not None and point is None else None
        job = ctx.asr.failback(ref, point, point_type=resolved, timeout=timeout, state=state)
    _note_job(ctx, unit, vm.name, job.start, job.end, f"failback job {job.name or '(done)'}")
    if job.item is not None:
        seen[vm.name] = job.item
    if job.reused:
        return vm.name, f"awaited job {job.name or '(done)'}"
    return vm.name, f"failback job {job.name or '(done)'}"


def _send_by_recovery_plan(ctx: RunContext, unit: str, decision: PointDecision) -> dict[str, str]:
    """The group through its ASR recovery plan (``failback_mode: recovery-plan``): one job, a point type."""
    u = ctx.graph.units[unit]
    jobs = ctx.asr.failback_group(
        unit,
        [ctx.state.refs[vm.name] for vm in u.vms],
        mode=GroupFailbackMode.recovery_plan,
        point_type=decision.asr_type,
        timeout=max(budget(ctx, vm, "failback") for vm in u.vms),
    )
    for vm, job in jobs.items():
        _note_job(ctx, unit, vm, job.start, job.end, f"recovery plan job {job.name or '(done)'}")
    return {vm: f"recovery plan job {job.name or '(done)'}" for vm, job in jobs.items()}


def _note_job(
    ctx: RunContext, unit: str, vm: str, start: datetime | None, end: datetime | None, what: str
) -> None:
    log.info("%s: VM %s failed back (%s)", unit, vm, what)
    if ctx.report is not None:
        row = ctx.report.row(unit, vm)
        ctx.report.update(
            unit,
            vm,
            status="failed-back",
            failback_start=row.failback_start or start,
            failback_end=end or ctx.clock.now(),
        )


def _note_resumed(ctx: RunContext, unit: str, vm: str, state: ItemState) -> None:
    if ctx.report is not None and not ctx.dry_run:
        row = ctx.report.row(unit, vm)
        ctx.report.update(
            unit,
            vm,
            status="failed-back",
            failback_end=row.failback_end or state.last_successful_failover_time,
            note=(row.note + "; " if row.note else "") + "already failed back (resumed)",
        )


def _record_applied(
    ctx: RunContext,
    unit: str,
    decision: PointDecision | None,
    vms: list[str],
    seen: Mapping[str, ItemState],
) -> dict[str, str]:
    """Read back the point ASR applied to each member and report it (time, age at failback, window behind
    the newest point). A group whose members ended at different points is a failed unit: nothing of it is
    committed, and the report says so. ``seen``: members whose items were read as their jobs ended."""
    applied = applied_points(ctx, unit, decision, vms, seen=seen)
    u = ctx.graph.units[unit]
    if ctx.report is not None:
        for vm in vms:
            state = ctx.state.items.get(vm)
            if state is not None:
                ctx.report.update(unit, vm, provider="modernized" if is_modernized(state) else "classic")
    for vm, point in applied.items():
        if point is None or ctx.report is None:
            continue
        choice = decision.choices.get(vm) if decision is not None else None
        newest = choice.latest.time if choice is not None else point.time
        age_from = (decision.decided_at if decision is not None else None) or point.time
        ctx.report.update(
            unit,
            vm,
            point=point.id,
            point_time=point.time,
            point_kind="app-consistent" if point.app_consistent else "crash-consistent",
            point_age=max((age_from - point.time).total_seconds(), 0.0),
            data_loss=max((newest - point.time).total_seconds(), 0.0),
        )
        sent_id = decision is not None and decision.asr_type == CUSTOM
        if sent_id and choice is not None and choice.point.id.lower() != point.id.lower():
            log.warning(
                "%s: ASR failed VM %s over to %s, not the point sent (%s)",
                unit,
                vm,
                point.id,
                choice.point.id,
            )
        elif choice is not None:
            log.info(
                "%s: VM %s failed over to its %s point %s",
                unit,
                vm,
                decision and decision.asr_type,
                point.time,
            )
    times = {p.time for p in applied.values() if p is not None}
    policy = decision.policy if decision is not None else u.policy
    if u.kind == "group" and len(times) > 1 and policy is not RecoveryPointPolicy.latest:
        raise MixedPointsError(
            f"group {unit} is split: its members failed back to different points ("
            + ", ".join(f"{vm}: {p.time.isoformat() if p else '?'}" for vm, p in applied.items())
            + "); it is not committed. Fail the others back to the same point by hand before committing"
        )
    return {vm: p.time.isoformat() for vm, p in applied.items() if p is not None}


def _dry_run(
    ctx: RunContext, unit: str, vm: Vm, state: ItemState, decision: PointDecision | None
) -> tuple[str, str]:
    phase = phase_of(state)
    if phase in DONE_FAILBACK:
        ctx.note(f"VM {vm.name}: already {phase}; would not fail it back again")
    elif phase == Phase.failback_in_progress:
        ctx.note(f"VM {vm.name}: would wait for its in-flight failback job")
    elif decision is not None and vm.name in decision.choices:
        ctx.note(f"VM {vm.name} (unit {unit}): would fail back to {decision.describe(vm.name)}")
    return vm.name, "dry-run"


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

    if by_recovery_plan(ctx, unit) and not ctx.dry_run:
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
        ref = ctx.state.refs[vm.name]
        state = ctx.asr.item_state(ref)
        phase = phase_of(state)
        if phase == Phase.reprotected_to_azure:
            if ctx.report is not None:
                ctx.report.update(unit, vm.name, reprotect="already reprotected")
            return vm.name, "already reprotected"
        if ctx.dry_run:
            wait = (
                f"once its mobility agent registered after the failover (up to "
                f"{format_duration(ctx.plan.modernized.agent_ready_timeout)})"
                if is_modernized(state)
                else "retrying 'agent isn't installed' for up to "
                f"{format_duration(opts.agent_registration_window)}"
            )
            ctx.note(f"VM {vm.name}: would reprotect to Azure ({wait})")
            return vm.name, "dry-run"
        if is_modernized(state):  # gated on the agent's registration and heartbeat, not a fixed window
            m = ctx.plan.modernized
            ctx.asr.reprotect_to_azure_modernized(
                ref,
                process_server=m.process_server,
                policy=m.policy_to_azure,
                run_as_account=m.run_as_account,
                readiness_timeout=m.agent_ready_timeout,
                agent_registration_window=opts.agent_registration_window,
                timeout=budget(ctx, vm, "reprotect"),
                state=state,
            )
            attempts = 1
        else:
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
