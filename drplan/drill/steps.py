"""The drill runbook: test failover of a plan's VMs to its isolated test network, verify, clean up.

Prefect-free.

A drill is the failback graph with other step kinds (:data:`STEPS`, added to :data:`drplan.run.steps.STEPS`):
``test-failover X`` → ``drill-verify X`` per unit in graph order (a unit starts when its dependencies are
verified), drill hooks as their own nodes, then the ``drill-complete`` gate, ``drill-cleanup X`` for every
unit whatever happened, and the ``after_cleanup`` hooks. :func:`finish` is the safety net the flow calls in
``finally``: after a failure or a cancellation it cleans up every test failover this run (or an earlier,
killed one) left, runs the after-cleanup hooks that did not run, and lists test VMs that are still there.

This module holds the drill's preflight, recovery points, test failover and verify steps and the step table;
:mod:`drplan.drill.state`, :mod:`drplan.drill.report`, :mod:`drplan.drill.hooks` and
:mod:`drplan.drill.cleanup` hold the rest (re-exported here).

Measured per VM on the run's clock (simulated time under ``--simulate``): RTO = drill start → test VM
verified; RPO = age of the recovery point used, when it was chosen (as a failback at that moment would lose).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from drplan.drill.cleanup import STOP_WAIT, cleanup_unit, finish, leftovers
from drplan.drill.hooks import after_cleanup_hook, after_cleanup_hooks, hook_node
from drplan.drill.report import DrillReport, Facts, missed_targets, new_report, nothing_left, report_of
from drplan.drill.state import FLOW_KIND, DrillState, DrillStopped, state, test_vm_name
from drplan.errors import DrplanError, RecoveryPointError
from drplan.failback import preflight as failback_preflight
from drplan.failback.point_choice import resolve_points as resolve_failback_points
from drplan.failback.preflight import RESUMABLE
from drplan.observed import CheckResult, Phase, VmState
from drplan.plan.schema import format_duration
from drplan.recovery.site_checks import check_port_group
from drplan.run import steps as stepkinds
from drplan.run.budgets import budget
from drplan.run.context import SUCCESS, NodeStatus, Runtime
from drplan.run.fanout import concurrently
from drplan.run.outcomes import RunFailed
from drplan.run.steps import Step, deps_blocked, effective_predecessors

__all__ = [
    "COMPLETE",
    "FLOW_KIND",
    "STEPS",
    "STOP_WAIT",
    "DrillFailed",
    "DrillReport",
    "DrillState",
    "DrillStopped",
    "Facts",
    "after_cleanup_hook",
    "after_cleanup_hooks",
    "cleanup_unit",
    "complete",
    "finish",
    "hook_node",
    "leftovers",
    "missed_targets",
    "new_report",
    "nothing_left",
    "preflight",
    "resolve_points",
    "simulated_estate",
    "state",
    "test_failover_unit",
    "test_vm_name",
    "verify_unit",
]

log = logging.getLogger(__name__)

COMPLETE = "(all units)"  # gate node (not a valid plan name): every unit and hook of the drill graph finished


# -- preflight -------------------------------------------------------------------------------------------
def preflight(rt: Runtime) -> list[CheckResult]:
    """The failback preflight (reads only) plus a drill's own: VMs replicating to on-prem, test network."""
    checks = failback_preflight.preflight(rt)
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
        if phase in RESUMABLE and phase != Phase.reprotected_to_onprem:
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

    summary = resolve_failback_points(replace(rt, graph=_UnguardedGraph(rt.graph)))
    now, report = rt.clock.now(), report_of(rt)
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


def _blocked_graph(rt: Runtime, node: str) -> str | None:
    if state(rt).stopping:
        return "the drill is stopping"
    return deps_blocked(rt, effective_predecessors(rt, node, FLOW_KIND))


def _blocked_verify(rt: Runtime, node: str) -> str | None:
    status = rt.get(node)
    if status in (NodeStatus.failed, NodeStatus.skipped) or (status != NodeStatus.running and not rt.dry_run):
        return ""  # already reported by its test failover: skip quietly
    return None


def test_failover_unit(rt: Runtime, unit: str) -> dict[str, str]:
    """Test-fail every member over (concurrently, each to its resolved point) to the test network."""
    rt.set(unit, NodeStatus.running)
    rt.emit(unit, "test-failover-started")
    results = dict(concurrently(lambda vm: _test_failover_vm(rt, unit, vm), list(rt.graph.units[unit].vms)))
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
    ref, report, net = rt.refs[vm.name], report_of(rt), rt.plan.drill.test_network
    if fresh and any(a.lower() == "testfailovercleanup" for a in rt.asr.item_state(ref).allowed_operations):
        log.warning(
            "VM %s: a test failover of an earlier drill still awaits cleanup: cleaning it up first", vm.name
        )
        rt.asr.test_failover_cleanup(
            ref,
            comments=f"drplan: leftover of an earlier drill of plan {rt.plan.name}",
            timeout=budget(rt, vm, "commit"),
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
    rt.asr.test_failover(ref, choice.point, network_id=net, timeout=budget(rt, vm, "failback"))
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
    report = report_of(rt)

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

    results = dict(concurrently(one, list(rt.graph.units[unit].vms)))
    rt.set(unit, NodeStatus.verified)
    rt.emit(unit, "verified", "; ".join(results.values()), vms=list(results))
    return results


def complete(rt: Runtime, node: str = COMPLETE) -> dict[str, str]:
    """The gate between the drill graph and the cleanup: every unit and hook has finished, however."""
    rt.set(node, NodeStatus.done)
    units = [u for u, x in rt.graph.units.items() if x.kind != "hook"]
    verified = sum(1 for u in units if rt.get(u) in SUCCESS)
    rt.emit(node, "drill-complete", f"{verified}/{len(units)} units verified; cleaning up")
    return {"verified": f"{verified}/{len(units)}"}


class DrillFailed(RunFailed):
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


STEPS: dict[str, Step] = {
    "test-failover": Step("test-failover", test_failover_unit, _blocked_graph),
    "drill-verify": Step("drill-verify", verify_unit, _blocked_verify),
    "drill-hook": Step("drill-hook", hook_node, _blocked_graph),
    "drill-complete": Step("drill-complete", complete, _blocked_never),
    "drill-cleanup": Step("drill-cleanup", cleanup_unit, _blocked_never),
    "after-cleanup": Step("after-cleanup", after_cleanup_hook, _blocked_never),
}
stepkinds.STEPS.update(STEPS)
