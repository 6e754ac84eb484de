"""The drill of modernized VMs: a forward test failover into Azure (InMageRcm items, replicating on-prem →
Azure), verified through the compute API (power state running, VM agent ready). ASR cannot test a failback
of an InMageRcmFailback item, so a modernized drill exercises the forward recovery, in plan order.

What differs from the classic drill per item, dispatched on the provider ASR reports
(:func:`drplan.recovery.phase.is_modernized`): the preflight rules (replicating to Azure, healthy,
TestFailover allowed, recovery points), the point decision (the drill's point id, as the classic drill),
where the test VM is verified and looked for after cleanup (Azure, not vCenter).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial

from drplan.errors import DrplanError, RecoveryPointError, TransientError
from drplan.observed import AzureVmState, CheckResult, ItemState, Phase
from drplan.plan.graph import Unit
from drplan.plan.schema import RecoveryPointPolicy, Vm
from drplan.recovery import preconditions as pre
from drplan.recovery.phase import is_modernized, normalise, phase_of
from drplan.recovery.points import PointDecision, decide, point_checks
from drplan.run.context import RunContext
from drplan.run.fanout import gather

log = logging.getLogger(__name__)


class TestVmNotUp(DrplanError):
    """A test VM in Azure did not run with its VM agent ready within the VM's boot timeout."""


#: the first lines of a drill report with modernized VMs: what the drill exercised, and what it cannot
SCOPE = (
    "exercised: forward recovery (test failover of {vms} from on-prem into Azure, network {net}) in plan "
    "order, each test VM verified in Azure, then cleaned up"
)
NOT_DRILLABLE = (
    "not exercised: the failback itself (planned failover Azure → on-prem) cannot be drilled through the "
    "ASR API (no test failover exists for InMageRcmFailback items)"
)
FORWARD = (Phase.replicating_to_azure, Phase.reprotected_to_azure)
RULE_FORWARD = "a modernized drill needs the VM replicating from on-prem to Azure (InMageRcm)"
RULE_TEST_ALLOWED = "TestFailover is an allowed operation of the item"
#: the failback preflight's rules that do not apply to a forward drill of a modernized VM
_FAILBACK_ONLY = frozenset({"reprotect finished", "replication health OK", "protection not disabled"})


def modernized(ctx: RunContext) -> set[str]:
    """The plan VMs whose items replicate with a modernized provider, as preflight read them."""
    return {vm for vm, s in ctx.state.items.items() if is_modernized(s)}


def is_forward(ctx: RunContext, vm: str) -> bool:
    """Whether this VM's drill is a test failover into Azure (its item is modernized)."""
    s = ctx.state.items.get(vm)
    return s is not None and is_modernized(s)


# -- preflight -------------------------------------------------------------------------------------------
def preflight_checks(ctx: RunContext, checks: list[CheckResult]) -> list[CheckResult]:
    """The failback preflight's ``checks`` with what concerns failing modernized VMs back taken out, plus the
    forward drill's own per modernized VM: replicating to Azure, healthy, TestFailover allowed, a point."""
    modern = modernized(ctx)
    if not modern:
        return checks
    units = {u.name for u in ctx.graph.units.values() if modern & set(u.vm_names)}
    kept = [
        c
        for c in checks
        if not (c.subject in modern and c.name == f"asr-item {c.subject}" and c.rule in _FAILBACK_ONLY)
        and not (c.rule == pre.RULE_POLICY and c.subject in units)  # the drill sends a point id
    ]
    ready: list[str] = []
    for vm in sorted(modern):
        state = ctx.state.items[vm]
        kept += _item_checks(vm, state)
        if phase_of(state) in FORWARD:
            ready.append(vm)
    return kept + _points(ctx, ready)


def _item_checks(vm: str, state: ItemState) -> list[CheckResult]:
    phase = phase_of(state)
    allowed = {normalise(a) for a in state.allowed_operations}
    name = f"asr-item {vm}"
    if phase not in FORWARD:
        return [
            CheckResult(
                name,
                False,
                f"VM {vm} is {phase} (provider {state.provider}, "
                f"protection state {state.protection_state!r}): "
                "a modernized drill is a test failover into Azure and needs the VM replicating from on-prem "
                "to Azure; ASR offers no drill of a failback (Azure → on-prem)",
                vm,
                RULE_FORWARD,
            )
        ]
    out = [CheckResult(name, True, str(phase), vm, RULE_FORWARD)]
    healthy = normalise(state.replication_health) in ("normal", "", "none")
    out.append(
        CheckResult(
            f"replication-health {vm}",
            healthy,
            "" if healthy else f"VM {vm}: replication health is {state.replication_health}, not Normal",
            vm,
            pre.RULE_HEALTH,
        )
    )
    # a test failover of an earlier drill awaiting cleanup is cleaned up first, then TestFailover is allowed
    ok = "testfailover" in allowed or "testfailovercleanup" in allowed or bool(state.current_job)
    out.append(
        CheckResult(
            f"test-failover-allowed {vm}",
            ok,
            ""
            if ok
            else f"VM {vm}: ASR does not allow TestFailover now (allowed: "
            f"{', '.join(state.allowed_operations) or 'none'})",
            vm,
            RULE_TEST_ALLOWED,
        )
    )
    return out


def _points(ctx: RunContext, vms: list[str]) -> list[CheckResult]:
    def read(vm: str) -> list[CheckResult]:
        try:
            ctx.state.points_by_vm[vm] = list(ctx.asr.recovery_points(ctx.state.refs[vm]))
        except TransientError:
            raise
        except DrplanError as exc:
            return [CheckResult(f"recovery-point {vm}", False, str(exc), vm, "recovery points readable")]
        return point_checks([vm], {vm: ctx.state.points_by_vm[vm]})

    out: list[CheckResult] = []
    for result in gather([partial(read, vm) for vm in vms]):
        out += result
    return out


# -- recovery points -------------------------------------------------------------------------------------
def decide_forward(ctx: RunContext) -> dict[str, PointDecision]:
    """The point of each unit's modernized members, by the plan's policy (with ``--recovery-point``), as a
    point id the InMageRcm test failover takes; no ``max_data_loss`` refusal (a drill measures RPO)."""
    out: dict[str, PointDecision] = {}
    problems: list[str] = []
    now = ctx.clock.now()
    for unit in ctx.graph.units.values():
        todo = [
            v.name for v in unit.vms if is_forward(ctx, v.name) and ctx.state.phases.get(v.name) in FORWARD
        ]
        if unit.kind == "hook" or not todo:
            continue
        try:
            out[unit.name] = decide(
                with_override(ctx, unit),
                {vm: ctx.state.points_by_vm.get(vm, ()) for vm in todo},
                now=now,
                guard=False,
            )
        except RecoveryPointError as exc:
            problems.append(str(exc))
    if problems:
        raise RecoveryPointError("\n".join(problems))
    return out


def with_override(ctx: RunContext, unit: Unit) -> Unit:
    """The unit with the run's ``--recovery-point`` override, if any."""
    policy = ctx.inputs.overrides.get(unit.name) or ctx.inputs.overrides.get("*")
    return replace(unit, policy=RecoveryPointPolicy(policy)) if policy else unit


# -- the test VM in Azure --------------------------------------------------------------------------------
def test_vm(ctx: RunContext, vm: Vm) -> tuple[str, str | None]:
    """The Azure test VM's name and resource group: ASR names it after the target VM with ``-test``."""
    state = ctx.state.items.get(vm.name)
    name = (state.target_vm_name if state is not None else None) or vm.name
    return f"{name}-test", state.azure_resource_group if state is not None else None


def checks_of(st: AzureVmState | None) -> tuple[int, int, str]:
    wanted = [
        ("running", st is not None and st.running),
        ("VM agent ready", st is not None and st.agent_ready),
    ]
    passed = sum(ok for _, ok in wanted)
    return passed, len(wanted), ", ".join(f"{'✓' if ok else '✗'} {what}" for what, ok in wanted)


def wait_until_up(ctx: RunContext, vm: Vm, timeout: float) -> AzureVmState:
    """Poll the test VM through the compute API until it runs with its VM agent ready, within ``timeout``
    seconds of the run's clock; :class:`VerificationError` with what was last seen otherwise."""
    name, rg = test_vm(ctx, vm)
    deadline = ctx.clock.now().timestamp() + timeout
    every = max(1.0, min(15.0, timeout / 40))
    while True:
        st = ctx.asr.azure_vm(name, resource_group=rg, vm=vm.name)
        if st.running and st.agent_ready:
            return st
        left = deadline - ctx.clock.now().timestamp()
        if left <= 0:
            seen = (
                f"power state {st.power_state}, VM agent {st.agent_status or 'unknown'}"
                if st.exists
                else "not found"
            )
            raise TestVmNotUp(f"test VM {name} of VM {vm.name} in Azure not up within {timeout:.0f}s: {seen}")
        ctx.clock.sleep(min(every, left))


def leftovers(ctx: RunContext, vms: list[Vm]) -> list[str]:
    """Those of ``vms``' Azure test VMs that still exist."""

    def one(vm: Vm) -> str | None:
        name, rg = test_vm(ctx, vm)
        return name if ctx.asr.azure_vm(name, resource_group=rg, vm=vm.name).exists else None

    return sorted(n for n in gather([partial(one, vm) for vm in vms]) if n)


def scope_lines(ctx: RunContext) -> list[str]:
    """The report's first lines when the plan has modernized VMs."""
    modern = modernized(ctx)
    if not modern:
        return []
    return [
        SCOPE.format(vms=", ".join(sorted(modern)), net=ctx.plan.drill.test_network or "?"),
        NOT_DRILLABLE,
    ]
