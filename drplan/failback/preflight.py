"""Failback preflight: discover every plan VM in the vault and read every precondition, concurrently, before
any write. The pure rules are :mod:`drplan.recovery.preconditions`; this module reads what they judge."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from drplan.errors import DrplanError
from drplan.observed import CheckResult, Phase
from drplan.recovery import preconditions
from drplan.recovery.site_checks import check_connected, check_master_target, check_vm_present
from drplan.run.context import Runtime
from drplan.run.fanout import MEMBER_WORKERS

#: phases from which a failback run can continue (anything else fails preflight)
RESUMABLE = (
    Phase.reprotected_to_onprem,
    Phase.failback_in_progress,
    Phase.failed_back,
    Phase.committed,
    Phase.reprotected_to_azure,
)
DONE_FAILBACK = (Phase.failed_back, Phase.committed, Phase.reprotected_to_azure)


class PreflightFailed(DrplanError):
    """At least one precondition failed; nothing was written. ``checks`` are the failed checks."""

    def __init__(self, plan: str, checks: Sequence[CheckResult]):
        self.checks = list(checks)
        lines = [f"preflight of plan {plan} failed: {len(self.checks)} check(s); nothing was changed"]
        lines += [f"  ✗ {c.name}: {c.message}" for c in self.checks]
        super().__init__("\n".join(lines))


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
    from drplan.recovery.phase import phase_of

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
    infra: list[Any] = []  # filled by fabric_checks when the adapter can read the infrastructure
    jobs = (
        lambda: _vault_checks(rt, found, states),
        lambda: _site_checks(rt),
        lambda: fabric_checks(rt, infra),
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
    from drplan.recovery.phase import phase_of

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
    from drplan.recovery.points import point_checks

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


def fabric_checks(rt: Runtime, infra: list[Any]) -> list[CheckResult]:
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
    from drplan.recovery.phase import phase_of

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
