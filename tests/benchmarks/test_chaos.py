"""The chaos benchmark, small: 3 kills -9 of the orchestrator, one transient-fault rate and the runs-at-once
cases, against an external simulator and a Prefect server. The safety figures must be perfect; speed is only
reported (benchmarks/README.md has the full run)."""

from __future__ import annotations

import pytest

from benchmarks.chaos import markdown, run_chaos


@pytest.mark.timeout(420)
def test_kills_faults_and_concurrent_runs_on_a_small_plan(tmp_path):
    report = run_chaos(
        vms=7,
        kills=3,
        rates=[0.1],
        seed=3,
        speed=1.0,
        time_scale=0.2,
        max_reruns=3,
        workdir=tmp_path,
        log=lambda *_: None,
    )
    s = report["summary"]
    assert report["clean"]["done"] and report["groups"] >= 1 and report["hooks"] >= 1
    assert s["kills_recovered"] == "3/3", report["kills"]
    assert s["duplicate_failovers"] == 0
    assert s["commits_before_verification"] == 0
    assert s["groups_mixed"] == 0
    (faults,) = report["faults"]
    assert faults["completed"] and faults["vms_done"] == 7, faults
    cases = report["concurrent"]["cases"]
    assert all(c["refused"] and c["first_run_still_running"] for c in cases.values()), cases
    assert cases["renamed copy of the plan, same host"]["by"] == "VM claim on this host"
    assert cases["renamed copy from another PREFECT_HOME and lock dir, same server"]["by"] == (
        "VM claim on the Prefect server"
    )
    assert report["concurrent"]["first_run_done"] and report["concurrent"]["duplicate_failovers"] == 0
    assert "OperationInProgress" not in report["concurrent"]["refused_writes"]
    assert "recovered" in markdown(report)
