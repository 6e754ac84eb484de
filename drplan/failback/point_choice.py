"""A run's recovery points: ``--recovery-point`` overrides, the early refusal before any write, and the
decision made for each unit immediately before its failback write, from a fresh read (and what ASR applied,
read back after the job)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from drplan.errors import DrplanError, RecoveryPointError
from drplan.observed import ItemState, Phase, RecoveryPoint
from drplan.plan.graph import Unit
from drplan.plan.schema import GroupFailbackMode, RecoveryPointPolicy
from drplan.recovery.phase import DONE_FAILBACK, is_modernized, phase_of
from drplan.recovery.points import CRASH_CONSISTENT, PointDecision, decide
from drplan.run.context import RunContext
from drplan.run.fanout import gather

log = logging.getLogger(__name__)


def parse_overrides(values: Iterable[str] | None, units: Iterable[str]) -> dict[str, RecoveryPointPolicy]:
    """``--recovery-point latest`` (every unit) or ``--recovery-point UNIT=POLICY``; raises ValueError."""
    known = set(units)
    policies = {p.value for p in RecoveryPointPolicy}
    out: dict[str, RecoveryPointPolicy] = {}
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
        out[unit] = RecoveryPointPolicy(policy)
    return out


def _unit_for_choice(ctx: RunContext, unit: Unit, *, guard: bool) -> Unit:
    """The unit with the run's ``--recovery-point`` override, and without its guard unless ``guard``."""
    policy = ctx.inputs.overrides.get(unit.name) or ctx.inputs.overrides.get("*")
    changes: dict[str, Any] = {}
    if policy:
        changes["policy"] = RecoveryPointPolicy(policy)
    if not guard:
        changes["max_data_loss"] = None
    return replace(unit, **changes) if changes else unit


def decide_all(ctx: RunContext, *, guard: bool = True) -> dict[str, PointDecision]:
    """Every unit's point decision from what preflight read, at this moment; one
    :class:`RecoveryPointError` names every unit without a valid point. Before any write, this refuses early
    what can already be refused; a failback decides again, freshly, right before each unit's write."""
    out: dict[str, PointDecision] = {}
    problems: list[str] = []
    now = ctx.clock.now()
    for unit in ctx.graph.units.values():
        pending = [v.name for v in unit.vms if ctx.state.phases.get(v.name) == Phase.reprotected_to_onprem]
        if unit.kind == "hook" or not pending or not points_needed(ctx, unit, ctx.state.items):
            continue
        try:
            pinned = _pinned_time(
                ctx, unit.name, ctx.state.points_by_vm, states=ctx.state.items or None, strict=False
            )
            out[unit.name] = decide(
                _unit_for_choice(ctx, unit, guard=guard),
                {vm: ctx.state.points_by_vm.get(vm, ()) for vm in pending},
                now=now,
                by_recovery_plan=by_recovery_plan(ctx, unit.name) and pinned is None,
                pinned_to=pinned,
                modernized=modernized(ctx.state.items, unit.vm_names),
            )
        except RecoveryPointError as exc:
            problems.append(str(exc))
    if problems:
        raise RecoveryPointError("\n".join(problems))
    return out


def precheck_points(ctx: RunContext) -> dict[str, dict[str, object]]:
    """The failback's plan-level read: refuse, before any write, a unit whose point is already invalid."""
    return {unit: {vm: c.to_dict() for vm, c in d.choices.items()} for unit, d in decide_all(ctx).items()}


def by_recovery_plan(ctx: RunContext, unit: str) -> bool:
    """Whether this group fails back through an ASR recovery plan: ``failback_mode: recovery-plan``, or its
    items are modernized (a modernized group's common point is only reached by recovery plan)."""
    u = ctx.graph.units[unit]
    mode = u.failback_mode or ctx.plan.failback.group_failback_mode
    if u.kind != "group":
        return False
    return mode == GroupFailbackMode.recovery_plan or modernized(ctx.state.items, u.vm_names)


def modernized(states: Mapping[str, ItemState], vms: Sequence[str]) -> bool:
    """Whether these VMs' items replicate with the modernized providers (as ASR last reported them)."""
    known = [states[vm] for vm in vms if vm in states]
    return bool(known) and all(is_modernized(s) for s in known)


def decide_unit(
    ctx: RunContext, unit: str, states: Mapping[str, ItemState], *, guard: bool = True
) -> PointDecision | None:
    """The point decision for ``unit``'s members still to fail back, immediately before the write; ``None``
    when none is left. Points are read afresh where drplan sends a point id or a guard measures them; a point
    type ASR resolves when its job runs needs no read (:func:`_earlier_read`, :func:`points_needed`). A group
    whose other members already failed back is held to their point time. Recorded in ``ctx.state.decisions``
    and announced as an event."""
    u = ctx.graph.units[unit]
    todo = [v.name for v in u.vms if phase_of(states[v.name]) == Phase.reprotected_to_onprem]
    if not todo:
        return None
    done = [v.name for v in u.vms if phase_of(states[v.name]) in DONE_FAILBACK]
    chosen = _unit_for_choice(ctx, u, guard=guard)
    pinned = None
    if not points_needed(ctx, u, states, guard=guard):  # ASR makes the point: nothing to read or choose
        decision = PointDecision(
            u.name, False, RecoveryPointPolicy.latest, {}, CRASH_CONSISTENT, ctx.clock.now()
        )
    else:
        earlier = None if (done and u.kind == "group") else _earlier_read(ctx, chosen, todo, states)
        if earlier is None:
            reads = gather([partial(_points_of, ctx, vm) for vm in [*todo, *done]])
            points = dict(zip([*todo, *done], reads, strict=True))
        else:
            points = {vm: ctx.state.points_by_vm[vm] for vm in todo}
        pinned = _pinned_time(ctx, unit, points, states=states) if u.kind == "group" and done else None
        decision = decide(
            chosen,
            {vm: points[vm] for vm in todo},
            now=ctx.clock.now(),
            by_recovery_plan=by_recovery_plan(ctx, unit) and pinned is None,
            pinned_to=pinned,
            modernized=modernized(states, u.vm_names),
            read_at=earlier,
        )
    with ctx.lock:
        ctx.state.decisions[unit] = decision
    lines = "; ".join(f"{vm}: {decision.describe(vm)}" for vm in todo)
    log.info("%s: recovery points decided: %s", unit, lines)
    ctx.emit(unit, "points-decided", lines, pinned=bool(pinned))
    return decision


def points_needed(
    ctx: RunContext, unit: Unit, states: Mapping[str, ItemState], *, guard: bool = True
) -> bool:
    """Whether the unit's decision stands on recovery points drplan reads. Not for a standalone modernized
    VM failing back to its latest point without a ``max_data_loss`` guard: ASR makes that point itself when
    it shuts the Azure VM down (``CrashConsistent``), so there is nothing to read, choose or refuse."""
    chosen = _unit_for_choice(ctx, unit, guard=guard)
    if (
        unit.kind != "vm"
        or chosen.max_data_loss is not None
        or chosen.policy is not RecoveryPointPolicy.latest
    ):
        return True
    return not modernized(states, unit.vm_names)


def _earlier_read(
    ctx: RunContext, unit: Unit, todo: Sequence[str], states: Mapping[str, ItemState]
) -> datetime | None:
    """When the preflight read the points this unit's decision can stand on, or ``None``: read them now.

    The points need no fresh read when ASR resolves them from a type as its job runs — the newest point
    (``latest``), the newest app-consistent one of a standalone VM, a group's common point through its
    recovery plan — and no ``max_data_loss`` guard must measure them at the write. A classic group failed
    back item by item to its common point is sent point ids: read now.
    """
    if unit.max_data_loss is not None or ctx.state.points_read_at is None:
        return None
    if any(not ctx.state.points_by_vm.get(vm) for vm in todo):
        return None
    group_by_items = unit.kind == "group" and not by_recovery_plan(ctx, unit.name)
    if group_by_items and unit.policy is not RecoveryPointPolicy.latest and not modernized(states, todo):
        return None
    return ctx.state.points_read_at


def applied_points(
    ctx: RunContext,
    unit: str,
    decision: PointDecision | None,
    vms: Sequence[str],
    *,
    seen: Mapping[str, ItemState] | None = None,
) -> dict[str, RecoveryPoint | None]:
    """The point ASR actually failed each VM over to, read back from the items after the job
    (``failoverRecoveryPointId``): what the report records, not what was asked. ``seen``: items already
    read after their job ended (not read again)."""
    seen = seen or {}
    states = dict(seen)
    states.update(ctx.asr.item_states([ctx.state.refs[vm] for vm in vms if vm not in seen]))
    out: dict[str, RecoveryPoint | None] = {}
    for vm in vms:
        known = list(decision.choices.values()) if decision else []
        out[vm] = _point_by_id(ctx, vm, states[vm].failover_recovery_point_id, [c.point for c in known])
    return out


def _points_of(ctx: RunContext, vm: str) -> list[RecoveryPoint]:
    return ctx.asr.recovery_points(ctx.state.refs[vm])


def _point_by_id(
    ctx: RunContext, vm: str, point_id: str | None, known: Sequence[RecoveryPoint]
) -> RecoveryPoint | None:
    if not point_id:
        return None
    name = point_id.rstrip("/").rsplit("/", 1)[-1].lower()
    for p in known:
        if p.id.rstrip("/").rsplit("/", 1)[-1].lower() == name:
            return p
    try:
        return ctx.asr.recovery_point(ctx.state.refs[vm], point_id)
    except DrplanError as exc:
        log.warning("VM %s: the point it failed over to (%s) cannot be read: %s", vm, point_id, exc)
        return None


def _pinned_time(
    ctx: RunContext,
    unit: str,
    points: Mapping[str, Sequence[RecoveryPoint]],
    *,
    states: Mapping[str, ItemState] | None = None,
    strict: bool = True,
) -> datetime | None:
    """The point time the group's already failed-back members are at (``None``: none is). Members at
    different times already: the group is split, which is refused (``strict``) before anything is sent."""
    u = ctx.graph.units[unit]
    if u.kind != "group":
        return None
    at: dict[str, datetime] = {}
    for vm in u.vm_names:
        state = states.get(vm) if states is not None else None
        phase = phase_of(state) if state is not None else ctx.state.phases.get(vm)
        if phase not in DONE_FAILBACK:
            continue
        point_id = state.failover_recovery_point_id if state is not None else None
        if point_id is None and states is None:
            continue  # preflight did not keep the item state: the write-time decision checks it
        point = _point_by_id(ctx, vm, point_id, points.get(vm, ()))
        if point is None:
            if strict:
                raise RecoveryPointError(
                    f"cannot complete the failback of group {unit} at one point: VM {vm} already failed "
                    "back, and the point it failed over to cannot be read"
                )
            continue
        at[vm] = point.time
    if len(set(at.values())) > 1:
        raise RecoveryPointError(
            f"group {unit} is split: its members failed back to different points ("
            + ", ".join(f"{vm}: {t.isoformat()}" for vm, t in sorted(at.items()))
            + "); nothing more is sent for it"
        )
    return next(iter(at.values()), None)
