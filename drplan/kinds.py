"""Every kind of run drplan has, by name: failback, drill, reprotect (Azure → on-prem)."""

from __future__ import annotations

from drplan.drill.kind import DRILL
from drplan.failback.kind import FAILBACK
from drplan.reprotect_to_onprem.kind import REPROTECT_TO_ONPREM
from drplan.run.kind import RunKind
from drplan.run.steps import Step

RUN_KINDS: dict[str, RunKind] = {k.name: k for k in (FAILBACK, DRILL, REPROTECT_TO_ONPREM)}


def all_steps() -> dict[str, Step]:
    """Every step kind of every run kind (one Prefect task each); a kind name means one step everywhere."""
    out: dict[str, Step] = {}
    for kind in RUN_KINDS.values():
        for name, step in kind.steps.items():
            if out.setdefault(name, step) is not step:
                raise ValueError(f"step kind {name!r} is defined twice with different steps")
    return out
