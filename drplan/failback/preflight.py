"""Failback preflight: discover every plan VM in the vault and read every precondition, concurrently, before
any write. The pure rules are :mod:`drplan.recovery.preconditions`; this module reads what they judge."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from drplan.errors import DrplanError, TransientError
from drplan.failback.point_choice import points_needed
from drplan.failback.preflight_modernized import (
    classic_vms,
    classic_warning,
    modernized_checks,
    modernized_vms,
)
from drplan.observed import CheckResult, Infrastructure, ItemState, Phase
from drplan.plan.schema import Vm
from drplan.recovery import preconditions
from drplan.recovery.groups import RULE, group_membership_checks
from drplan.recovery.phase import DONE_FAILBACK, RESUMABLE, phase_of
from drplan.recovery.site_checks import check_connected, check_master_target, check_vm_present
from drplan.run.context import RunContext
from drplan.run.fanout import gather

log = logging.getLogger(__name__)


def vm_names(ctx: RunContext) -> list[str]:
    return [v.name for v in ctx.plan.vms]


def discover(ctx: RunContext) -> list[CheckResult]:
    """Find every plan VM in the vault; one check per VM that cannot be found."""
    names = vm_names(ctx)
    try:
        ctx.state.refs.update(ctx.asr.discover(names))
    except TransientError:
        raise  # throttled or 5xx: the read is retried, never reported as a failed precondition
    except DrplanError as exc:
        # keep checking the VMs that were found, so every failure is reported together
        try:
            listed = {s.friendly_name: s.ref for s in ctx.asr.list_items()}
            ctx.state.refs.update({n: listed[n] for n in names if n in listed})
        except TransientError:
            raise  # throttled or 5xx: the read is retried, never reported as a failed precondition
        except DrplanError:
            pass
        return [
            CheckResult("asr-discovery", False, str(exc), ctx.plan.azure.vault, "VM protected in the vault")
        ]
    return [
        CheckResult(
            f"asr-item {n}",
            False,
            f"VM {n} is not a protected item of vault {ctx.plan.azure.vault}: it was migrated, moved to "
            f"another resource group, its Azure VM deleted or its protection disabled",
            n,
            "VM not migrated, moved, deleted or unprotected",
        )
        for n in names
        if n not in ctx.state.refs
    ]


def item_checks(vm: str, state) -> list[CheckResult]:
    """The failback doc's per-VM ASR rules, read from one item state: while the VM still has to fail back, its
    conditions (health errors: migrated, moved, Azure VM deleted, protection disabled, not in the
    configuration server, Hyper-V target; OS details: physical Windows Server 2008 R2 SP1); then protected
    toward on-prem, healthy."""

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


def preflight(ctx: RunContext) -> list[CheckResult]:
    """Every precondition as a named check, read concurrently; nothing is written.

    Per VM: found in the vault, its conditions, protection state and health (one batched read), at least one
    recovery point (VMs still to fail back); each plan group one ASR multi-VM group. Then by provider, as
    ASR reports it per item: classic VMs — vCenter connected, master targets without snapshots, target VMs
    present, configuration server connected with a recent heartbeat, each master target registered and of
    its VMs' OS family, the reprotect-to-Azure process server registered (and one warning: classic is out of
    support); modernized VMs — :func:`drplan.failback.preflight_modernized.modernized_checks`.
    """
    checks = discover(ctx)
    found = [n for n in vm_names(ctx) if n in ctx.state.refs]
    ctx.state.points_by_vm.clear()
    ctx.state.phases.clear()
    states: dict[str, ItemState] = {}
    read_at = ctx.clock.now()
    for result in gather([partial(_vault_checks, ctx, found, states), partial(group_checks, ctx)]):
        checks += result
    modern = modernized_vms(states)
    classic = [v for v in ctx.plan.vms if v.name not in modern]
    infra: list[Infrastructure] = []
    jobs: list[Callable[[], list[CheckResult]]] = [partial(_site_checks, ctx, classic)]
    if classic:
        jobs.append(partial(fabric_checks, ctx, infra))
    if modern:
        jobs.append(partial(modernized_checks, ctx, states, read_at))
    for result in gather(jobs):
        checks += result
    if infra:
        checks += _master_target_checks(
            ctx, {v.name: states[v.name] for v in classic if v.name in states}, infra[0]
        )
    warning = classic_warning(states)
    if warning:
        log.warning("%s", warning)
        ctx.emit("(run)", "classic-provider", warning)
        checks.append(CheckResult("classic-support", True, warning, ", ".join(classic_vms(states)), ""))
    if ctx.report is not None:
        ctx.report.preflight = checks
    return checks


def _vault_checks(ctx: RunContext, found: list[str], states: dict[str, Any]) -> list[CheckResult]:
    """Item states of every found VM (one batched read) and the recovery points of VMs still to fail back."""
    if not found:
        return []
    try:
        states.update(ctx.asr.item_states([ctx.state.refs[n] for n in found]))
        ctx.state.items.update(states)
    except TransientError:
        raise  # throttled or 5xx: the read is retried, never reported as a failed precondition
    except DrplanError as exc:
        return [CheckResult("asr-items", False, str(exc), ctx.plan.azure.vault, "VM readable in the vault")]

    phases = ctx.state.phases
    out: list[CheckResult] = []
    for vm in found:
        out += item_checks(vm, states[vm])
        phases[vm] = phase_of(states[vm])
    pending = {vm for vm in found if phases[vm] in (Phase.reprotected_to_onprem, Phase.failback_in_progress)}
    return out + _point_checks(ctx, pending)


def group_checks(ctx: RunContext) -> list[CheckResult]:
    """Each plan group against ASR's multi-VM groups, from one listing of the vault's items."""
    try:
        items = ctx.asr.list_items()
    except TransientError:
        raise
    except DrplanError as exc:
        return [CheckResult("asr-groups", False, str(exc), ctx.plan.azure.vault, RULE)]
    grouped = {m for g in ctx.plan.replication_groups for m in g.members}
    return group_membership_checks(
        {g.name: list(g.members) for g in ctx.plan.replication_groups},
        [v.name for v in ctx.plan.vms if v.name not in grouped],
        {s.friendly_name: s.multi_vm_group for s in items},
    )


def _point_checks(ctx: RunContext, pending: set[str]) -> list[CheckResult]:
    """Recovery points of the VMs still to fail back (each needs one) and of the other members of their units
    (a group resumed half-way keeps choosing one common point); none for a unit whose point ASR makes."""
    from drplan.recovery.points import point_checks

    points_by_vm = ctx.state.points_by_vm
    ctx.state.points_read_at = ctx.clock.now()
    # a standalone modernized VM going to its latest point needs none: ASR makes it when it shuts the VM down
    pending = pending - {
        vm
        for unit in ctx.graph.units.values()
        if unit.kind != "hook" and not points_needed(ctx, unit, ctx.state.items)
        for vm in unit.vm_names
    }
    todo = sorted(pending)
    for unit in ctx.graph.units.values():
        names = [v.name for v in unit.vms]
        if pending & set(names):
            todo += [n for n in names if n not in pending and n in ctx.state.refs and n not in todo]

    def points(vm: str) -> list[CheckResult]:
        checked = vm in pending  # a member already failed back needs no point of its own
        try:
            points_by_vm[vm] = list(ctx.asr.recovery_points(ctx.state.refs[vm]))
        except TransientError:
            raise  # throttled or 5xx: the read is retried, never reported as a failed precondition
        except DrplanError as exc:
            if not checked:
                return []
            return [CheckResult(f"recovery-point {vm}", False, str(exc), vm, "recovery points readable")]
        return point_checks([vm], {vm: points_by_vm[vm]}) if checked else []

    out: list[CheckResult] = []
    for result in gather([partial(points, vm) for vm in todo]):
        out += result
    return out


def _site_checks(ctx: RunContext, classic: Sequence[Vm] | None = None) -> list[CheckResult]:
    """vCenter connected, every target VM present; the master targets of ``classic`` VMs (default: all)
    present without snapshots."""
    mts = sorted({v.master_target for v in (ctx.plan.vms if classic is None else classic)})
    targets = [v.vcenter_name or v.name for v in ctx.plan.vms]
    try:
        state = ctx.onprem.read_state([*targets, *mts])
    except TransientError:
        raise  # throttled or 5xx: the read is retried, never reported as a failed precondition
    except DrplanError as exc:
        return [CheckResult("vcenter-connected", False, str(exc), ctx.plan.vcenter.host, "vCenter connected")]
    out = [check_connected(state, ctx.plan.vcenter.host)]
    if state.connected:
        out += [check_master_target(state, m) for m in mts]
        out += [check_vm_present(state, t) for t in targets]
    return out


def fabric_checks(ctx: RunContext, infra: list[Any]) -> list[CheckResult]:
    """The configuration server (connected, recent heartbeat) from one read of the vault's infrastructure,
    kept in ``infra`` for the master-target checks."""
    try:
        infra.append(ctx.asr.infrastructure())
    except TransientError:
        raise  # throttled or 5xx: the read is retried, never reported as a failed precondition
    except DrplanError as exc:
        return [CheckResult("configuration-server", False, str(exc), "", preconditions.RULE_CS)]
    return preconditions.configuration_server_checks(infra[0], infra[0].read_at or ctx.clock.now())


def _master_target_checks(ctx: RunContext, states: dict[str, Any], infra) -> list[CheckResult]:
    """For VMs still to fail back: their master target registered, replicating them, of their OS family (as
    ASR reports both); and the process server the reprotect to Azure will use registered."""

    todo = [v for v in ctx.plan.vms if v.name in states and phase_of(states[v.name]) not in DONE_FAILBACK]
    out = [preconditions.master_target_registered(m, infra) for m in sorted({v.master_target for v in todo})]
    for vm in todo:
        state = states[vm.name]
        vm_os = preconditions.os_family(state.os_type) or vm.os.value
        out += preconditions.master_target_os_check(vm.name, vm_os, vm.master_target, infra)
        out += preconditions.master_target_in_use_check(vm.name, vm.master_target, state, infra)
    ps = ctx.plan.failback.reprotect_to_azure.process_server
    if ctx.inputs.reprotect_to_azure and ps:
        out.append(
            preconditions.process_server_registered(ps, infra, "failback.reprotect_to_azure.process_server")
        )
    return out
