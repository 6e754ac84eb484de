"""A run's recovery points: ``--recovery-point`` overrides, then one choice per VM still to fail back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from drplan.plan.schema import RecoveryPointPolicy
from drplan.run.context import RunContext


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


def _unit_for_choice(ctx: RunContext, unit, *, guard: bool):
    """The unit with the run's ``--recovery-point`` override, and without its guard unless ``guard``."""
    policy = ctx.inputs.overrides.get(unit.name) or ctx.inputs.overrides.get("*")
    changes: dict[str, Any] = {}
    if policy:
        changes["policy"] = RecoveryPointPolicy(policy)
    if not guard:
        changes["max_data_loss"] = None
    return replace(unit, **changes) if changes else unit


def resolve_points(ctx: RunContext, *, guard: bool = True) -> dict[str, dict[str, Any]]:
    """Choose every pending VM's point (groups: common app-consistent; standalone: latest; overrides; the
    ``max_data_loss`` guard unless ``guard`` is off, as in a drill, which measures RPO instead).

    VMs that ASR already shows failed back keep the point they were failed back to. Raises
    :class:`RecoveryPointError` listing every unit without a valid point.
    """
    from drplan.recovery.points import choose_points

    points_by_vm = ctx.state.points_by_vm
    units = [
        _unit_for_choice(ctx, u, guard=guard)
        for u in ctx.graph.units.values()
        if u.kind != "hook" and any(v.name in points_by_vm for v in u.vms)
    ]
    chosen = choose_points(units, points_by_vm, now=ctx.clock.now())
    summary: dict[str, dict[str, Any]] = {}
    for unit, by_vm in chosen.items():
        for vm, choice in by_vm.items():
            ctx.state.choices[vm] = choice
            if ctx.report is not None:
                ctx.report.update(
                    unit,
                    vm,
                    point=choice.point.id,
                    point_time=choice.point.time,
                    point_kind="app-consistent" if choice.point.app_consistent else "crash-consistent",
                    data_loss=choice.data_loss_seconds,
                    note=str(choice.policy),
                )
            summary.setdefault(unit, {})[vm] = choice.to_dict()
    return summary
