"""How long a run waits for an ASR job: from the plan's durations (VM, plan defaults, built-in defaults)."""

from __future__ import annotations

from drplan.run.context import RunContext


def duration(ctx: RunContext, vm, name: str) -> float:
    from drplan.plan.schema import DEFAULT_DURATIONS

    own = getattr(vm.durations, name, None) if vm is not None else None
    return own or getattr(ctx.plan.defaults.durations, name, None) or DEFAULT_DURATIONS[name]


def budget(ctx: RunContext, vm, name: str) -> float:
    """How long to wait for a job: 4x its estimate, at least an hour (fail clearly instead of hanging)."""
    return max(4 * duration(ctx, vm, name), 3600.0)
