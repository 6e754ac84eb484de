"""Plan-level read-only steps: preflight checks and recovery-point resolution."""

from __future__ import annotations

from prefect import task

from drplan.failback import point_choice as run_points
from drplan.failback import preflight as preflightlib
from drplan.run import context as runtime
from tasks.common import TASK_OPTIONS

_COMMON = dict(retries=3, **TASK_OPTIONS)


@task(name="preflight", task_run_name="preflight", **_COMMON)
def preflight(run_key: str) -> list[dict]:
    """Every design §1 precondition as a named check, read concurrently; never writes."""
    checks = preflightlib.preflight(runtime.get(run_key))
    return [
        {"name": c.name, "ok": c.ok, "message": c.message, "subject": c.subject, "rule": c.rule}
        for c in checks
    ]


@task(name="resolve-points", task_run_name="resolve recovery points", **_COMMON)
def resolve_points(run_key: str) -> dict:
    """Choose each VM's recovery point by policy (groups: common app-consistent; standalone: latest)."""
    return run_points.resolve_points(runtime.get(run_key))
