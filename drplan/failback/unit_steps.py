"""The failback unit steps: failback, verify on-prem, commit, reprotect to Azure; each over a unit's members.

Every write first reads the item's real phase in ASR, so a re-run after a crash continues where ASR is (no VM
failed back twice, no commit issued twice, in-flight jobs awaited, not re-issued).
"""

from __future__ import annotations

import logging

from drplan.errors import AgentNotInstalledError, PreconditionError, RecoveryPointError
from drplan.failback.preflight import DONE_FAILBACK
from drplan.observed import Phase
from drplan.plan.schema import GroupFailbackMode, format_duration
from drplan.run.budgets import budget
from drplan.run.context import NodeStatus, Runtime
from drplan.run.fanout import concurrently, members

log = logging.getLogger(__name__)


def failback_unit(rt: Runtime, unit: str) -> dict[str, str]:
    """Fail every member back (concurrently, each to its chosen point) and wait for the ASR jobs."""
    rt.set(unit, NodeStatus.running)
    rt.emit(unit, "failback-started")
    if _by_recovery_plan(rt, unit) and not rt.dry_run:
        results = list(_failback_by_recovery_plan(rt, unit).items())
    else:
        results = concurrently(lambda vm: _failback_vm(rt, unit, vm), members(rt, unit))
    if rt.dry_run:
        return dict(results)
    rt.set(unit, NodeStatus.failed_back)
    rt.emit(unit, "failed-back", ", ".join(f"{vm}: {what}" for vm, what in results))
    return dict(results)


def _by_recovery_plan(rt: Runtime, unit: str) -> bool:
    u = rt.graph.units[unit]
    mode = u.failback_mode or rt.plan.failback.group_failback_mode
    return u.kind == "group" and mode == GroupFailbackMode.recovery_plan


def _failback_by_recovery_plan(rt: Runtime, unit: str) -> dict[str, str]:
    """A group failed back through an ASR recovery plan (``failback_mode: recovery-plan``): one job."""
    u = rt.graph.units[unit]
    refs = [rt.refs[vm.name] for vm in u.vms]
    start = rt.clock.now()
    jobs = rt.asr.failback_group(
        unit,
        refs,
        mode=GroupFailbackMode.recovery_plan,
        policy=u.policy,
        timeout=max(budget(rt, vm, "failback") for vm in u.vms),
    )
    if rt.report is not None:
        for vm, job in jobs.items():
            rt.report.update(
                unit,
                vm,
                status="failed-back",
                failback_start=job.start or start,
                failback_end=job.end or rt.clock.now(),
                note=f"recovery plan job {job.name}",
            )
    return {vm: f"recovery plan job {job.name or '(done)'}" for vm, job in jobs.items()}


def _failback_vm(rt: Runtime, unit: str, vm) -> tuple[str, str]:
    from drplan.recovery.phase import phase_of

    ref = rt.refs[vm.name]
    state = rt.asr.item_state(ref)
    phase = phase_of(state)
    choice = rt.choices.get(vm.name)
    if phase in DONE_FAILBACK:
        if rt.report is not None:
            row = rt.report.row(unit, vm.name)
            rt.report.update(
                unit,
                vm.name,
                status="failed-back",
                failback_end=row.failback_end or state.last_successful_failover_time,
                note=(row.note + "; " if row.note else "") + "already failed back (resumed)",
            )
        if rt.dry_run:
            rt.note(f"VM {vm.name}: already {phase}; would not fail it back again")
        return vm.name, f"already {phase}"
    if rt.dry_run:
        if phase == Phase.failback_in_progress:
            rt.note(f"VM {vm.name}: would wait for its in-flight failback job")
        elif choice is not None:
            rt.note(
                f"VM {vm.name} (unit {unit}): would fail back to {choice.policy} point "
                f"{choice.point.time.isoformat()}, data loss {format_duration(choice.data_loss_seconds)}"
            )
        return vm.name, "dry-run"
    if choice is None and phase != Phase.failback_in_progress:
        raise RecoveryPointError(f"failback of VM {vm.name}: no recovery point was resolved")
    if rt.report is not None and phase == Phase.reprotected_to_onprem:
        rt.report.update(unit, vm.name, failback_start=rt.clock.now(), status="failing-back")
    # The adapter checks the phase on the state just read (no second GET): a job already running is
    # awaited, work already done not re-issued; a failed write re-reads before deciding again.
    job = rt.asr.failback(
        ref, choice.point if choice else None, timeout=budget(rt, vm, "failback"), state=state
    )
    if rt.report is not None:
        row = rt.report.row(unit, vm.name)
        rt.report.update(
            unit,
            vm.name,
            status="failed-back",
            failback_end=job.end or rt.clock.now(),
            failback_start=row.failback_start or job.start,
        )
    if getattr(job, "reused", False):
        return vm.name, f"awaited job {job.name or '(done)'}"
    return vm.name, f"failed back to {choice.point.id.rsplit('/', 1)[-1] if choice else 'its point'}"


def verify_unit(rt: Runtime, unit: str) -> dict[str, str]:
    """Wait until every member is up on-prem (power, tools, guest IP) within its boot timeout."""
    if rt.dry_run:
        for vm in members(rt, unit):
            rt.note(f"VM {vm.name}: would verify on-prem (powered on, tools running, guest IP)")
        return {}

    def one(vm) -> tuple[str, str]:
        unit_obj = rt.graph.units[unit]
        timeout = unit_obj.verify_timeouts.get(vm.name) or vm.verify.timeout or rt.plan.defaults.boot_timeout
        state = rt.onprem.wait_for_boot(
            vm.vcenter_name or vm.name,
            timeout=timeout,
            require_tools=vm.verify.tools_running,
            require_ip=vm.verify.guest_ip,
        )
        now = rt.clock.now()
        what = f"{state.power_state}, tools {state.tools_running_status}, ip {state.guest_ip or '-'}"
        if rt.report is not None:
            rto = (now - rt.started_at).total_seconds() if rt.started_at else None
            rt.report.update(
                unit,
                vm.name,
                status="verified",
                verified_at=now,
                rto=rto,
                verification=f"ok {now:%H:%M:%S} ip {state.guest_ip or '-'}",
            )
        return vm.name, what

    results = dict(concurrently(one, members(rt, unit)))
    rt.set(unit, NodeStatus.verified)
    rt.emit(unit, "verified", "; ".join(f"{k}: {v}" for k, v in results.items()), vms=list(results))
    return results


def commit_unit(rt: Runtime, unit: str) -> dict[str, str]:
    """Commit every member's failback (deletes the Azure VM). Only for a verified unit; at most once."""
    if rt.get(unit) != NodeStatus.verified and not rt.dry_run:
        raise PreconditionError(
            f"commit of {unit}: refused, the unit was not verified on-prem",
            vm=unit,
            operation="commit",
            rule="commit only after verification",
        )

    def one(vm) -> tuple[str, str]:
        from drplan.recovery.phase import phase_of

        ref = rt.refs[vm.name]
        state = rt.asr.item_state(ref)
        phase = phase_of(state)
        if phase in (Phase.committed, Phase.reprotected_to_azure):
            if rt.report is not None:
                rt.report.update(unit, vm.name, commit="already committed")
            return vm.name, "already committed"
        if rt.dry_run:
            rt.note(f"VM {vm.name}: would commit the failback")
            return vm.name, "dry-run"
        if phase != Phase.failed_back:
            raise PreconditionError(
                f"commit of VM {vm.name}: item is {phase}, not failed back",
                vm=vm.name,
                operation="commit",
                rule="commit only after failback",
            )
        rt.asr.commit(ref, timeout=budget(rt, vm, "commit"), state=state)
        now = rt.clock.now()
        if rt.report is not None:
            rt.report.update(unit, vm.name, committed_at=now, commit=f"ok {now:%H:%M:%S}")
        return vm.name, "committed"

    if _by_recovery_plan(rt, unit) and not rt.dry_run:
        refs = [rt.refs[vm.name] for vm in members(rt, unit)]
        jobs = rt.asr.commit_group(
            unit,
            refs,
            mode=GroupFailbackMode.recovery_plan,
            timeout=max(budget(rt, vm, "commit") for vm in members(rt, unit)),
        )
        now = rt.clock.now()
        for vm in jobs:
            if rt.report is not None:
                rt.report.update(unit, vm, committed_at=now, commit=f"ok {now:%H:%M:%S}")
        results = {vm: "committed (recovery plan)" for vm in jobs}
    else:
        results = dict(concurrently(one, members(rt, unit)))
    if not rt.dry_run:
        rt.set(unit, NodeStatus.committed)
        rt.emit(unit, "committed")
    return results


def reprotect_unit(rt: Runtime, unit: str) -> dict[str, str]:
    """Reprotect every member back to Azure; retry "agent isn't installed" within the registration window."""
    opts = rt.plan.failback.reprotect_to_azure

    def one(vm) -> tuple[str, str]:
        from drplan.recovery.phase import phase_of

        ref = rt.refs[vm.name]
        state = rt.asr.item_state(ref)
        phase = phase_of(state)
        if phase == Phase.reprotected_to_azure:
            if rt.report is not None:
                rt.report.update(unit, vm.name, reprotect="already reprotected")
            return vm.name, "already reprotected"
        if rt.dry_run:
            rt.note(
                f"VM {vm.name}: would reprotect to Azure (retrying 'agent isn't installed' for up to "
                f"{format_duration(opts.agent_registration_window)})"
            )
            return vm.name, "dry-run"
        attempts = _reprotect_with_retry(rt, vm, ref, opts, state=state)
        now = rt.clock.now()
        if rt.report is not None:
            rt.report.update(
                unit,
                vm.name,
                reprotected_at=now,
                reprotect=f"ok {now:%H:%M:%S}" + (f" ({attempts} attempts)" if attempts > 1 else ""),
            )
        return vm.name, f"reprotected after {attempts} attempt(s)"

    results = dict(concurrently(one, members(rt, unit)))
    if not rt.dry_run:
        rt.set(unit, NodeStatus.reprotected)
        rt.emit(unit, "reprotected")
    return results


def _reprotect_with_retry(
    rt: Runtime, vm, ref, opts, *, first_delay: float = 30.0, max_delay: float = 240.0, state=None
) -> int:
    window = opts.agent_registration_window
    deadline = rt.clock.monotonic() + window
    delay, attempt = first_delay, 0
    kwargs = {k: v for k, v in (("process_server_id", opts.process_server), ("policy_id", opts.policy)) if v}
    while True:
        attempt += 1
        try:
            # the first attempt decides on the state the step just read; a retry reads afresh
            rt.asr.reprotect_to_azure(
                ref, timeout=budget(rt, vm, "reprotect"), state=state if attempt == 1 else None, **kwargs
            )
            return attempt
        except AgentNotInstalledError as exc:
            left = deadline - rt.clock.monotonic()
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
            rt.clock.sleep(min(delay, left))
            delay = min(delay * 2, max_delay)
