"""The drill runbook: test failover of a plan's VMs to its isolated test network, verify, clean up.

Prefect-free.

A drill is the failback graph with other step kinds (:data:`STEPS`, added to :data:`drplan.runbook.STEPS`):
``test-failover X`` → ``drill-verify X`` per unit in graph order (a unit starts when its dependencies are
verified), drill hooks as their own nodes, then the ``drill-complete`` gate, ``drill-cleanup X`` for every
unit whatever happened, and the ``after_cleanup`` hooks. :func:`finish` is the safety net the flow calls in
``finally``: after a failure or a cancellation it cleans up every test failover this run (or an earlier,
killed one) left, runs the after-cleanup hooks that did not run, and lists test VMs that are still there.

Measured per VM on the run's clock (simulated time under ``--simulate``): RTO = drill start → test VM
verified; RPO = age of the recovery point used, when it was chosen (as a failback at that moment would lose).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from drplan import runbook
from drplan.errors import DrplanError, RecoveryPointError
from drplan.onprem import check_port_group
from drplan.plan import format_duration
from drplan.report import Report
from drplan.runtime import SUCCESS, NodeStatus, Runtime
from drplan.values import CheckResult, Phase, VmState

log = logging.getLogger(__name__)

FLOW_KIND = "drill"
STOP_WAIT = float(os.environ.get("DRPLAN_DRILL_STOP_WAIT", "3600"))  # wall seconds, a bound only
COMPLETE = "(all units)"  # gate node (not a valid plan name): every unit and hook of the drill graph finished


class DrillStopped(DrplanError):
    """The drill is stopping (failed or cancelled): no new test failover starts."""


def test_vm_name(vm) -> str:
    """The on-prem test VM a test failover creates: ``<vCenter name>-test`` (the simulator's naming)."""
    return f"{vm.vcenter_name or vm.name}-test"


# -- per-run drill state ---------------------------------------------------------------------------------
@dataclass
class Facts:
    """What the drill measured for one VM."""

    test_vm: str = ""
    point_time: datetime | None = None
    test_failover_start: datetime | None = None
    test_failover_end: datetime | None = None
    verified_at: datetime | None = None
    rto: float | None = None
    rpo: float | None = None
    checks_passed: int = 0
    checks_total: int = 0
    checks: str = ""
    cleanup: str = ""


@dataclass
class DrillState:
    lock: threading.Condition = field(default_factory=lambda: threading.Condition(threading.RLock()))
    stopping: bool = False
    started: dict[str, str] = field(default_factory=dict)  # VM -> unit, for every test failover requested
    issuing: set[str] = field(default_factory=set)  # VMs whose test-failover call has not returned yet
    cleaned: set[str] = field(default_factory=set)
    hooks_done: set[str] = field(default_factory=set)  # after-cleanup hooks that ran (or were tried)
    leftovers: list[str] | None = None  # test VMs still present after cleanup (None: not checked yet)
    cleanup_errors: dict[str, str] = field(default_factory=dict)


def state(rt: Runtime) -> DrillState:
    with rt._lock:
        return rt.extra.setdefault("drill", DrillState())


def _vm(rt: Runtime, name: str):
    return next(v for v in rt.plan.vms if v.name == name)


# -- the report ----------------------------------------------------------------------------------------
class DrillReport(Report):
    """The failback report's rows (status, point, notes) plus what a drill measures, compared with targets."""

    def __init__(self, plan, mode: str = "", started_at: datetime | None = None):
        super().__init__(plan.name, mode, started_at)
        self.targets = plan.drill.targets
        self.test_network = plan.drill.test_network or ""
        self.facts: dict[tuple[str, str], Facts] = {}
        self.leftovers: list[str] = []
        self.hooks: dict[str, str] = {}

    def fact(self, unit: str, vm: str) -> Facts:
        with self._lock:
            return self.facts.setdefault((unit, vm), Facts())

    def measure(self, unit: str, vm: str, **values) -> Facts:
        facts = self.fact(unit, vm)
        with self._lock:
            for name, value in values.items():
                setattr(facts, name, value)
        return facts

    @staticmethod
    def _against(value: float | None, target: float | None) -> str:
        if value is None:
            return ""
        text = format_duration(value)
        if target is None:
            return text
        return (
            f"{text} ✓ (target {format_duration(target)})"
            if value <= target
            else f"{text} ✗ over target {format_duration(target)}"
        )

    def units(self) -> list[dict[str, str]]:
        """One summary per unit: RTO = its slowest member, RPO = its oldest point, checks summed."""
        out, order = [], []
        for r in self.rows:
            if r.kind in ("hook", "gate") or r.unit in order:
                continue
            order.append(r.unit)
        for unit in order:
            rows = [r for r in self.rows if r.unit == unit]
            facts = [self.fact(unit, r.vm) for r in rows]
            rtos = [f.rto for f in facts if f.rto is not None]
            rpos = [f.rpo for f in facts if f.rpo is not None]
            rto = max(rtos) if rtos and len(rtos) == len(facts) else None
            rpo = max(rpos) if rpos else None
            statuses = {r.status for r in rows}
            out.append(
                {
                    "unit": unit,
                    "vms": ", ".join(r.vm for r in rows),
                    "status": statuses.pop() if len(statuses) == 1 else ", ".join(sorted(statuses)),
                    "rto": self._against(rto, self.targets.rto),
                    "rpo": self._against(rpo, self.targets.rpo),
                    "rto_seconds": "" if rto is None else f"{rto:.0f}",
                    "rpo_seconds": "" if rpo is None else f"{rpo:.0f}",
                    "rto_met": ""
                    if rto is None or self.targets.rto is None
                    else str(rto <= self.targets.rto).lower(),
                    "rpo_met": ""
                    if rpo is None or self.targets.rpo is None
                    else str(rpo <= self.targets.rpo).lower(),
                    "checks": f"{sum(f.checks_passed for f in facts)}/{sum(f.checks_total for f in facts)}",
                    "cleanup": "; ".join(sorted({f.cleanup for f in facts if f.cleanup})),
                }
            )
        return out

    def table(self) -> list[dict[str, str]]:
        """Per-VM rows: the run's status and point plus the drill's measurements."""
        out = []
        for r in self.rows:
            if r.kind in ("hook", "gate"):
                continue
            f = self.fact(r.unit, r.vm)
            out.append(
                {
                    "unit": r.unit,
                    "vm": r.vm,
                    "status": r.status,
                    "point": r.point.rsplit("/", 1)[-1],
                    "point_kind": r.point_kind,
                    "point_time": r.point_time.isoformat() if r.point_time else "",
                    "test_vm": f.test_vm,
                    "test_failover_start": f.test_failover_start.isoformat() if f.test_failover_start else "",
                    "verified_at": f.verified_at.isoformat() if f.verified_at else "",
                    "rto": self._against(f.rto, self.targets.rto),
                    "rpo": self._against(f.rpo, self.targets.rpo),
                    "rto_seconds": "" if f.rto is None else f"{f.rto:.0f}",
                    "rpo_seconds": "" if f.rpo is None else f"{f.rpo:.0f}",
                    "checks": f.checks,
                    "cleanup": f.cleanup,
                    "note": r.note,
                }
            )
        return out

    def markdown(self) -> str:
        lines = [f"# drplan drill report: {self.plan_name}", ""]
        meta = [f"**outcome:** {self.outcome or 'running'}"]
        if self.mode:
            meta.append(f"**mode:** {self.mode}")
        if self.test_network:
            meta.append(f"**test network:** {self.test_network}")
        if self.started_at:
            meta.append(f"**started:** {self.started_at:%Y-%m-%d %H:%M:%S}")
        if self.finished_at:
            meta.append(f"**finished:** {self.finished_at:%Y-%m-%d %H:%M:%S}")
        targets = [
            f"RTO {format_duration(self.targets.rto)}" if self.targets.rto is not None else "",
            f"RPO {format_duration(self.targets.rpo)}" if self.targets.rpo is not None else "",
        ]
        meta.append("**targets:** " + (", ".join(t for t in targets if t) or "none set"))
        lines += [" · ".join(meta), ""]
        bad = [c for c in self.preflight if not c.ok]
        if self.preflight:
            lines.append(f"Preflight: {len(self.preflight) - len(bad)}/{len(self.preflight)} checks passed.")
            lines += [f"- ✗ **{c.name}**: {c.message}" for c in bad]
            lines.append("")
        lines += [
            "## Units",
            "",
            "| unit | VMs | status | RTO | RPO | checks passed | cleanup |",
            "|---|---|---|---|---|---|---|",
        ]
        for u in self.units():
            cells = [u["unit"], u["vms"], u["status"], u["rto"], u["rpo"], u["checks"], u["cleanup"]]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines += [
            "",
            "## VMs",
            "",
            "| unit | VM | status | point | RPO | test failover | verified | RTO | checks "
            "| test VM | cleanup | note |",
            "|" + "---|" * 12,
        ]
        for r in self.table():
            cells = [
                r["unit"],
                r["vm"],
                r["status"],
                f"{r['point_kind']} {_when(r['point_time'])}".strip(),
                r["rpo"],
                _when(r["test_failover_start"]),
                _when(r["verified_at"]),
                r["rto"],
                r["checks"],
                r["test_vm"],
                r["cleanup"],
                r["note"],
            ]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        if self.hooks:
            lines += ["", "## Hooks", ""] + [f"- **{h}**: {what}" for h, what in self.hooks.items()]
        lines += ["", "## Test VMs left behind", ""]
        lines.append(
            ", ".join(f"**{v}**" for v in self.leftovers) + " — remove them by hand or re-run the drill"
            if self.leftovers
            else "None: every test VM was removed."
        )
        return "\n".join(lines) + "\n"


def _when(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S") if iso else ""


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def new_report(rt: Runtime) -> DrillReport:
    report = DrillReport(rt.plan, rt.mode + (" (dry run)" if rt.dry_run else ""), rt.started_at)
    for unit in rt.graph.units.values():
        for vm in unit.vms:
            report.row(unit.name, vm.name, unit.kind)
            report.measure(unit.name, vm.name, test_vm=test_vm_name(vm))
    return report


def _report(rt: Runtime) -> DrillReport | None:
    return rt.report if isinstance(rt.report, DrillReport) else None


# -- preflight -------------------------------------------------------------------------------------------
def preflight(rt: Runtime) -> list[CheckResult]:
    """The failback preflight (reads only) plus a drill's own: VMs replicating to on-prem, test network."""
    checks = runbook.preflight(rt)
    extra: list[CheckResult] = []
    net = rt.plan.drill.test_network
    if not net:
        extra.append(
            CheckResult(
                "drill-test-network",
                False,
                "the plan sets no drill.test_network: a drill needs "
                "an isolated test network (a vCenter port group)",
                rt.plan.name,
                "drill network",
            )
        )
    else:
        try:
            site = rt.onprem.read_state([], port_groups=[net])
            if site.connected:
                extra.append(check_port_group(site, net))
        except DrplanError as exc:
            extra.append(CheckResult(f"port-group {net}", False, str(exc), net, "drill network present"))
    # A drill starts from 'replicating to on-prem'; the failback preflight also accepts a half-done failback
    # (to resume it), which is no place for a drill.
    for vm, phase in sorted(rt.extra.get("phases", {}).items()):
        if phase in runbook.RESUMABLE and phase != Phase.reprotected_to_onprem:
            extra.append(
                CheckResult(
                    f"asr-item {vm}",
                    False,
                    f"VM {vm} is {phase}: a drill needs it replicating from Azure to on-prem (reprotected), "
                    "not in a failback",
                    vm,
                    "reprotect finished",
                )
            )
    checks = checks + extra
    if rt.report is not None:
        rt.report.preflight = checks
    return checks


# -- recovery points -------------------------------------------------------------------------------------
class _UnguardedGraph:
    """The run's graph with every unit's ``max_data_loss`` lifted (a drill loses no data: it measures RPO)."""

    def __init__(self, graph):
        from dataclasses import replace

        self._graph = graph
        self.units = {n: replace(u, max_data_loss=None) for n, u in graph.units.items()}

    def __getattr__(self, name):
        return getattr(self._graph, name)


def resolve_points(rt: Runtime) -> dict:
    """Each VM's point by the plan's policy, like a failback (groups: common app-consistent; standalone
    latest; overrides), without the ``max_data_loss`` refusal: the drill measures the point's age as RPO
    instead and notes where a real failback would refuse it."""
    from dataclasses import replace

    summary = runbook.resolve_points(replace(rt, graph=_UnguardedGraph(rt.graph)))
    now, report = rt.clock.now(), _report(rt)
    rt.extra["points_resolved_at"] = now
    for unit in rt.graph.units.values():
        if unit.max_data_loss is None or report is None:
            continue
        for vm in unit.vms:
            choice = rt.choices.get(vm.name)
            if choice is not None and (now - choice.point.time).total_seconds() > unit.max_data_loss:
                report.update(
                    unit.name,
                    vm.name,
                    note=f"a failback would refuse this point: older than "
                    f"max_data_loss {format_duration(unit.max_data_loss)}",
                )
    return summary


# -- steps -----------------------------------------------------------------------------------------------
def _budget(rt: Runtime, vm, name: str) -> float:
    return runbook._budget(rt, vm, name)


def _blocked_graph(rt: Runtime, node: str) -> str | None:
    if state(rt).stopping:
        return "the drill is stopping"
    return runbook._deps_blocked(rt, runbook.effective_predecessors(rt, node, FLOW_KIND))


def _blocked_verify(rt: Runtime, node: str) -> str | None:
    status = rt.get(node)
    if status in (NodeStatus.failed, NodeStatus.skipped) or (status != NodeStatus.running and not rt.dry_run):
        return ""  # already reported by its test failover: skip quietly
    return None


def test_failover_unit(rt: Runtime, unit: str) -> dict[str, str]:
    """Test-fail every member over (concurrently, each to its resolved point) to the test network."""
    rt.set(unit, NodeStatus.running)
    rt.emit(unit, "test-failover-started")
    results = dict(
        runbook._concurrently(lambda vm: _test_failover_vm(rt, unit, vm), list(rt.graph.units[unit].vms))
    )
    if not rt.dry_run:
        rt.emit(unit, "test-failed-over", ", ".join(f"{k}: {v}" for k, v in results.items()))
    return results


def _test_failover_vm(rt: Runtime, unit: str, vm) -> tuple[str, str]:
    choice = rt.choices.get(vm.name)
    net = rt.plan.drill.test_network
    if rt.dry_run:
        rt.note(
            f"VM {vm.name} (unit {unit}): would test-fail over to {choice.policy if choice else '?'} point "
            f"{choice.point.time.isoformat() if choice else '?'} on network {net}, "
            f"verify {test_vm_name(vm)}, "
            "then clean up"
        )
        return vm.name, "dry-run"
    if choice is None:
        raise RecoveryPointError(f"test failover of VM {vm.name}: no recovery point was resolved")
    ds = state(rt)
    with ds.lock:
        if ds.stopping:
            raise DrillStopped(f"test failover of VM {vm.name}: not started, the drill is stopping")
        fresh = vm.name not in ds.started
        ds.started[vm.name] = unit
        ds.issuing.add(vm.name)
    try:
        return _issue_test_failover(rt, unit, vm, choice, fresh)
    finally:
        with ds.lock:
            ds.issuing.discard(vm.name)
            ds.lock.notify_all()


def _issue_test_failover(rt: Runtime, unit: str, vm, choice, fresh: bool) -> tuple[str, str]:
    ref, report, net = rt.refs[vm.name], _report(rt), rt.plan.drill.test_network
    if fresh and any(a.lower() == "testfailovercleanup" for a in rt.asr.item_state(ref).allowed_operations):
        log.warning(
            "VM %s: a test failover of an earlier drill still awaits cleanup: cleaning it up first", vm.name
        )
        rt.asr.test_failover_cleanup(
            ref,
            comments=f"drplan: leftover of an earlier drill of plan {rt.plan.name}",
            timeout=_budget(rt, vm, "commit"),
        )
    start = rt.clock.now()
    if report is not None:
        since = rt.extra.get("points_resolved_at") or start  # RPO: the point's age when it was chosen
        report.measure(
            unit,
            vm.name,
            test_failover_start=start,
            point_time=choice.point.time,
            rpo=max(0.0, (since - choice.point.time).total_seconds()),
        )
        report.update(unit, vm.name, status="test-failing-over")
    rt.asr.test_failover(ref, choice.point, network_id=net, timeout=_budget(rt, vm, "failback"))
    if report is not None:
        report.measure(unit, vm.name, test_failover_end=rt.clock.now())
        report.update(unit, vm.name, status="test-failed-over")
    return vm.name, f"test failover to {choice.point.id.rsplit('/', 1)[-1]}"


def _checks(vm, st: VmState | None) -> tuple[int, int, str]:
    wanted = [("powered on", st is not None and st.power_state == "poweredOn")]
    if vm.verify.tools_running:
        wanted.append(("tools running", st is not None and st.tools_running_status == "guestToolsRunning"))
    if vm.verify.guest_ip:
        wanted.append(("guest IP", st is not None and bool(st.guest_ip)))
    passed = sum(ok for _, ok in wanted)
    return passed, len(wanted), ", ".join(f"{'✓' if ok else '✗'} {what}" for what, ok in wanted)


def verify_unit(rt: Runtime, unit: str) -> dict[str, str]:
    """Wait until every member's test VM is up (power, tools, guest IP) within its boot timeout."""
    if rt.dry_run:
        return {}
    report = _report(rt)

    def one(vm) -> tuple[str, str]:
        name = test_vm_name(vm)
        timeout = vm.verify.timeout or rt.plan.defaults.boot_timeout
        try:
            st = rt.onprem.wait_for_boot(
                name, timeout=timeout, require_tools=vm.verify.tools_running, require_ip=vm.verify.guest_ip
            )
        except DrplanError:
            if report is not None:
                try:
                    seen = rt.onprem.read_state([name]).vms.get(name)
                except DrplanError:
                    seen = None
                passed, total, text = _checks(vm, seen)
                report.measure(unit, vm.name, checks_passed=passed, checks_total=total, checks=text)
            raise
        now = rt.clock.now()
        passed, total, text = _checks(vm, st)
        if report is not None:
            rto = (now - rt.started_at).total_seconds() if rt.started_at else None
            report.measure(
                unit, vm.name, verified_at=now, rto=rto, checks_passed=passed, checks_total=total, checks=text
            )
            report.update(
                unit,
                vm.name,
                status="verified",
                verified_at=now,
                rto=rto,
                verification=f"ok {now:%H:%M:%S} ip {st.guest_ip or '-'}",
            )
        return vm.name, f"{name}: {text}"

    results = dict(runbook._concurrently(one, list(rt.graph.units[unit].vms)))
    rt.set(unit, NodeStatus.verified)
    rt.emit(unit, "verified", "; ".join(results.values()), vms=list(results))
    return results


def _approval_applies(rt: Runtime, hook) -> bool:
    return hook.kind != "approval" or rt.plan.drill.stop_for_approvals or hook.in_drills


def hook_node(rt: Runtime, node: str) -> dict[str, str]:
    """A drill hook: shell and wait hooks run; approvals stop the drill only when the plan says so."""
    hook = rt.graph.units[node].hook
    report = _report(rt)
    if not _approval_applies(rt, hook):
        what = "approval not required in an unattended drill (drill.stop_for_approvals / in_drills not set)"
        rt.set(node, NodeStatus.done)
        rt.emit(node, "hook-done", what)
        if report is not None:
            report.hooks[node] = what
        return {"hook": node, "result": what}
    result = runbook.hook_node(rt, node)
    if report is not None:
        report.hooks[node] = result["result"] or "done"
    return result


def complete(rt: Runtime, node: str = COMPLETE) -> dict[str, str]:
    """The gate between the drill graph and the cleanup: every unit and hook has finished, however."""
    rt.set(node, NodeStatus.done)
    units = [u for u, x in rt.graph.units.items() if x.kind != "hook"]
    verified = sum(1 for u in units if rt.get(u) in SUCCESS)
    rt.emit(node, "drill-complete", f"{verified}/{len(units)} units verified; cleaning up")
    return {"verified": f"{verified}/{len(units)}"}


def cleanup_unit(rt: Runtime, unit: str) -> dict[str, str]:
    """Clean up every member's test failover (removes the test VM). Runs whatever happened before."""
    if rt.dry_run:
        return {}
    results = dict(
        runbook._concurrently(lambda vm: _cleanup_vm(rt, unit, vm), list(rt.graph.units[unit].vms))
    )
    rt.emit(unit, "cleaned-up", ", ".join(f"{k}: {v}" for k, v in results.items()))
    return results


def _cleanup_vm(rt: Runtime, unit: str, vm) -> tuple[str, str]:
    ds, report = state(rt), _report(rt)
    ref = rt.refs.get(vm.name)
    if ref is None:
        return vm.name, "not in the vault: nothing to clean up"
    item = rt.asr.item_state(ref)
    pending = any(a.lower() == "testfailovercleanup" for a in item.allowed_operations)
    with ds.lock:
        started = vm.name in ds.started
    if not started and not pending and not item.current_job:
        return vm.name, "no test failover"
    try:
        if item.current_job:  # a test failover still running (a cancelled drill): let it end, then clean up
            job = rt.asr.get_job(item.current_job, vm=vm.name, operation="drill cleanup")
            if not job.done:
                rt.asr.wait_job(
                    job.name,
                    timeout=_budget(rt, vm, "failback"),
                    vm=vm.name,
                    operation="drill cleanup: wait for the test failover",
                    accept_suspended=True,
                )
        job = rt.asr.test_failover_cleanup(
            ref, comments=f"drplan drill of plan {rt.plan.name}", timeout=_budget(rt, vm, "commit")
        )
    except DrplanError as exc:
        with ds.lock:
            ds.cleanup_errors[vm.name] = str(exc)
        if report is not None:
            report.measure(unit, vm.name, cleanup=f"✗ {str(exc).splitlines()[0][:200]}")
        raise
    what = "nothing to clean up" if job.reused and not job.name else "test VM removed"
    with ds.lock:
        ds.cleaned.add(vm.name)
        ds.cleanup_errors.pop(vm.name, None)
    if report is not None:
        report.measure(unit, vm.name, cleanup=f"✓ {what}" if started or pending else "")
    return vm.name, what


def after_cleanup_hook(rt: Runtime, node: str) -> dict[str, str]:
    """An ``after_cleanup`` hook: runs after the cleanup, also after a failure (undoes drill changes)."""
    ds = state(rt)
    with ds.lock:
        ds.hooks_done.add(node)
    return hook_node(rt, node)


def after_cleanup_hooks(rt: Runtime) -> list[str]:
    """The plan's after-cleanup hooks that run in drills, in graph order."""
    out = []
    for node in rt.graph.order:
        unit = rt.graph.units[node]
        if unit.kind == "hook" and unit.hook.after_cleanup and FLOW_KIND in unit.hook.runs_in:
            out.append(node)
    return out


def leftovers(rt: Runtime) -> list[str]:
    """Test VMs of this run's test failovers still present on-prem (read in one batch)."""
    ds = state(rt)
    with ds.lock:
        names = [test_vm_name(_vm(rt, vm)) for vm in ds.started]
    if not names:
        return []
    try:
        site = rt.onprem.read_state(names)
    except DrplanError as exc:
        log.warning("could not read the test VMs after cleanup: %s", exc)
        return sorted(names) if ds.cleanup_errors else []
    return sorted(n for n in names if (v := site.vms.get(n)) is not None and v.present)


def finish(rt: Runtime, *, hooks: bool = True) -> list[str]:
    """The safety net, run in the flow's ``finally``: stop new test failovers, clean up what is left, run the
    after-cleanup hooks that did not run (``hooks``: the drill got past preflight), and return (and report)
    the test VMs still present."""
    ds, report = state(rt), _report(rt)
    with ds.lock:
        ds.stopping = True  # from here on no test failover starts; wait for calls already under way
        if not ds.lock.wait_for(lambda: not ds.issuing, timeout=STOP_WAIT):
            log.error(
                "test failovers of %s still under way after %ss; cleaning up anyway",
                sorted(ds.issuing),
                STOP_WAIT,
            )
    if rt.dry_run:
        return []
    units = {vm.name: u.name for u in rt.graph.units.values() for vm in u.vms}
    for vm in rt.plan.vms:
        with ds.lock:
            done = vm.name in ds.cleaned and vm.name not in ds.cleanup_errors
        if done or vm.name not in rt.refs:
            continue
        try:
            _cleanup_vm(rt, units.get(vm.name, vm.name), vm)
        except DrplanError as exc:
            log.error("drill cleanup of VM %s failed: %s", vm.name, exc)
    for node in after_cleanup_hooks(rt) if hooks else ():
        with ds.lock:
            if node in ds.hooks_done:
                continue
        try:
            after_cleanup_hook(rt, node)
        except DrplanError as exc:
            runbook.fail(rt, "hook", node, exc)
            log.error("after-cleanup hook %s failed: %s", node, exc)
    left = leftovers(rt)
    with ds.lock:
        ds.leftovers = left
    if report is not None:
        report.leftovers = left
    return left


def missed_targets(report: DrillReport) -> list[str]:
    """``"web-01 RTO 1h1m over target 1h"``-style lines for every unit that missed a target."""
    out = []
    for u in report.units():
        for what in ("rto", "rpo"):
            if u[f"{what}_met"] == "false":
                out.append(f"{u['unit']} {what.upper()} {u[what]}")
    return out


def nothing_left(names: Sequence[str]) -> str:
    return "no test VM left behind" if not names else f"test VMs left behind: {', '.join(names)}"


class DrillFailed(runbook.RunFailed):
    """The drill ended with failed or skipped units, or left test VMs behind. One message names them all."""

    def __init__(self, plan: str, failed: dict[str, str], skipped: dict[str, str], left: Sequence[str] = ()):
        self.plan, self.failed, self.skipped, self.leftovers = plan, dict(failed), dict(skipped), list(left)
        lines = [
            f"drill of plan {plan} did not pass: {len(failed)} failed, {len(skipped)} skipped; "
            + nothing_left(self.leftovers)
        ]
        lines += [f"  failed  {n}: {r}" for n, r in failed.items()]
        lines += [f"  skipped {n}: {r}" for n, r in skipped.items()]
        DrplanError.__init__(self, "\n".join(lines))


def simulated_estate(plan):
    """The simulated estate for a drill of ``plan`` (its test network is among the vCenter's port groups)."""
    from drplan.sim.estate import Estate

    return Estate.from_plan(plan)


def _blocked_never(rt: Runtime, node: str) -> str | None:
    return None


STEPS: dict[str, runbook.Step] = {
    "test-failover": runbook.Step("test-failover", test_failover_unit, _blocked_graph),
    "drill-verify": runbook.Step("drill-verify", verify_unit, _blocked_verify),
    "drill-hook": runbook.Step("drill-hook", hook_node, _blocked_graph),
    "drill-complete": runbook.Step("drill-complete", complete, _blocked_never),
    "drill-cleanup": runbook.Step("drill-cleanup", cleanup_unit, _blocked_never),
    "after-cleanup": runbook.Step("after-cleanup", after_cleanup_hook, _blocked_never),
}
runbook.STEPS.update(STEPS)
