"""The connected part of the dry run: the recovery point each unit would fail back to, read from ASR.

Reads only: discovery (one listing per container), item states (each VM's provider, as ASR reports it),
recovery points, the policy; the same decision a failback makes right before its write
(:func:`drplan.recovery.points.decide`), at this moment. Nothing is written. A unit without a valid point
gets a ``problem`` column; a failed discovery raises for the whole plan.
"""

from __future__ import annotations

from datetime import datetime

from drplan.errors import RecoveryPointError
from drplan.plan.graph import RecoveryGraph
from drplan.plan.schema import GroupFailbackMode, format_duration
from drplan.recovery.phase import is_modernized
from drplan.recovery.points import decide
from drplan.run.ports import RecoveryService


def chosen_points(
    graph: RecoveryGraph, asr: RecoveryService, now: datetime, *, group_mode: GroupFailbackMode | None = None
) -> tuple[dict[str, dict[str, object]], dict[str, list[dict[str, object]]]]:
    """Return ``(columns, choices)``: per unit the dry run's extra columns (provider, point, data loss,
    problem), and per unit the JSON-ready :class:`~drplan.recovery.points.Choice` dicts (with the provider and
    how the point is sent to ASR)."""
    units = [u for u in graph.units.values() if u.kind != "hook"]
    vms = [v.name for u in units for v in u.vms]
    columns: dict[str, dict[str, object]] = {}
    refs = asr.discover(vms)  # an AsrError here concerns the whole plan: the CLI says it once (exit 1)
    states = asr.item_states(list(refs.values()))
    points_by_vm = asr.recovery_points_for(refs.values())
    choices: dict[str, list[dict[str, object]]] = {}
    for unit in units:
        names = [v.name for v in unit.vms]
        modern = bool(names) and all(n in states and is_modernized(states[n]) for n in names)
        mode = unit.failback_mode or group_mode
        provider = "modernized" if modern else "classic"
        try:
            decision = decide(
                unit,
                {vm: points_by_vm.get(vm, []) for vm in names},
                now=now,
                by_recovery_plan=unit.kind == "group" and mode == GroupFailbackMode.recovery_plan,
                modernized=modern,
            )
        except RecoveryPointError as exc:
            columns[unit.name] = {"provider": provider, "problem": str(exc)}
            continue
        by_vm = decision.choices
        columns[unit.name] = {
            "provider": provider,
            "recovery_point": [
                f"{vm}: {c.point.time:%Y-%m-%d %H:%M:%SZ} ({'app' if c.point.app_consistent else 'crash'})"
                for vm, c in by_vm.items()
            ],
            "data_loss": [f"{vm}: {format_duration(c.data_loss_seconds)}" for vm, c in by_vm.items()],
        }
        choices[unit.name] = [
            {**c.to_dict(), "provider": provider, "sent_as": decision.asr_type} for c in by_vm.values()
        ]
    return columns, choices
