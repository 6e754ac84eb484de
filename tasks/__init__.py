"""Thin Prefect tasks over :mod:`drplan.runbook`: one generic task per step kind, re-configured per node.

``TASKS`` maps a step kind to its task; :func:`tasks.common.for_node` re-configures it for one graph node
(task run name ``"failback sql-cluster"``, failure hook). The drill and reprotect flows add their kinds here.
"""

from __future__ import annotations

from tasks.common import TASKS, for_node, only_transient, run_step
from tasks.hooks import Approval, commit_gate, hook
from tasks.preflight import preflight, resolve_points
from tasks.units import commit, failback, reprotect, verify

__all__ = [
    "TASKS",
    "Approval",
    "commit",
    "commit_gate",
    "failback",
    "for_node",
    "hook",
    "only_transient",
    "preflight",
    "reprotect",
    "resolve_points",
    "run_step",
    "verify",
]
