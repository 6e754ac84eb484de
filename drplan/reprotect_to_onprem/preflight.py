"""Reprotect preflight: every precondition of a reprotect Azure → on-prem, read concurrently, nothing written.

Per VM: in the vault, failed over to Azure and committed (or already reprotected: then nothing is sent), the
master-target rules (a Windows VM needs a Windows master target, a Linux VM a Linux one, judged by the OS ASR
reports; a replication group shares one master target and one OS), the reprotect inputs known. Vault and
site: configuration server, master targets and process servers registered, vCenter connected, master
targets without snapshots.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from drplan.errors import DrplanError, TransientError
from drplan.failback.preflight import discover, fabric_checks
from drplan.observed import CheckResult, Infrastructure, Phase
from drplan.recovery import preconditions
from drplan.recovery.site_checks import check_connected, check_master_target
from drplan.reprotect_to_onprem.inputs import DONE, Inputs, _os, _phase, inputs_for
from drplan.reprotect_to_onprem.preflight_modernized import modernized_checks
from drplan.run.context import RunContext
from drplan.run.fanout import gather


def preflight(ctx: RunContext) -> list[CheckResult]:
    """Every precondition of the reprotect, read concurrently; writes nothing. Sets
    ``ctx.state.reprotect_inputs``.

    Per VM (one item read each): its conditions (health errors, OS details), failed over to Azure and
    committed, the OS ASR reports vs the plan, the reprotect inputs. Vault: configuration server connected
    with a recent heartbeat, each master target and process server registered with it, master-target OS (as
    ASR reports it) matching its VMs'. Site: vCenter connected, master targets without snapshots.
    """
    checks = discover(ctx)
    found = [v for v in ctx.plan.vms if v.name in ctx.state.refs]
    states = _states(ctx, found)
    modern = [v for v in found if v.name in states and states[v.name].family == "modernized"]
    found = [v for v in found if v not in modern]  # classic (or unread: the classic path reports it)
    todo: dict[str, Inputs] = {}
    seen_os: dict[str, str] = {}
    infra: list[Infrastructure] = []
    jobs: list[Callable[[], list[CheckResult]]] = []
    if found or not modern:
        jobs += [lambda: _site_checks(ctx), lambda: fabric_checks(ctx, infra)]
    jobs += [partial(_vm_checks, ctx, vm, todo, seen_os) for vm in found]
    if modern:
        jobs.append(partial(modernized_checks, ctx, {v.name: states[v.name] for v in modern}, todo))
    for result in gather(jobs):
        checks += result
    checks += _master_target_os_checks(ctx, found, seen_os, infra[0] if infra else None)
    if infra:
        checks += _registered_checks({k: v for k, v in todo.items() if v.provider == "classic"}, infra[0])
    checks += _group_checks(ctx, seen_os, {v.name for v in modern})
    warning = preconditions.classic_support_warning([v.name for v in found if v.name in states])
    if warning:
        log.warning("%s", warning)
        checks.append(CheckResult("classic-support", True, warning, ctx.plan.name, "classic out of support"))
    ctx.state.reprotect_inputs = todo
    if ctx.report is not None:
        ctx.report.preflight = checks
        for vm in found:
            if vm.name not in todo:
                unit = _unit_of(ctx, vm.name)
                ctx.report.update(
                    unit, vm.name, status="already reprotected", reprotect="not sent: already done"
                )
    return checks


log = logging.getLogger(__name__)


def _states(ctx: RunContext, found) -> dict[str, Any]:
    """Every found VM's item state in one batched read (empty when it fails: each VM is then read alone)."""
    if not found:
        return {}
    try:
        return ctx.asr.item_states([ctx.state.refs[v.name] for v in found])
    except TransientError:
        raise
    except DrplanError:
        return {}


def _vm_checks(ctx: RunContext, vm, todo: dict[str, Inputs], seen_os: dict[str, str]) -> list[CheckResult]:
    """One VM's item: its conditions and OS (as ASR reports them), phase, commit state and inputs."""
    name = f"asr-item {vm.name}"
    try:
        state, phase = _phase(ctx, vm.name)
    except DrplanError as exc:
        return [CheckResult(name, False, str(exc), vm.name, "VM readable in the vault")]
    actual = _os(state.os_type) or vm.os.value
    seen_os[vm.name] = actual
    out: list[CheckResult] = []
    if actual != vm.os.value:
        out.append(
            CheckResult(
                f"os {vm.name}",
                False,
                f"VM {vm.name} runs {actual} according to ASR, but the "
                f"plan says {vm.os.value}: fix the plan's os and master_target",
                vm.name,
                "Windows VM ↔ Windows master target",
            )
        )
    if phase in DONE:
        out.append(CheckResult(name, True, f"already {phase}: nothing to send", vm.name, "reprotect"))
        return out
    out += preconditions.item_condition_checks(vm.name, state)
    return out + _phase_checks(ctx, vm, state, phase, todo)


def _phase_checks(ctx: RunContext, vm, state, phase: Phase, todo: dict[str, Inputs]) -> list[CheckResult]:
    name = f"asr-item {vm.name}"
    if phase != Phase.failed_over_to_azure:
        return [
            CheckResult(
                name,
                False,
                f"VM {vm.name} is {phase}: reprotect to on-prem needs it failed over to Azure and committed",
                vm.name,
                "failed over to Azure",
            )
        ]
    if any(a.lower() == "commit" for a in state.allowed_operations):
        return [
            CheckResult(
                name,
                False,
                f"VM {vm.name}: its failover to Azure is not committed yet; commit it first",
                vm.name,
                "commit the failover to Azure before reprotect",
            )
        ]
    inputs = inputs_for(ctx, vm)
    missing = [
        k
        for k, v in (
            ("reprotect.process_server", inputs.process_server),
            ("reprotect.retention_drive", inputs.retention_drive),
            ("reprotect.policy", inputs.policy),
        )
        if not v
    ]
    if missing:
        return [
            CheckResult(
                f"reprotect-inputs {vm.name}",
                False,
                f"VM {vm.name}: set {', '.join(missing)} in the plan (InMageReprotectInput needs them)",
                vm.name,
                "reprotect inputs",
            )
        ]
    todo[vm.name] = inputs
    return [CheckResult(name, True, f"{phase}: will reprotect", vm.name, "failed over to Azure")]


def _site_checks(ctx: RunContext) -> list[CheckResult]:
    mts = sorted({v.master_target for v in ctx.plan.vms})
    try:
        state = ctx.onprem.read_state(mts)
    except DrplanError as exc:
        return [CheckResult("vcenter-connected", False, str(exc), ctx.plan.vcenter.host, "vCenter connected")]
    out = [check_connected(state, ctx.plan.vcenter.host)]
    if state.connected:
        out += [check_master_target(state, m) for m in mts]
    return out


def _master_target_os_checks(ctx: RunContext, found, seen_os: dict[str, str], infra) -> list[CheckResult]:
    """Each VM's OS family (as ASR reports it) matches its master target's: as ASR reports it when the
    configuration server lists the master target, else as the plan says."""
    plan_os = {m.name: m.os.value for m in ctx.plan.master_targets}
    out: list[CheckResult] = []
    for vm in found:
        actual = seen_os.get(vm.name)
        if actual is None:
            continue
        if infra is not None and infra.master_target(vm.master_target) is not None:
            out += preconditions.master_target_os_check(vm.name, actual, vm.master_target, infra)
            continue
        want = plan_os.get(vm.master_target)
        if want is not None and actual != want:
            out.append(
                CheckResult(
                    f"master-target-os {vm.name}",
                    False,
                    f"a {actual} VM needs a {actual} master target; VM {vm.name} is mapped to "
                    f"{vm.master_target}, which runs {want}",
                    vm.name,
                    preconditions.RULE_MT_OS,
                )
            )
    return out


def _registered_checks(todo: dict[str, Inputs], infra) -> list[CheckResult]:
    """The master targets and process servers the reprotect will name are registered with the CS."""
    mts = sorted({i.master_target for i in todo.values()})
    pss = sorted({i.process_server for i in todo.values() if i.process_server})
    return [preconditions.master_target_registered(m, infra) for m in mts] + [
        preconditions.process_server_registered(p, infra, "reprotect.process_server") for p in pss
    ]


def _group_checks(ctx: RunContext, seen_os: dict[str, str], modern: set[str]) -> list[CheckResult]:
    """A replication group's members share one master target and one OS (as ASR reports it); groups on the
    modernized providers have no master target."""
    out = []
    for group in ctx.plan.replication_groups:
        if modern & set(group.members):
            continue
        members = [v for v in ctx.plan.vms if v.name in group.members]
        targets = sorted({v.master_target for v in members})
        systems = sorted({seen_os.get(v.name, v.os.value) for v in members})
        if len(targets) > 1 or len(systems) > 1:
            out.append(
                CheckResult(
                    f"group-master-target {group.name}",
                    False,
                    f"replication group {group.name} must use one master target and one OS; its members use "
                    f"master targets {', '.join(targets)} and run {', '.join(systems)}",
                    group.name,
                    "all members of a replication group use the same master target and OS",
                )
            )
    return out


def _unit_of(ctx: RunContext, vm: str) -> str:
    return next(u.name for u in ctx.graph.units.values() if any(v.name == vm for v in u.vms))
