"""Shared constants and estates of the failback flow tests (imported by conftest and the test modules)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
THREE_TIER = ROOT / "plans" / "three-tier.yaml"
#: simulated seconds per wall second: a whole three-tier failback takes a few wall seconds
SPEED = 600.0
#: the full three-tier run must reach reprotect less than 19 simulated minutes after the last VM
#: powered on (to meet "agent isn't installed"): at 150x that leaves 7.6 wall seconds for verify,
#: gate and commit, which a loaded 2-core machine needs (at 600x, 1.9 s was once not enough)
E2E_SPEED = 150.0


def three_tier_estate(**durations):
    """The three-tier plan's estate: app-consistent points every 10 minutes, well inside group ``sql``'s
    max_data_loss guard; the agent re-registers 19 minutes after power-on, inside the plan's 20-minute
    window, so reprotect meets "agent isn't installed" first."""
    from drplan.plan.loader import load_plan
    from drplan.sim.estate import Estate, PointGenerator

    estate = Estate.from_plan(load_plan(THREE_TIER))
    estate.recovery_points = PointGenerator(app_every=600)
    estate.durations = estate.durations.model_copy(update={"agent_registration": 1140.0, **durations})
    return estate


class PlannedRuns:
    """An event sink that keeps, per flow run id, how many task runs the run planned (its "planned" event)."""

    def __init__(self) -> None:
        self.by_run: dict[str, int] = {}

    def __call__(self, event) -> None:
        if event.node == "(run)" and event.transition == "planned":
            self.by_run[str(event.payload["run_id"])] = int(event.payload["task_runs"])


#: every flow run these tests start reports here (``run_failback`` attaches it)
PLANNED = PlannedRuns()
