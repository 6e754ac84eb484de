"""The drill's own steps: preflight, recovery points (measured as RPO, never refused), test failover,
verification of the test VMs, and the gate before cleanup. :mod:`drplan.drill.kind` lays them out;
:mod:`drplan.drill.cleanup`, :mod:`drplan.drill.hooks` and :mod:`drplan.drill.report` hold the rest.

Measured per VM on the run's clock (simulated time under ``--simulate``): RTO = drill start → test VM
verified; RPO = age of the recovery point used, when it was chosen (as a failback at that moment would lose).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial

from drplan.drill import forward
from drplan.drill.report import nothing_left, report_of
from drplan.drill.state import DrillStopped, state, test_vm_name
from drplan.errors import DrplanError, RecoveryPointError
from drplan.failback import preflight as failback_preflight
from drplan.failback.point_choice import decide_all
from drplan.failback.preflight import RESUMABLE
from drplan.observed import CheckResult, Phase, VmState
from drplan.plan.graph import Unit
from drplan.plan.schema import Vm, format_duration
from drplan.recovery.points import PointDecision, decide
from drplan.recovery.site_checks import check_port_group
from drplan.run.budgets import budget
from drplan.run.context import SUCCESS, NodeStatus, RunContext
from drplan.run.fanout import concurrently, gather
from drplan.run.outcomes import RunFailed
from drplan.run.steps import blocked_by_dependencies

log = logging.getLogger(__name__)

COMPLETE = "(all units)"  # gate node (not a valid plan name): every unit and hook of the drill graph finished


# -- preflight -------------------------------------------------------------------------------------------
def preflight(ctx: RunContext) -> list[CheckResult]:
    """The failback preflight (reads only) plus a drill's own: classic VMs replicating to on-prem,
    modernized VMs replicating to Azure with TestFailover allowed (:mod:`drplan.drill.forward`), the test
    network."""
    checks = forward.preflight_checks(ctx, failback_preflight.preflight(ctx))
    modern = forward.modernized(ctx)
    classic = [v for v in ctx.plan.vms if v.name not in modern]
    extra: list[CheckResult] = []
    net = ctx.plan.drill.test_network
    if not net:
        extra.append(
            CheckResult(
                "drill-test-network",
                False,
                "the plan sets no drill.test_network: a drill needs an isolated test network ("
                + " and ".join(
                    w
                    for w, used in (("a vCenter port group", classic), ("an Azure virtual network", modern))
                    if used
                )
                + ")",
                ctx.plan.name,
                "drill network",
            )
        )
    elif classic:
        try:
            site = ctx.onprem.read_state([], port_groups=[net])
            if site.connected:
                extra.append(check_port_group(site, net))
        except DrplanError as exc:
            extra.append(CheckResult(f"port-group {net}", False, str(exc), net, "drill network present"))
    # A drill starts from 'replicating to on-prem'; the failback preflight also accepts a half-done failback
    # (to resume it), which is no place for a drill.
    for vm, phase in sorted(ctx.state.phases.items()):
        if vm not in modern and phase in RESUMABLE and phase != Phase.reprotected_to_onprem:
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
    report = report_of(ctx)
    if report is not None:
        report.scope = forward.scope_lines(ctx)
    if ctx.report is not None:
        ctx.report.preflight = checks
    return checks


# -- recovery points -------------------------------------------------------------------------------------
def resolve_points(ctx: RunContext) -> dict:
    """Each VM's point by the plan's policy, like a failback (groups: common app-consistent; standalone
    latest; overrides), without the ``max_data_loss`` refusal: the drill measures the point's age as RPO
    instead and notes where a real failback would refuse it."""
    decisions = {**decide_all(ctx, guard=False), **forward.decide_forward(ctx)}
    with ctx.lock:
        ctx.state.decisions.update(decisions)
        ctx.state.points_resolved_at = ctx.clock.now()
    for unit in ctx.graph.units.values():
        if unit.name in decisions:
            _report_points(ctx, unit, decisions[unit.name])
    return {unit: {vm: c.to_dict() for vm, c in d.choices.items()} for unit, d in decisions.items()}


def _report_points(ctx: RunContext, unit: Unit, decision: PointDecision) -> None:
    report = report_of(ctx)
    if report is not None:
        for vm, choice in decision.choices.items():
            report.update(
                unit.name,
                vm,
                point=choice.point.id,
                point_time=choice.point.time,
                point_kind="app-consistent" if choice.point.app_consistent else "crash-consistent",
                point_age=decision.age(vm).total_seconds(),
                data_loss=choice.data_loss_seconds,
            )
            if unit.max_data_loss is not None and decision.age(vm).total_seconds() > unit.max_data_loss:
                report.update(
                    unit.name,
                    vm,
                    note=f"a failback would refuse this point: older than "
                    f"max_data_loss {format_duration(unit.max_data_loss)}",
                )


def _decide_again(ctx: RunContext, unit: str) -> None:
    """Right before a unit's test failover, its points decided again from a fresh read, by the same policy:
    a point chosen when the drill started may have left ASR's retention by the time a later tier runs (after
    an approval, a slow tier), and RPO is the age of the point when it is used."""
    u = ctx.graph.units[unit]
    vms = [v.name for v in u.vms if v.name in ctx.state.refs]
    if ctx.dry_run or unit not in ctx.state.decisions or not vms:
        return
    reads = gather([partial(ctx.asr.recovery_points, ctx.state.refs[vm]) for vm in vms])
    decision = decide(
        forward.with_override(ctx, u), dict(zip(vms, reads, strict=True)), now=ctx.clock.now(), guard=False
    )
    with ctx.lock:
        ctx.state.decisions[unit] = decision
    _report_points(ctx, u, decision)


def blocked_graph(ctx: RunContext, node: str) -> str | None:
    """A drill's graph step: not once the drill is stopping, else when its dependencies succeeded."""
    if state(ctx).stopping:
        return "the drill is stopping"
    return blocked_by_dependencies(ctx, node)


def blocked_verify(ctx: RunContext, node: str) -> str | None:
    """Verify a unit whose test failover is under way (quietly skipped when it failed)."""
    status = ctx.get(node)
    if status in (NodeStatus.failed, NodeStatus.skipped) or (
        status != NodeStatus.running and not ctx.dry_run
    ):
        return ""  # already reported by its test failover: skip quietly
    return None


def test_failover_unit(ctx: RunContext, unit: str) -> dict[str, str]:
    """Test-fail every member over (concurrently, each to its resolved point) to the test network."""
    ctx.set(unit, NodeStatus.running)
    ctx.emit(unit, "test-failover-started")
    _decide_again(ctx, unit)
    results = dict(concurrently(lambda vm: _test_failover_vm(ctx, unit, vm), list(ctx.graph.units[unit].vms)))
    if not ctx.dry_run:
        ctx.emit(unit, "test-failed-over", ", ".join(f"{k}: {v}" for k, v in results.items()))
    return results


def _test_failover_vm(ctx: RunContext, unit: str, vm: Vm) -> tuple[str, str]:
    decision = ctx.state.decisions.get(unit)
    choice = decision.choices.get(vm.name) if decision is not None else None
    net = ctx.plan.drill.test_network
    if ctx.dry_run:
        ctx.note(
            f"VM {vm.name} (unit {unit}): would test-fail over to {choice.policy if choice else '?'} point "
            f"{choice.point.time.isoformat() if choice else '?'} on network {net}, "
            f"verify {_test_vm(ctx, vm)}, "
            "then clean up"
        )
        return vm.name, "dry-run"
    if choice is None:
        raise RecoveryPointError(f"test failover of VM {vm.name}: no recovery point was resolved")
    ds = state(ctx)
    with ds.lock:
        if ds.stopping:
            raise DrillStopped(f"test failover of VM {vm.name}: not started, the drill is stopping")
        fresh = vm.name not in ds.started
        ds.started[vm.name] = unit
        ds.issuing.add(vm.name)
    try:
        return _issue_test_failover(ctx, unit, vm, choice, fresh)
    finally:
        with ds.lock:
            ds.issuing.discard(vm.name)
            ds.lock.notify_all()


def _issue_test_failover(ctx: RunContext, unit: str, vm, choice, fresh: bool) -> tuple[str, str]:
    ref, report, net = ctx.state.refs[vm.name], report_of(ctx), ctx.plan.drill.test_network
    if fresh and any(a.lower() == "testfailovercleanup" for a in ctx.asr.item_state(ref).allowed_operations):
        log.warning(
            "VM %s: a test failover of an earlier drill still awaits cleanup: cleaning it up first", vm.name
        )
        ctx.asr.test_failover_cleanup(
            ref,
            comments=f"drplan: leftover of an earlier drill of plan {ctx.plan.name}",
            timeout=budget(ctx, vm, "commit"),
        )
    start = ctx.clock.now()
    if report is not None:
        report.measure(unit, vm.name, test_vm=_test_vm(ctx, vm))
        decision = ctx.state.decisions.get(unit)  # RPO: the point's age when chosen, right before this write
        since = decision.decided_at if decision is not None else start
        report.measure(
            unit,
            vm.name,
            test_failover_start=start,
            point_time=choice.point.time,
            rpo=max(0.0, (since - choice.point.time).total_seconds()),
        )
        report.update(unit, vm.name, status="test-failing-over")
    ctx.asr.test_failover(ref, choice.point, network_id=net, timeout=budget(ctx, vm, "failback"))
    if report is not None:
        report.measure(unit, vm.name, test_failover_end=ctx.clock.now())
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


def _test_vm(ctx: RunContext, vm: Vm) -> str:
    """The test VM a member's test failover creates: in Azure (modernized) or on-prem (classic)."""
    if forward.is_forward(ctx, vm.name):
        return f"{forward.test_vm(ctx, vm)[0]} (Azure)"
    return test_vm_name(vm)


def verify_unit(ctx: RunContext, unit: str) -> dict[str, str]:
    """Wait until every member's test VM is up within its boot timeout: on-prem (power, tools, guest IP), or
    in Azure through the compute API for a modernized VM (power state running, VM agent ready)."""
    if ctx.dry_run:
        return {}
    report = report_of(ctx)

    def one(vm) -> tuple[str, str]:
        timeout = vm.verify.timeout or ctx.plan.defaults.boot_timeout
        if forward.is_forward(ctx, vm.name):
            return _verify_in_azure(ctx, unit, vm, timeout)
        name = test_vm_name(vm)
        try:
            st = ctx.onprem.wait_for_boot(
                name, timeout=timeout, require_tools=vm.verify.tools_running, require_ip=vm.verify.guest_ip
            )
        except DrplanError:
            if report is not None:
                try:
                    seen = ctx.onprem.read_state([name]).vms.get(name)
                except DrplanError:
                    seen = None
                passed, total, text = _checks(vm, seen)
                report.measure(unit, vm.name, checks_passed=passed, checks_total=total, checks=text)
            raise
        _verified(ctx, unit, vm, _checks(vm, st), f"ip {st.guest_ip or '-'}")
        return vm.name, f"{name}: {_checks(vm, st)[2]}"

    results = dict(concurrently(one, list(ctx.graph.units[unit].vms)))
    ctx.set(unit, NodeStatus.verified)
    ctx.emit(unit, "verified", "; ".join(results.values()), vms=list(results))
    return results


def _verify_in_azure(ctx: RunContext, unit: str, vm: Vm, timeout: float) -> tuple[str, str]:
    report = report_of(ctx)
    name, rg = forward.test_vm(ctx, vm)
    try:
        st = forward.wait_until_up(ctx, vm, timeout)
    except DrplanError:
        if report is not None:
            try:
                seen = ctx.asr.azure_vm(name, resource_group=rg, vm=vm.name)
            except DrplanError:
                seen = None
            passed, total, text = forward.checks_of(seen)
            report.measure(unit, vm.name, checks_passed=passed, checks_total=total, checks=text)
        raise
    checks = forward.checks_of(st)
    _verified(ctx, unit, vm, checks, f"in Azure, agent {st.agent_version or '?'}")
    return vm.name, f"{name} (Azure): {checks[2]}"


def _verified(ctx: RunContext, unit: str, vm: Vm, checks: tuple[int, int, str], seen: str) -> None:
    report = report_of(ctx)
    if report is None:
        return
    now = ctx.clock.now()
    passed, total, text = checks
    rto = (now - ctx.state.started_at).total_seconds() if ctx.state.started_at else None
    report.measure(
        unit, vm.name, verified_at=now, rto=rto, checks_passed=passed, checks_total=total, checks=text
    )
    report.update(
        unit, vm.name, status="verified", verified_at=now, rto=rto, verification=f"ok {now:%H:%M:%S} {seen}"
    )


def complete(ctx: RunContext, node: str = COMPLETE) -> dict[str, str]:
    """The gate between the drill graph and the cleanup: every unit and hook has finished, however."""
    ctx.set(node, NodeStatus.done)
    units = [u for u, x in ctx.graph.units.items() if x.kind != "hook"]
    verified = sum(1 for u in units if ctx.get(u) in SUCCESS)
    ctx.emit(node, "drill-complete", f"{verified}/{len(units)} units verified; cleaning up")
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
