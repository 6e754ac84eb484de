"""A run's recovery points: ``--recovery-point`` overrides, then one choice per VM still to fail back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from drplan.plan.schema import RecoveryPointPolicy
from drplan.run.context import Runtime


def parse_overrides(values: Iterable[str] | None, units: Iterable[str]) -> dict[str, str]:
    """``--recovery-point latest`` (every unit) or ``--recovery-point UNIT=POLICY``; raises ValueError."""
    known = set(units)
    policies = {p.value for p in RecoveryPointPolicy}
    out: dict[str, str] = {}
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
        out[unit] = policy
    return out


def _unit_with_override(rt: Runtime, unit):
    policy = rt.overrides.get(unit.name) or rt.overrides.get("*")
    if not policy or unit.kind == "hook":
        return unit
    try:
        return replace(unit, policy=RecoveryPointPolicy(policy))
    except TypeError:  # not a dataclass: a light proxy with the same attributes
        from types import SimpleNamespace

        return SimpleNamespace(
            name=unit.name,
            kind=unit.kind,
            vms=unit.vms,
            policy=RecoveryPointPolicy(policy),
            max_data_loss=unit.max_data_loss,
        )


def resolve_points(rt: Runtime) -> dict[str, dict[str, Any]]:
    """Choose every pending VM's point (groups: common app-consistent; standalone: latest; overrides; guard).

    VMs that ASR already shows failed back keep the point they were failed back to. Raises
    :class:`RecoveryPointError` listing every unit without a valid point.
    """
    from drplan.recovery.points import choose_points

    points_by_vm = rt.extra.get("points_by_vm", {})
    units = [
        _unit_with_override(rt, u)
        for u in rt.graph.units.values()
        if u.kind != "hook" and any(v.name in points_by_vm for v in u.vms)
    ]
    chosen = choose_points(units, points_by_vm, now=rt.clock.now())
    summary: dict[str, dict[str, Any]] = {}
    for unit, by_vm in chosen.items():
        for vm, choice in by_vm.items():
            rt.choices[vm] = choice
            if rt.report is not None:
                rt.report.update(
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
