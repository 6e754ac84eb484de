"""The shipped example plans pass ``failback --simulate --approve`` and ``drill --simulate`` as shipped,
from a clone, without a terminal: their shell hooks do not run in a simulation (nothing to install, nothing
real switched), and the report says so."""

from __future__ import annotations

import pytest

from .conftest import cli_env, run_cli

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("plan", ["plans/three-tier.yaml", "plans/erp-mixed.yaml"])
@pytest.mark.parametrize("command", [["failback", "--simulate", "--approve"], ["drill", "--simulate"]])
def test_example_plan_passes_as_shipped(plan, command, tmp_path):
    done = run_cli(command[0], plan, *command[1:], env=cli_env(tmp_path, DRPLAN_RECORD_WAIT_SECONDS="5"))
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "Traceback" not in out
