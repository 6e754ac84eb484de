"""Fixtures: one Prefect test harness per session, plans with drill hooks, a simulator the flow reaches over
HTTPS (external-simulator mode), so tests can read its audit log and on-prem site after the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
THREE_TIER = ROOT / "plans" / "three-tier.yaml"
SPEED = 6000.0  # simulated seconds per wall second: jobs of minutes take milliseconds

HOOKS = """
hooks:
  - name: smoke-test
    kind: shell
    command: echo "smoke-test $DRPLAN_MODE" >> {log}
    in_simulation: true
    depends_on: [web-01, web-02]
  - name: change-approval
    kind: approval
    prompt: Approve the change window?
    depends_on: [sql]
  - name: restore-dns
    kind: shell
    command: echo restore-dns >> {log}
    in_simulation: true
    after_cleanup: true
"""


@pytest.fixture(scope="session")
def harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def hook_log(tmp_path: Path) -> Path:
    return tmp_path / "hooks.log"


@pytest.fixture
def plan_with_hooks(tmp_path: Path, hook_log: Path) -> Path:
    """The three-tier plan plus a drill smoke test, an approval gate and an after-cleanup hook."""
    path = tmp_path / "three-tier-hooks.yaml"
    path.write_text(THREE_TIER.read_text() + HOOKS.format(log=hook_log))
    return path


def drill_estate(plan_path: Path):
    from drplan.plan.loader import load_plan
    from drplan.sim.estate import Estate

    return Estate.from_plan(load_plan(plan_path))


@pytest.fixture
def external_sim(monkeypatch):
    """``start(estate)``: a simulator in this process that the flow reaches as an external one."""
    from contextlib import ExitStack

    from drplan.sim import start_simulator

    with ExitStack() as stack:

        def start(estate):
            sim = stack.enter_context(start_simulator(estate, speed=SPEED))
            monkeypatch.setenv("DRPLAN_SIM_ENDPOINT", sim.endpoint)
            monkeypatch.setenv("DRPLAN_SIM_CA_FILE", sim.ca_file)
            monkeypatch.setenv("DRPLAN_SIM_TOKEN", sim.token)
            return sim

        yield start


@pytest.fixture
def events():
    """Every unit transition of every run in this process, in order: (node, transition, message)."""
    from drplan.run.events import observing

    seen: list[tuple[str, str, str]] = []
    with observing(lambda e: seen.append((e.node, e.transition, e.message))):
        yield seen
