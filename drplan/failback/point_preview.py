"""The connected part of the dry run: the recovery point each unit would fail back to, read from ASR.

Reads only: discovery (one listing per container), recovery points, the policy. Nothing is written.
A unit without a valid point gets a ``problem`` column; a failed discovery raises for the whole plan.
"""

from __future__ import annotations

from datetime import datetime

from drplan.plan.graph import RecoveryGraph
from drplan.plan.schema import format_duration
from drplan.recovery.points import choose_points
from drplan.run.ports import RecoveryService


def chosen_points(
    graph: RecoveryGraph, asr: RecoveryService, now: datetime
) -> tuple[dict[str, dict[str, object]], dict[str, list]]:
    """Return ``(columns, choices)``: per unit the dry run's extra columns (point, data loss, problem), and
    per unit the JSON-ready :class:`~drplan.recovery.points.Choice` dicts."""
    units = [u for u in graph.units.values() if u.kind != "hook"]
    vms = [v.name for u in units for v in u.vms]
    columns: dict[str, dict[str, object]] = {}
    refs = asr.discover(vms)  # an AsrError here concerns the whole plan: the CLI says it once (exit 1)
    points_by_vm = asr.recovery_points_for(refs.values())
    problems: dict[str, str] = {}
    chosen = choose_points(units, points_by_vm, now=now, errors=problems)
    choices: dict[str, list] = {}
    for unit, by_vm in chosen.items():
        columns[unit] = {
            "recovery_point": [
                f"{vm}: {c.point.time:%Y-%m-%d %H:%M:%SZ} ({'app' if c.point.app_consistent else 'crash'})"
                for vm, c in by_vm.items()
            ],
            "data_loss": [f"{vm}: {format_duration(c.data_loss_seconds)}" for vm, c in by_vm.items()],
        }
        choices[unit] = [c.to_dict() for c in by_vm.values()]
    for unit, message in problems.items():
        columns[unit] = {"problem": message}
    return columns, choices
