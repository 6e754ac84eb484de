"""The failback runbook: what each step of a run does, on a :class:`drplan.runtime.Runtime`. Prefect-free.

Stages (design §1): preflight → resolve recovery points → per unit, in graph order: failback → verify
→ (hooks as their own nodes) → commit gate → commit → reprotect to Azure. Every write first reads the
item's real phase in ASR, so a re-run after a crash continues where ASR is (no VM failed back twice, no
commit issued twice, in-flight jobs awaited, not re-issued).

:data:`STEPS` is the step-kind table the Prefect layer mirrors: ``kind -> Step(run, blocked_by)``.
``blocked_by`` says why a step must be skipped (a dependency failed or was skipped), ``run`` does it.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from drplan import preconditions
from drplan.errors import (
    AgentNotInstalledError,
    DrplanError,
    PreconditionError,
    RecoveryPointError,
    TransientError,
)
from drplan.onprem import check_connected, check_master_target, check_vm_present
from drplan.plan import CommitPolicy, GroupFailbackMode, RecoveryPointPolicy, format_duration
from drplan.runtime import SUCCESS, NodeStatus, Runtime
from drplan.values import CheckResult, Phase

log = logging.getLogger(__name__)

GATE = "commit-gate"
MEMBER_WORKERS = 16  # bound for a group's concurrent members / concurrent preflight reads
#: phases from which a failback run can continue (anything else fails preflight)
RESUMABLE = (
    Phase.reprotected_to_onprem,
    Phase.failback_in_progress,
    Phase.failed_back,
    Phase.committed,
    Phase.reprotected_to_azure,
)
DONE_FAILBACK = (Phase.failed_back, Phase.committed, Phase.reprotected_to_azure)


class RunFailed(DrplanError):
    """The run ended with failed or skipped units. One message names them all."""

    def __init__(self, plan: str, failed: dict[str, str], skipped: dict[str, str], extra: str = ""):
        self.plan, self.failed, self.skipped = plan, dict(failed), dict(skipped)
        lines = [f"failback of plan {plan} did not complete: {len(failed)} failed, {len(skipped)} skipped"]
        lines += [f"  failed  {n}: {r}" for n, r in failed.items()]
        lines += [f"  skipped {n}: {r}" for n, r in skipped.items()]
        if extra:
            lines.append(extra)
        super().__init__("\n".join(lines))


class PreflightFailed(DrplanError):
    """At least one precondition failed; nothing was written. ``checks`` are the failed checks."""

    def __init__(self, plan: str, checks: Sequence[CheckResult]):
        self.checks = list(checks)
        lines = [f"preflight of plan {plan} failed: {len(self.checks)} check(s); nothing was changed"]
        lines += [f"  ✗ {c.name}: {c.message}" for c in self.checks]
        super().__init__("\n".join(lines))


# -- helpers ---------------------------------------------------------------------------------------------
def _members(rt: Runtime, unit: str):
    return list(rt.graph.units[unit].vms)


def _concurrently(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """Run ``fn`` over ``items`` concurrently; after all have finished, raise if any failed.

    One error is re-raised as is (so a transient error stays retryable); several are joined into one message.
    """
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(MEMBER_WORKERS, len(items))) as pool:
        futures = [pool.submit(fn, i) for i in items]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if len(errors) == 1 or (errors and all(isinstance(e, TransientError) for e in errors)):
        raise errors[0]
    if errors:
        raise DrplanError("; ".join(str(e) for e in errors)) from errors[0]
    return [f.result() for f in futures]


def _duration(rt: Runtime, vm, name: str) -> float:
    from drplan.plan import DEFAULT_DURATIONS

    own = getattr(vm.durations, name, None) if vm is not None else None
    return own or getattr(rt.plan.defaults.durations, name, None) or DEFAULT_DURATIONS[name]


def _budget(rt: Runtime, vm, name: str) -> float:
    """How long to wait for a job: 4x its estimate, at least an hour (fail clearly instead of hanging)."""
    return max(4 * _duration(rt, vm, name), 3600.0)


# -- preflight -------------------------------------------------------------------------------------------
def vm_names(rt: Runtime) -> list[str]:
    return [v.name for v in rt.plan.vms]


def discover(rt: Runtime) -> list[CheckResult]:
    """Find every plan VM in the vault; one check per VM that cannot be found."""
    names = vm_names(rt)
    try:
        rt.refs.update(rt.asr.discover(names))
    except DrplanError as exc:
        # keep checking the VMs that were found, so every failure is reported together
        try:
            listed = {s.friendly_name: s.ref for s in rt.asr.list_items()}
            rt.refs.update({n: listed[n] for n in names if n in listed})
        except DrplanError:
            pass
        return [
            CheckResult("asr-discovery", False, str(exc), rt.plan.azure.vault, "VM protected in the vault")
        ]
    return [
        CheckResult(
            f"asr-item {n}",
            False,
            f"VM {n} is not a protected item of vault {rt.plan.azure.vault}: it was migrated, moved to "
            f"another resource group, its Azure VM deleted or its protection disabled",
            n,
            "VM not migrated, moved, deleted or unprotected",
        )
        for n in names
        if n not in rt.refs
    ]


def item_checks(vm: str, state) -> list[CheckResult]:
    """The per-VM ASR rules (design §1) read from one item state: while the VM still has to fail back, its
    conditions (health errors: migrated, moved, Azure VM deleted, protection disabled, not in the
    configuration server, Hyper-V target; OS details: physical Windows Server 2008 R2 SP1); then protected
    toward on-prem, healthy."""
    from drplan.asr import phase_of

    phase = phase_of(state)
    disabled = _protection_disabled(state)
    out: list[CheckResult] = []
    if phase not in DONE_FAILBACK:
        skip = frozenset({"protectiondisabled"}) if disabled else frozenset()
        out += preconditions.item_condition_checks(vm, state, skip=skip)
    return out + [_phase_check(vm, state, phase, disabled)]


def _protection_disabled(state) -> bool:
    protection = state.protection_state.lower()
    return "unprotected" in protection or "disabled" in protection


def _phase_check(vm: str, state, phase: Phase, disabled: bool) -> CheckResult:
    name = f"asr-item {vm}"
    if disabled:
        problem, rule = (
            f"VM {vm}: protection is disabled ({state.protection_state})",
            "protection not disabled",
        )
    elif phase not in RESUMABLE:
        problem = (
            f"VM {vm} is {phase} (protection state {state.protection_state!r}, "
            f"provider {state.provider or '?'}): it must be reprotected from Azure to on-prem before failback"
        )
        rule = "reprotect finished"
    elif phase == Phase.reprotected_to_onprem and state.replication_health.lower() not in (
        "normal",
        "",
        "none",
    ):
        problem = f"VM {vm}: replication health is {state.replication_health}, not Normal"
        rule = "replication health OK"
    else:
        return CheckResult(name, True, str(phase), vm, "reprotect finished")
    return CheckResult(name, False, f"{problem} (failback doc rule: {rule})", vm, rule)


def preflight(rt: Runtime) -> list[CheckResult]:
    """Every precondition as a named check, read concurrently; nothing is written.

    Per VM: found in the vault, its conditions, protection state and health (one batched read), at least one
    recovery point (VMs still to fail back). Site: vCenter connected, master targets without snapshots,
    target VMs present. Vault: configuration server connected with a recent heartbeat; each master target
    registered with it, running the OS family of its VMs (as ASR reports both); the reprotect-to-Azure
    process server registered.
    """
    checks = discover(rt)
    found = [n for n in vm_names(rt) if n in rt.refs]
    rt.extra["points_by_vm"] = {}
    rt.extra["phases"] = {}
    states: dict[str, Any] = {}
    infra: list[Any] = []  # filled by _fabric_checks when the adapter can read the infrastructure
    jobs = (
        lambda: _vault_checks(rt, found, states),
        lambda: _site_checks(rt),
        lambda: _fabric_checks(rt, infra),
    )
    with ThreadPoolExecutor(max_workers=3) as pool:
        for result in pool.map(lambda f: f(), jobs):
            checks += result
    if infra:
        checks += _master_target_checks(rt, states, infra[0])
    if rt.report is not None:
        rt.report.preflight = checks
    return checks


def _vault_checks(rt: Runtime, found: list[str], states: dict[str, Any]) -> list[CheckResult]:
    """Item states of every found VM (one batched read) and the recovery points of VMs still to fail back."""
    if not found:
        return []
    try:
        states.update(rt.asr.item_states([rt.refs[n] for n in found]))
    except DrplanError as exc:
        return [CheckResult("asr-items", False, str(exc), rt.plan.azure.vault, "VM readable in the vault")]
    from drplan.asr import phase_of

    phases = rt.extra["phases"]
    out: list[CheckResult] = []
    for vm in found:
        out += item_checks(vm, states[vm])
        phases[vm] = phase_of(states[vm])
    pending = {vm for vm in found if phases[vm] in (Phase.reprotected_to_onprem, Phase.failback_in_progress)}
    return out + _point_checks(rt, pending)


def _point_checks(rt: Runtime, pending: set[str]) -> list[CheckResult]:
    """Recovery points of the VMs still to fail back (each needs one) and of the other members of their units
    (a group resumed half-way keeps choosing one common point)."""
    from drplan.points import point_checks

    points_by_vm = rt.extra["points_by_vm"]
    todo = sorted(pending)
    for unit in rt.graph.units.values():
        names = [v.name for v in unit.vms]
        if pending & set(names):
            todo += [n for n in names if n not in pending and n in rt.refs and n not in todo]

    def points(vm: str) -> list[CheckResult]:
        checked = vm in pending  # a member already failed back needs no point of its own
        try:
            points_by_vm[vm] = list(rt.asr.recovery_points(rt.refs[vm]))
        except DrplanError as exc:
            if not checked:
                return []
            return [CheckResult(f"recovery-point {vm}", False, str(exc), vm, "recovery points readable")]
        return point_checks([vm], {vm: points_by_vm[vm]}) if checked else []

    out: list[CheckResult] = []
    if todo:
        with ThreadPoolExecutor(max_workers=min(MEMBER_WORKERS, len(todo))) as pool:
            for result in pool.map(points, todo):
                out += result
    return out


def _site_checks(rt: Runtime) -> list[CheckResult]:
    mts = sorted({v.master_target for v in rt.plan.vms})
    targets = [v.vcenter_name or v.name for v in rt.plan.vms]
    try:
        state = rt.onprem.read_state([*targets, *mts])
    except DrplanError as exc:
        return [CheckResult("vcenter-connected", False, str(exc), rt.plan.vcenter.host, "vCenter connected")]
    out = [check_connected(state, rt.plan.vcenter.host)]
    if state.connected:
        out += [check_master_target(state, m) for m in mts]
        out += [check_vm_present(state, t) for t in targets]
    return out


def _fabric_checks(rt: Runtime, infra: list[Any]) -> list[CheckResult]:
    """The configuration server (connected, recent heartbeat) from one read of the vault's infrastructure,
    kept in ``infra`` for the master-target checks."""
    read = getattr(rt.asr, "infrastructure", None)
    try:
        if read is None:  # an adapter without the infrastructure read: its own checks, if any
            fn = getattr(rt.asr, "configuration_server_checks", None)
            return list(fn()) if fn is not None else []
        infra.append(read())
    except DrplanError as exc:
        return [CheckResult("configuration-server", False, str(exc), "", preconditions.RULE_CS)]
    return preconditions.configuration_server_checks(infra[0], infra[0].read_at or rt.clock.now())


def _master_target_checks(rt: Runtime, states: dict[str, Any], infra) -> list[CheckResult]:
    """For VMs still to fail back: their master target registered, replicating them, of their OS family (as
    ASR reports both); and the process server the reprotect to Azure will use registered."""
    from drplan.asr import phase_of

    todo = [v for v in rt.plan.vms if v.name in states and phase_of(states[v.name]) not in DONE_FAILBACK]
    out = [preconditions.master_target_registered(m, infra) for m in sorted({v.master_target for v in todo})]
    for vm in todo:
        state = states[vm.name]
        vm_os = preconditions.os_family(state.os_type) or vm.os.value
        out += preconditions.master_target_os_check(vm.name, vm_os, vm.master_target, infra)
        out += preconditions.master_target_in_use_check(vm.name, vm.master_target, state, infra)
    ps = rt.plan.failback.reprotect_to_azure.process_server
    if rt.reprotect and ps:
        out.append(
            preconditions.process_server_registered(ps, infra, "failback.reprotect_to_azure.process_server")
        )
    return out


# -- recovery points -------------------------------------------------------------------------------------
def parse_overrides(values: Iterable[str] | None, units: Iterable[str]) -> dict[str, str]:
    """``--recovery-point latest`` (every unit) or ``--recovery-point UNIT=POLICY``; raises ValueError."""
    known = set(units)
    policies = {p.value for p in RecoveryPointPolicy}
    out: dict[str, str] = {}
    for raw in values or ():
        unit, sep, policy = raw.rpartition("=")
        unit = unit.strip() if sep else "*"
        policy = policy.strip()
        if policy not in policies:
            raise ValueError(
                f"--recovery-point {raw!r}: unknown policy {policy!r} "
                f"(use one of {', '.join(sorted(policies))}, optionally as UNIT=POLICY)"
            )
        if unit != "*" and unit not in known:
            raise ValueError(f"--recovery-point {raw!r}: no VM or group named {unit!r} in the plan")
        out[unit] = policy
    return out


def _unit_with_override(rt: Runtime, unit):
    policy = rt.overrides.get(unit.name) or rt.overrides.get("*")
    if not policy or unit.kind == "hook":
        return unit
    try:
        return replace(unit, policy=RecoveryPointPolicy(policy))
    except TypeError:  # not a dataclass: a light proxy with the same attributes
        from types import SimpleNamespace

        return SimpleNamespace(
            name=unit.name,
            kind=unit.kind,
            vms=unit.vms,
            policy=RecoveryPointPolicy(policy),
            max_data_loss=unit.max_data_loss,
        )


def resolve_points(rt: Runtime) -> dict[str, dict[str, Any]]:
    """Choose every pending VM's point (groups: common app-consistent; standalone: latest; overrides; guard).

    VMs that ASR already shows failed back keep the point they were failed back to. Raises
    :class:`RecoveryPointError` listing every unit without a valid point.
    """
    from drplan.points import choose_points

    points_by_vm = rt.extra.get("points_by_vm", {})
    units = [
        _unit_with_override(rt, u)
        for u in rt.graph.units.values()
        if u.kind != "hook" and any(v.name in points_by_vm for v in u.vms)
    ]
    chosen = choose_points(units, points_by_vm, now=rt.clock.now())
    summary: dict[str, dict[str, Any]] = {}
    for unit, by_vm in chosen.items():
        for vm, choice in by_vm.items():
            rt.choices[vm] = choice
            if rt.report is not None:
                rt.report.update(
                    unit,
                    vm,
                    point=choice.point.id,
                    point_time=choice.point.time,
                    point_kind="app-consistent" if choice.point.app_consistent else "crash-consistent",
                    data_loss=choice.data_loss_seconds,
                    note=str(choice.policy),
                )
            summary.setdefault(unit, {})[vm] = choice.to_dict()
    return summary


# -- unit steps ------------------------------------------------------------------------------------------
def failback_unit(rt: Runtime, unit: str) -> dict[str, str]:
    """Fail every member back (concurrently, each to its chosen point) and wait for the ASR jobs."""
    rt.set(unit, NodeStatus.running)
    rt.emit(unit, "failback-started")
    if _by_recovery_plan(rt, unit) and not rt.dry_run:
        results = list(_failback_by_recovery_plan(rt, unit).items())
    else:
        results = _concurrently(lambda vm: _failback_vm(rt, unit, vm), _members(rt, unit))
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
        timeout=max(_budget(rt, vm, "failback") for vm in u.vms),
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
    from drplan.asr import phase_of

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
    # The adapter reads the phase again: a job already running is awaited, work already done not re-issued.
    job = rt.asr.failback(ref, choice.point if choice else None, timeout=_budget(rt, vm, "failback"))
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
        for vm in _members(rt, unit):
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

    results = dict(_concurrently(one, _members(rt, unit)))
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
        from drplan.asr import phase_of

        ref = rt.refs[vm.name]
        phase = phase_of(rt.asr.item_state(ref))
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
        rt.asr.commit(ref, timeout=_budget(rt, vm, "commit"))
        now = rt.clock.now()
        if rt.report is not None:
            rt.report.update(unit, vm.name, committed_at=now, commit=f"ok {now:%H:%M:%S}")
        return vm.name, "committed"

    if _by_recovery_plan(rt, unit) and not rt.dry_run:
        refs = [rt.refs[vm.name] for vm in _members(rt, unit)]
        jobs = rt.asr.commit_group(
            unit,
            refs,
            mode=GroupFailbackMode.recovery_plan,
            timeout=max(_budget(rt, vm, "commit") for vm in _members(rt, unit)),
        )
        now = rt.clock.now()
        for vm in jobs:
            if rt.report is not None:
                rt.report.update(unit, vm, committed_at=now, commit=f"ok {now:%H:%M:%S}")
        results = {vm: "committed (recovery plan)" for vm in jobs}
    else:
        results = dict(_concurrently(one, _members(rt, unit)))
    if not rt.dry_run:
        rt.set(unit, NodeStatus.committed)
        rt.emit(unit, "committed")
    return results


def reprotect_unit(rt: Runtime, unit: str) -> dict[str, str]:
    """Reprotect every member back to Azure; retry "agent isn't installed" within the registration window."""
    opts = rt.plan.failback.reprotect_to_azure

    def one(vm) -> tuple[str, str]:
        from drplan.asr import phase_of

        ref = rt.refs[vm.name]
        phase = phase_of(rt.asr.item_state(ref))
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
        attempts = _reprotect_with_retry(rt, vm, ref, opts)
        now = rt.clock.now()
        if rt.report is not None:
            rt.report.update(
                unit,
                vm.name,
                reprotected_at=now,
                reprotect=f"ok {now:%H:%M:%S}" + (f" ({attempts} attempts)" if attempts > 1 else ""),
            )
        return vm.name, f"reprotected after {attempts} attempt(s)"

    results = dict(_concurrently(one, _members(rt, unit)))
    if not rt.dry_run:
        rt.set(unit, NodeStatus.reprotected)
        rt.emit(unit, "reprotected")
    return results


def _reprotect_with_retry(
    rt: Runtime, vm, ref, opts, *, first_delay: float = 30.0, max_delay: float = 240.0
) -> int:
    window = opts.agent_registration_window
    deadline = rt.clock.monotonic() + window
    delay, attempt = first_delay, 0
    kwargs = {k: v for k, v in (("process_server_id", opts.process_server), ("policy_id", opts.policy)) if v}
    while True:
        attempt += 1
        try:
            rt.asr.reprotect_to_azure(ref, timeout=_budget(rt, vm, "reprotect"), **kwargs)
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


# -- hooks and gates -------------------------------------------------------------------------------------
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


class SkipStep(DrplanError):
    """Raised by a step that decides, from what it read, that it must not run. Not a failure."""


# -- skip propagation ------------------------------------------------------------------------------------
def _deps_blocked(rt: Runtime, deps: Iterable[str]) -> str | None:
    for dep in deps:
        status = rt.get(dep)
        if status == NodeStatus.failed:
            return f"dependency {dep} failed"
        if status == NodeStatus.skipped:
            return f"dependency {dep} was skipped"
        if status not in SUCCESS and not rt.dry_run:
            return f"dependency {dep} is {status}"
    return None


def _blocked_failback(rt: Runtime, node: str) -> str | None:
    return _deps_blocked(rt, effective_predecessors(rt, node))


def _blocked_self(required: NodeStatus) -> Callable[[Runtime, str], str | None]:
    def check(rt: Runtime, node: str) -> str | None:
        status = rt.get(node)
        if status in (NodeStatus.failed, NodeStatus.skipped) or (status != required and not rt.dry_run):
            return ""  # already reported: skip quietly
        return None

    return check


def _blocked_commit(rt: Runtime, node: str) -> str | None:
    if rt.get(node) in (NodeStatus.failed, NodeStatus.skipped):
        return ""
    if rt.get(GATE) in (NodeStatus.skipped, NodeStatus.failed):
        return rt.reasons.get(GATE) or "the commit gate is closed"
    return _blocked_self(NodeStatus.verified)(rt, node)


def _blocked_reprotect(rt: Runtime, node: str) -> str | None:
    if rt.get(node) == NodeStatus.verified and rt.get(GATE) == NodeStatus.done and not rt.dry_run:
        return "commit did not happen"
    if rt.get(node) == NodeStatus.verified and not rt.dry_run:
        return "not committed"
    return _blocked_self(NodeStatus.committed)(rt, node)


def effective_predecessors(rt: Runtime, node: str, flow_kind: str = "failback") -> list[str]:
    """The node's graph predecessors, looking through hooks that do not run in this kind of flow."""
    out: list[str] = []
    for p in rt.graph.predecessors(node):
        if in_flow(rt, p, flow_kind):
            out.append(p)
        else:
            out += [q for q in effective_predecessors(rt, p, flow_kind) if q not in out]
    return out


def in_flow(rt: Runtime, node: str, flow_kind: str = "failback") -> bool:
    unit = rt.graph.units[node]
    if unit.kind != "hook":
        return True
    hook = unit.hook
    # after-cleanup hooks (drills) run after the test-failover cleanup, never in the graph phase
    return flow_kind in hook.runs_in and not hook.after_cleanup


@dataclass(frozen=True)
class Step:
    """One step kind: what it does and why it would be skipped (``None``: run; ``""``: skip quietly)."""

    kind: str
    run: Callable[[Runtime, str], Any]
    blocked_by: Callable[[Runtime, str], str | None]
    transition_on_failure: str = "failed"


STEPS: dict[str, Step] = {
    "failback": Step("failback", failback_unit, _blocked_failback),
    "verify": Step("verify", verify_unit, _blocked_self(NodeStatus.failed_back)),
    "hook": Step("hook", hook_node, _blocked_failback),
    "gate": Step("gate", commit_gate, lambda rt, node: None),
    "commit": Step("commit", commit_unit, _blocked_commit),
    "reprotect": Step("reprotect", reprotect_unit, _blocked_reprotect),
}


def skip(rt: Runtime, kind: str, node: str, reason: str) -> None:
    """Mark a node skipped (unless a reason-less quiet skip of an already failed/skipped node)."""
    if not reason:
        return
    if kind in ("gate",) or (kind in ("commit", "reprotect") and rt.get(node) in SUCCESS):
        rt.extra.setdefault("not_done", {})[f"{kind} {node}"] = reason
        if rt.report is not None and kind != "gate":
            for r in rt.report.rows_of(node):
                rt.report.update(node, r.vm, **{kind: f"skipped: {reason}"})
        if kind == "gate":
            rt.set(node, NodeStatus.skipped, reason)
        rt.emit(node, f"{kind}-skipped", reason)
        return
    rt.set(node, NodeStatus.skipped, reason)
    rt.emit(node, "skipped", reason)
    if rt.report is not None:
        rows = rt.report.rows_of(node) or [rt.report.row(node, node)]
        for r in rows:
            rt.report.update(node, r.vm, status="skipped", note=reason)


def fail(rt: Runtime, kind: str, node: str, exc: BaseException) -> None:
    """Record a step's final failure (after any retries)."""
    reason = f"{kind}: {exc}"
    rt.set(node, NodeStatus.failed, reason)
    rt.emit(node, "failed", reason, step=kind)
    if rt.report is not None:
        rows = rt.report.rows_of(node) or [rt.report.row(node, node)]
        for r in rows:
            rt.report.update(node, r.vm, status=f"failed ({kind})", note=str(exc).splitlines()[0][:300])


def outcome(rt: Runtime) -> tuple[dict[str, str], dict[str, str]]:
    """(failed, skipped) nodes with their reasons, in graph order."""
    failed, skipped = {}, {}
    for node in rt.graph.order:
        status = rt.get(node)
        if status == NodeStatus.failed:
            failed[node] = rt.reasons.get(node, "")
        elif status == NodeStatus.skipped:
            skipped[node] = rt.reasons.get(node, "")
    return failed, skipped
