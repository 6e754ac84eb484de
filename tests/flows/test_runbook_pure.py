"""Prefect-free pieces of the failback: recovery-point overrides, the report, the per-plan run lock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drplan.failback.point_choice import parse_overrides
from drplan.observed import CheckResult
from drplan.run.host_lock import PlanBusy, PlanLock
from drplan.run.report import Report


def test_overrides_apply_to_every_unit_or_one_named_unit():
    assert parse_overrides(["latest"], ["sql", "web-01"]) == {"*": "latest"}
    assert parse_overrides(["sql=latest-app-consistent"], ["sql"]) == {"sql": "latest-app-consistent"}
    with pytest.raises(ValueError, match="no VM or group named 'db'"):
        parse_overrides(["db=latest"], ["sql"])
    with pytest.raises(ValueError, match="unknown policy 'freshest'"):
        parse_overrides(["freshest"], ["sql"])


def test_report_lists_each_vm_with_point_data_loss_and_rto():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    report = Report("three-tier", "simulate", t0)
    report.preflight = [
        CheckResult("vcenter-connected", True),
        CheckResult("master-target mt-01", False, "snaps"),
    ]
    report.update(
        "sql",
        "sql-01",
        point="/x/points/p1",
        point_time=t0 - timedelta(minutes=12),
        point_kind="app-consistent",
        data_loss=300.0,
        verified_at=t0 + timedelta(minutes=14),
        rto=840.0,
    )
    report.outcome = "completed"
    md = report.markdown()
    assert "| sql | sql-01 |" in md and "app-consistent `p1`" in md and "5m" in md and "14m" in md
    assert "1/2 checks passed" in md and "master-target mt-01**: snaps" in md
    (row,) = report.table()
    assert (
        row["data_loss"] == "5m" and row["rto"] == "14m" and row["verified_at"].startswith("2026-01-01T00:14")
    )


def test_plan_lock_refuses_a_second_holder_and_hands_over_the_previous_record(tmp_path):
    first = PlanLock("three-tier", tmp_path)
    assert first.acquire(flow_run="run-1") == {}
    with pytest.raises(PlanBusy, match="plan three-tier is already being run on this host.*flow_run run-1"):
        PlanLock("three-tier", tmp_path).acquire(flow_run="run-2")
    first.release()
    second = PlanLock("three-tier", tmp_path)
    assert second.acquire(flow_run="run-3")["flow_run"] == "run-1"
    second.release()
