"""``drplan plan PLAN --simulate``: the dry run reads ASR (the simulated estate) and shows chosen points."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from typer.testing import CliRunner

from drplan.cli import _register, app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _run(*args: str):
    _register()
    return runner.invoke(app, ["plan", str(ROOT / "plans" / "three-tier.yaml"), *args])


def test_simulated_dry_run_shows_each_units_point_and_data_loss() -> None:
    result = _run("--simulate", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["mode"] == "simulate"
    sql = report["choices"]["sql"]
    assert {c["vm"] for c in sql} == {"sql-01", "sql-02"}
    # the group's members share one app-consistent point, sent as a point type through one recovery plan
    assert len({c["point_time"] for c in sql}) == 1
    assert all(c["app_consistent"] and c["provider"] == "modernized" for c in sql)
    assert {c["sent_as"] for c in sql} == {"ApplicationConsistent"}
    # standalone VMs take their own latest point: no data loss
    for unit in ("app-01", "app-02", "web-01", "web-02"):
        (choice,) = report["choices"][unit]
        assert choice["policy"] == "latest"
        assert choice["data_loss_seconds"] == 0
        assert choice["point_time"] == choice["latest_time"]
    row = next(s for s in report["steps"] if s["unit"] == "sql")
    assert row["recovery_point"] and row["data_loss"]
    assert datetime.fromisoformat(sql[0]["point_time"]) <= datetime.fromisoformat(sql[0]["latest_time"])


def test_simulated_dry_run_table_names_the_points() -> None:
    result = _run("--simulate")
    assert result.exit_code == 0, result.output
    assert "recovery point" in result.stdout
    # each VM's point is labelled with its kind; the SQL pair's common point is app-consistent. The
    # standalone VMs' newest points are crash- or app-consistent depending on the time of day
    labels = result.stdout.count("(app)") + result.stdout.count("(crash)")
    assert labels == 6 and result.stdout.count("(app)") >= 2, result.stdout
