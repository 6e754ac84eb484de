"""The failback runbook: what each step of a run does, on a :class:`drplan.runtime.Runtime`. Prefect-free.

Stages (design §1): preflight → resolve recovery points → per unit, in graph order: failback → verify
→ (hooks as their own nodes) → commit gate → commit → reprotect to Azure. The parts live in modules named
for what they hold: :mod:`drplan.preflight`, :mod:`drplan.run_points`, :mod:`drplan.units`,
:mod:`drplan.hooks`, :mod:`drplan.stepkinds` (the ``STEPS`` table) and :mod:`drplan.outcomes`.
This module re-exports the names tests import from it.
"""

from __future__ import annotations

from drplan.preflight import PreflightFailed, item_checks
from drplan.run_points import parse_overrides

__all__ = ["PreflightFailed", "item_checks", "parse_overrides"]
