"""Failback preflight for the plan's modernized VMs (InMageRcmFailback): every check named, every failure
reported together, nothing written. The rules are pure functions of :mod:`drplan.recovery.preconditions`;
this module reads what they judge: the vault's appliances, the Azure VMs (compute API), the on-prem targets.

Called by :mod:`drplan.failback.preflight` with the item states it already read (one batched read); classic
VMs are left to the classic checks, and one warning names them (classic support ended in March 2026).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial

from drplan.errors import DrplanError, TransientError
from drplan.observed import AzureVmState, CheckResult, ItemState, ModernizedInfrastructure, Phase
from drplan.recovery import preconditions as pre
from drplan.recovery.phase import phase_of
from drplan.run.context import RunContext
from drplan.run.fanout import gather

log = logging.getLogger(__name__)

#: from this many VMs on, their Azure VMs are read by one listing of the subscription, not a GET each
AZURE_VM_LISTING = 20


def modernized_vms(states: Mapping[str, ItemState]) -> dict[str, ItemState]:
    """The VMs whose items replicate with a modernized provider."""
    return {vm: s for vm, s in states.items() if s.family == "modernized"}


def classic_vms(states: Mapping[str, ItemState]) -> list[str]:
    """The VMs whose items replicate with a classic provider (out of support since March 2026)."""
    return sorted(vm for vm, s in states.items() if s.family == "classic")


def modernized_checks(
    ctx: RunContext, states: Mapping[str, ItemState], read_at: datetime | None = None
) -> list[CheckResult]:
    """Every modernized precondition of a failback, read concurrently; writes nothing.

    Per VM still to fail back: PlannedFailover allowed, replication health, replication to on-prem complete,
    mobility agent registered after the failover with a recent heartbeat, its Azure VM running, its target
    datastore reachable from its appliance, no snapshots on the on-prem target. Across the plan: each
    appliance registered, healthy and connected, at most 60 disks per appliance; the plan's vCenter
    discovered by the appliances; each unit's recovery-point policy one the modernized API can keep.
    ``read_at``: when ``states`` were read (heartbeat ages are measured against it, not a later read).
    """
    modern = modernized_vms(states)
    if not modern:
        return []
    todo = {vm: s for vm, s in modern.items() if phase_of(s) is Phase.reprotected_to_onprem}
    infra: list[ModernizedInfrastructure] = []
    jobs: list[Callable[[], list[CheckResult]]] = [
        partial(_fabric, ctx, infra),
        partial(_snapshots, ctx, todo),
    ]
    if len(todo) >= AZURE_VM_LISTING:  # one listing of the subscription's VMs instead of a GET each
        jobs.append(partial(_azure_vms, ctx, todo))
    else:
        jobs += [partial(_azure_vm, ctx, vm, s) for vm, s in todo.items()]
    checks: list[CheckResult] = []
    for result in gather(jobs):
        checks += result
    now = infra[0].read_at if infra and infra[0].read_at else ctx.clock.now()
    for vm, s in todo.items():
        checks += pre.modernized_item_checks(vm, s, read_at or now)
    checks += pre.appliance_disk_checks(modern)
    if infra:
        names = sorted({s.appliance_name or s.appliance_id or "" for s in todo.values()} - {""})
        checks += pre.appliance_checks(names, infra[0], now)
        checks += [pre.vcenter_discovered_check(ctx.plan.vcenter.host, infra[0])]
        for vm, s in todo.items():
            checks += pre.datastore_check(
                vm, s.target_datastore, s.appliance_name or s.appliance_id, infra[0]
            )
    checks += policy_checks(ctx, set(modern))
    return checks


def policy_checks(ctx: RunContext, modern: set[str]) -> list[CheckResult]:
    """Each unit with modernized members: its recovery-point promise mapped onto the modernized API, or
    refused naming the setting that works."""
    explicit = {g.name: g.failback_mode for g in ctx.plan.replication_groups}
    out: list[CheckResult] = []
    for unit in ctx.graph.units.values():
        if unit.kind == "hook" or not modern & set(unit.vm_names):
            continue
        policy = ctx.inputs.overrides.get(unit.name) or ctx.inputs.overrides.get("*") or unit.policy
        mode = explicit.get(unit.name)
        out += pre.modernized_policy_check(
            unit.name, str(unit.kind), str(policy) if policy else None, str(mode) if mode else None
        )
    return out


def classic_warning(states: Mapping[str, ItemState]) -> str | None:
    """The once-per-run warning for classic VMs (see ``classic_support_warning``)."""
    return pre.classic_support_warning(classic_vms(states))


# -- reads -----------------------------------------------------------------------------------------------
def _fabric(ctx: RunContext, infra: list[ModernizedInfrastructure]) -> list[CheckResult]:
    try:
        infra.append(ctx.asr.modernized_infrastructure())
    except TransientError:
        raise  # throttled or 5xx: the read is retried, never reported as a failed precondition
    except DrplanError as exc:
        return [CheckResult("replication-appliances", False, str(exc), "", pre.RULE_APPLIANCE)]
    return []


def _azure_name(vm: str, state: ItemState) -> str:
    return (state.azure_vm_id or "").rstrip("/").rsplit("/", 1)[-1] or vm


def _azure_vms(ctx: RunContext, todo: Mapping[str, ItemState]) -> list[CheckResult]:
    try:
        listed = ctx.asr.azure_vms()
    except TransientError:
        raise
    except DrplanError as exc:
        return [CheckResult(f"azure-vm-running {vm}", False, str(exc), vm, pre.RULE_AZURE_VM) for vm in todo]
    out = []
    for vm, state in todo.items():
        name = _azure_name(vm, state)
        rg = (state.azure_resource_group or ctx.plan.azure.resource_group).lower()
        out.append(pre.azure_vm_check(vm, listed.get((rg, name.lower())) or AzureVmState(name, exists=False)))
    return out


def _azure_vm(ctx: RunContext, vm: str, state: ItemState) -> list[CheckResult]:
    name = _azure_name(vm, state)
    try:
        azure = ctx.asr.azure_vm(name, resource_group=state.azure_resource_group, vm=vm)
    except TransientError:
        raise
    except DrplanError as exc:
        return [CheckResult(f"azure-vm-running {vm}", False, str(exc), vm, pre.RULE_AZURE_VM)]
    return [pre.azure_vm_check(vm, azure)]


def _snapshots(ctx: RunContext, todo: Mapping[str, ItemState]) -> list[CheckResult]:
    by_name = {v.name: v for v in ctx.plan.vms}
    targets = {
        vm: (by_name[vm].vcenter_name if vm in by_name else None) or s.target_vm_name or vm
        for vm, s in todo.items()
    }
    if not targets:
        return []
    try:
        site = ctx.onprem.read_state(sorted(set(targets.values())))
    except TransientError:
        raise
    except DrplanError as exc:
        return [CheckResult("onprem-snapshots", False, str(exc), ctx.plan.vcenter.host, pre.RULE_SNAPSHOTS)]
    out = []
    for vm, target in targets.items():
        seen = site.vms.get(target)
        if seen is not None and seen.present:
            out.append(pre.snapshot_check(vm, target, seen.has_snapshots))
    return out
