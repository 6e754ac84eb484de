"""The reprotect runbook: Azure → on-prem (``InMageReprotectInput``), the step before a failback.

Prefect-free.

The failback graph with other step kinds (:data:`STEPS`, added to :data:`drplan.run.steps.STEPS`):
``reprotect-onprem X`` per unit in graph order, then ``replication-health X`` per unit (waits until ASR
reports the item's replication health Normal). Before any write, :func:`preflight` checks every VM: in the
vault, failed over to Azure and committed (or already reprotected: then nothing is sent), the master-target
rules (a Windows VM needs a Windows master target, a Linux VM a Linux one, judged by the OS ASR reports; a
replication group shares one master target and one OS), master target present without snapshots, vCenter
connected, and the reprotect inputs (process server, retention drive, failback policy) known.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from drplan.errors import DrplanError, PreconditionError
from drplan.failback.preflight import discover, fabric_checks
from drplan.observed import CheckResult, Phase
from drplan.plan.schema import format_duration
from drplan.recovery import preconditions
from drplan.recovery.site_checks import check_connected, check_master_target
from drplan.run import steps as stepkinds
from drplan.run.budgets import budget as job_budget
from drplan.run.context import NodeStatus, Runtime
from drplan.run.fanout import MEMBER_WORKERS, concurrently
from drplan.run.report import Report
from drplan.run.steps import Step, deps_blocked, effective_predecessors

log = logging.getLogger(__name__)

FLOW_KIND = "reprotect"
HEALTH_POLL = 60.0  # seconds on the run's clock between replication-health reads
DONE = (
    Phase.reprotected_to_onprem,
    Phase.failback_in_progress,
    Phase.failed_back,
    Phase.committed,
    Phase.reprotected_to_azure,
)


@dataclass(frozen=True)
class Inputs:
    """One VM's ``InMageReprotectInput`` values (names or ARM ids, as the vault knows them)."""

    master_target: str
    process_server: str | None
    retention_drive: str | None
    datastore: str | None
    policy: str | None
    source: str = "plan"  # plan | simulated estate defaults


_os = preconditions.os_family


def _phase(rt: Runtime, vm: str):
    from drplan.recovery.phase import phase_of

    state = rt.asr.item_state(rt.refs[vm])
    return state, phase_of(state)


def _sim_master_target(rt: Runtime, name: str):
    estate = getattr(rt.onprem, "estate", None)
    if estate is None or rt.mode != "simulate":
        return None
    try:
        return estate.master_target(name)
    except KeyError:
        return None


def inputs_for(rt: Runtime, vm) -> Inputs:
    """The plan's ``reprotect`` section; in simulate mode, gaps come from the simulated estate."""
    opts = rt.plan.reprotect
    values = {
        "process_server": opts.process_server,
        "retention_drive": opts.retention_drive,
        "datastore": opts.datastore,
        "policy": opts.policy,
    }
    source = "plan"
    mt = _sim_master_target(rt, vm.master_target)
    if mt is not None and None in (values["process_server"], values["retention_drive"], values["policy"]):
        estate = rt.onprem.estate
        azure_ps = next((p.name for p in estate.process_servers if p.site == "azure"), None)
        values["process_server"] = values["process_server"] or azure_ps
        values["retention_drive"] = values["retention_drive"] or mt.retention_drive
        values["datastore"] = values["datastore"] or (mt.datastores[0] if mt.datastores else None)
        values["policy"] = values["policy"] or "failback-policy"
        source = "simulated estate defaults"
    return Inputs(master_target=vm.master_target, source=source, **values)


class ReprotectReport(Report):
    """Per VM: the reprotect inputs used, when the reprotect was sent, and the replication health seen."""

    def table(self) -> list[dict[str, str]]:
        return [
            {
                "unit": r.unit,
                "vm": r.vm,
                "status": r.status,
                "reprotect": r.reprotect,
                "health": r.verification,
                "inputs": r.note,
            }
            for r in self.rows
            if r.kind not in ("hook", "gate")
        ]

    def markdown(self) -> str:
        lines = self.heading("reprotect")
        lines += [
            "| unit | VM | status | reprotect | replication health | inputs |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.table():
            cells = [r["unit"], r["vm"], r["status"], r["reprotect"], r["health"], r["inputs"]]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        return "\n".join(lines) + "\n"


def new_report(rt: Runtime) -> ReprotectReport:
    report = ReprotectReport(rt.plan.name, rt.mode + (" (dry run)" if rt.dry_run else ""), rt.started_at)
    for unit in rt.graph.units.values():
        for vm in unit.vms:
            report.row(unit.name, vm.name, unit.kind)
    return report


# -- preflight -------------------------------------------------------------------------------------------
def preflight(rt: Runtime) -> list[CheckResult]:
    """Every precondition of the reprotect, read concurrently; writes nothing. Sets ``rt.extra['todo']``.

    Per VM (one item read each): its conditions (health errors, OS details), failed over to Azure and
    committed, the OS ASR reports vs the plan, the reprotect inputs. Vault: configuration server connected
    with a recent heartbeat, each master target and process server registered with it, master-target OS (as
    ASR reports it) matching its VMs'. Site: vCenter connected, master targets without snapshots.
    """
    checks = discover(rt)
    found = [v for v in rt.plan.vms if v.name in rt.refs]
    todo: dict[str, Inputs] = {}
    seen_os: dict[str, str] = {}
    infra: list = []
    jobs = [lambda: _site_checks(rt), lambda: fabric_checks(rt, infra)]
    jobs += [lambda vm=vm: _vm_checks(rt, vm, todo, seen_os) for vm in found]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(MEMBER_WORKERS, len(jobs))) as pool:
        for result in pool.map(lambda f: f(), jobs):
            checks += result
    checks += _master_target_os_checks(rt, found, seen_os, infra[0] if infra else None)
    if infra:
        checks += _registered_checks(todo, infra[0])
    checks += _group_checks(rt, seen_os)
    rt.extra["todo"] = todo
    if rt.report is not None:
        rt.report.preflight = checks
        for vm in found:
            if vm.name not in todo:
                unit = _unit_of(rt, vm.name)
                rt.report.update(
                    unit, vm.name, status="already reprotected", reprotect="not sent: already done"
                )
    return checks


def _vm_checks(rt: Runtime, vm, todo: dict[str, Inputs], seen_os: dict[str, str]) -> list[CheckResult]:
    """One VM's item: its conditions and OS (as ASR reports them), phase, commit state and inputs."""
    name = f"asr-item {vm.name}"
    try:
        state, phase = _phase(rt, vm.name)
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
    return out + _phase_checks(rt, vm, state, phase, todo)


def _phase_checks(rt: Runtime, vm, state, phase: Phase, todo: dict[str, Inputs]) -> list[CheckResult]:
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
    inputs = inputs_for(rt, vm)
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


def _site_checks(rt: Runtime) -> list[CheckResult]:
    mts = sorted({v.master_target for v in rt.plan.vms})
    try:
        state = rt.onprem.read_state(mts)
    except DrplanError as exc:
        return [CheckResult("vcenter-connected", False, str(exc), rt.plan.vcenter.host, "vCenter connected")]
    out = [check_connected(state, rt.plan.vcenter.host)]
    if state.connected:
        out += [check_master_target(state, m) for m in mts]
    return out


def _master_target_os_checks(rt: Runtime, found, seen_os: dict[str, str], infra) -> list[CheckResult]:
    """Each VM's OS family (as ASR reports it) matches its master target's: as ASR reports it when the
    configuration server lists the master target, else as the plan says."""
    plan_os = {m.name: m.os.value for m in rt.plan.master_targets}
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


def _group_checks(rt: Runtime, seen_os: dict[str, str]) -> list[CheckResult]:
    """A replication group's members share one master target and one OS (as ASR reports it)."""
    out = []
    for group in rt.plan.replication_groups:
        members = [v for v in rt.plan.vms if v.name in group.members]
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


def _unit_of(rt: Runtime, vm: str) -> str:
    return next(u.name for u in rt.graph.units.values() if any(v.name == vm for v in u.vms))


# -- steps -----------------------------------------------------------------------------------------------
def _blocked(rt: Runtime, node: str) -> str | None:
    return deps_blocked(rt, effective_predecessors(rt, node, FLOW_KIND))


def _blocked_health(rt: Runtime, node: str) -> str | None:
    status = rt.get(node)
    if status in (NodeStatus.failed, NodeStatus.skipped) or (status != NodeStatus.done and not rt.dry_run):
        return ""
    return None


def reprotect_unit(rt: Runtime, unit: str) -> dict[str, str]:
    """Reprotect every member Azure → on-prem (concurrently) and wait for the ASR jobs."""
    rt.set(unit, NodeStatus.running)
    rt.emit(unit, "reprotect-started")
    results = dict(concurrently(lambda vm: _reprotect_vm(rt, unit, vm), list(rt.graph.units[unit].vms)))
    if not rt.dry_run:
        rt.set(unit, NodeStatus.done)  # dependents may start their reprotect; health is awaited per unit
    rt.emit(unit, "reprotect-sent", ", ".join(f"{k}: {v}" for k, v in results.items()))
    return results


def _reprotect_vm(rt: Runtime, unit: str, vm) -> tuple[str, str]:
    inputs = rt.extra.get("todo", {}).get(vm.name)
    if inputs is None:
        return vm.name, "already reprotected"
    if rt.dry_run:
        rt.note(
            f"VM {vm.name}: would reprotect to on-prem via master target {inputs.master_target}, process "
            f"server {inputs.process_server}, retention drive {inputs.retention_drive}, datastore "
            f"{inputs.datastore or '-'}, failback policy {inputs.policy}"
        )
        return vm.name, "dry-run"
    if rt.report is not None:
        rt.report.update(
            unit,
            vm.name,
            status="reprotecting",
            note=f"master target {inputs.master_target}, process server {inputs.process_server}, "
            f"retention {inputs.retention_drive}, datastore {inputs.datastore or '-'}, "
            f"policy {inputs.policy} ({inputs.source})",
        )
    job = rt.asr.reprotect_to_onprem(
        rt.refs[vm.name],
        master_target_id=inputs.master_target,
        process_server_id=inputs.process_server,
        retention_drive=inputs.retention_drive,
        profile_id=inputs.policy,
        datastore_name=inputs.datastore,
        timeout=job_budget(rt, vm, "reprotect"),
    )
    if rt.report is not None:
        rt.report.update(unit, vm.name, status="reprotected", reprotect=f"sent {rt.clock.now():%H:%M:%S}")
    return vm.name, "reprotect job " + (job.name or "done")


def health_unit(rt: Runtime, unit: str) -> dict[str, str]:
    """Wait, on the run's clock, until every member's replication health is Normal (bounded)."""
    if rt.dry_run:
        return {}

    def one(vm) -> tuple[str, str]:
        ref = rt.refs[vm.name]
        budget = job_budget(rt, vm, "reprotect")
        deadline = rt.clock.monotonic() + budget
        seen: list[str] = []
        while True:
            health = rt.asr.item_state(ref).replication_health or "unknown"
            if not seen or seen[-1] != health:
                seen.append(health)
            rt.emit(unit, "replication-health", f"{vm.name}: {health}", vm=vm.name, health=health)
            if health.lower() == "normal":
                break
            if rt.clock.monotonic() >= deadline:
                raise PreconditionError(
                    f"reprotect of VM {vm.name}: replication health is still {health} after "
                    f"{format_duration(budget)}; check the process server and master target in ASR",
                    vm=vm.name,
                    operation="reprotect to on-prem",
                    rule="replication health OK",
                )
            rt.clock.sleep(HEALTH_POLL)
        now = rt.clock.now()
        what = " → ".join(seen)
        if rt.report is not None:
            rt.report.update(
                unit,
                vm.name,
                status="protected",
                verified_at=now,
                verification=f"health {what} at {now:%H:%M:%S}",
            )
        return vm.name, f"health {what}"

    results = dict(concurrently(one, list(rt.graph.units[unit].vms)))
    rt.set(unit, NodeStatus.verified)
    rt.emit(unit, "verified", "; ".join(f"{k}: {v}" for k, v in results.items()), vms=list(results))
    return results


STEPS: dict[str, Step] = {
    "reprotect-onprem": Step("reprotect-onprem", reprotect_unit, _blocked),
    "replication-health": Step("replication-health", health_unit, _blocked_health),
}
stepkinds.STEPS.update(STEPS)


def simulated_estate(plan):
    """The simulated estate for a reprotect of ``plan``: its VMs failed over to Azure (and committed)."""
    from drplan.sim.estate import Estate

    return Estate.from_plan(plan, phase=Phase.failed_over_to_azure)
