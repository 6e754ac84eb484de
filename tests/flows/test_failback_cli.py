"""``drplan failback`` as a user types it: exit codes, no tracebacks, the live run on the simulated estate."""

from __future__ import annotations

import json

import pytest
from failback_support import THREE_TIER, three_tier_estate
from typer.testing import CliRunner

from drplan.cli import _register, app

_register()


@pytest.fixture
def cli():
    return CliRunner()


def test_failback_simulate_with_estate_and_approve_exits_0(cli, prefect_api, tmp_path):
    estate = tmp_path / "estate.yaml"
    estate.write_text(three_tier_estate().to_yaml())
    result = cli.invoke(app, ["failback", str(THREE_TIER), "--estate", str(estate), "--approve", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["outcome"] == "completed" and report["mode"] == "simulate"
    assert {r["vm"]: r["status"] for r in report["rows"]} == dict.fromkeys(
        ("sql-01", "sql-02", "app-01", "app-02", "web-01", "web-02"), "verified"
    )
    assert all(r["commit"].startswith("ok") and r["reprotect"].startswith("ok") for r in report["rows"])


def test_invalid_plan_exits_2_with_every_problem_and_no_traceback(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(THREE_TIER.read_text().replace("depends_on: [sql]", "depends_on: [sq1]", 1))
    result = cli.invoke(app, ["failback", str(bad), "--simulate"])
    assert result.exit_code == 2
    assert "sq1" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--commit", "sometimes"], "--commit 'sometimes'"),
        (["--recovery-point", "newest"], "unknown policy 'newest'"),
        (["--recovery-point", "db=latest"], "no VM or group named 'db'"),
        (["--speed", "0"], "--speed must be positive"),
    ],
)
def test_bad_options_exit_2(cli, args, message):
    result = cli.invoke(app, ["failback", str(THREE_TIER), "--simulate", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
