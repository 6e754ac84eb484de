"""The failback flow's safety behaviour: skip propagation, preflight, dry run, approval gate, one run per
plan, and resume after the flow process was killed. Real Prefect engine, simulated estate."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter

from failback_support import PLANNED, ROOT, THREE_TIER

from drplan.observed import Phase
from drplan.plan.graph import load_and_compile
from drplan.sim.estate import OperationFault

PLAN, GRAPH = load_and_compile(THREE_TIER)
VMS = [v.name for v in PLAN.vms]


def run_failback(**params):
    from drplan.run.events import observing
    from flows.failback import failback

    params.setdefault("commit", "after-verification")
    with observing(PLANNED):
        return failback(plan=str(THREE_TIER), **params, return_state=True)


def requests(sim, operation: str | None = None, outcome: str | None = "accepted") -> list[dict]:
    return [
        r
        for r in sim.audit
        if r.get("event") == "request"
        and (operation is None or r.get("operation") == operation)
        and (outcome is None or r.get("outcome") == outcome)
    ]


def error_of(state) -> str:
    exc = state.result(raise_on_failure=False)
    return str(exc)


def wait_for(predicate, sim, what: str, limit: float = 200_000.0):
    """Poll ``predicate`` on the simulator's clock (never a wall-clock sleep); fail after ``limit`` sim-s."""
    deadline = sim.clock.monotonic() + limit
    while not predicate():
        assert sim.clock.monotonic() < deadline, f"timed out waiting for {what}"
        sim.clock.sleep(30)


def flow_run_state(run_id):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id).state


def test_a_failing_unit_skips_exactly_its_descendants(sim):
    sim.estate.faults.operations.append(
        OperationFault(operation="unplannedFailover", vm="app-01", mode="always")
    )
    state = run_failback()
    assert state.is_failed()
    message = error_of(state)
    assert "failed  app-01" in message
    assert "skipped web-01: dependency app-01 failed" in message
    assert "skipped web-02: dependency app-01 failed" in message
    started = {r["vm"] for r in requests(sim, "unplannedFailover")}
    assert started == {"sql-01", "sql-02", "app-01", "app-02"}  # the independent branch app-02 went on
    assert sim.estate.vm("app-02").phase == Phase.failed_back
    assert requests(sim, "failoverCommit") == []  # never commit while a unit is not verified
    descendants = set(GRAPH.descendants("app-01"))
    assert descendants == {"web-01", "web-02"}


def test_a_failed_precondition_aborts_before_any_write(sim):
    sim.onprem.add_snapshot("mt-lnx-01")
    sim.estate.vm("app-02").replication_health = "Warning"
    sim.estate.vm("web-01").protection_disabled = True
    state = run_failback()
    assert state.is_failed()
    message = error_of(state)
    assert "preflight of plan three-tier failed: 3 check(s); nothing was changed" in message
    assert "master target mt-lnx-01 has snapshots" in message
    assert "app-02: replication health is Warning" in message
    assert "web-01: protection is disabled" in message
    assert requests(sim, outcome=None) == []  # zero writes


def test_dry_run_reads_everything_and_writes_nothing(sim):
    state = run_failback(dry_run=True)
    assert state.is_completed(), error_of(state)
    result = state.result()
    assert result["outcome"] == "dry run: nothing was changed"
    would = "\n".join(result["would"])
    for vm in VMS:
        assert f"VM {vm} (unit" in would
    assert "would commit" in would and "would reprotect to Azure" in would
    assert requests(sim, outcome=None) == []


def test_approval_gate_pauses_refuses_a_second_run_and_resumes_on_input(sim, monkeypatch, tmp_path):
    from prefect.flow_runs import resume_flow_run

    first: dict = {}
    worker = threading.Thread(target=lambda: first.update(state=run_failback(commit=None)))  # plan: approval
    worker.start()
    run_ids = []

    def paused() -> bool:
        run_ids[:] = list(PLANNED.by_run)  # the flow reports its run id once its steps are planned
        ids = [i for i in run_ids if flow_run_state(i).is_paused()]
        return bool(ids)

    wait_for(paused, sim, "the approval gate to pause the run")
    run_id = next(i for i in run_ids if flow_run_state(i).is_paused())
    assert requests(sim, "failoverCommit") == []
    assert len(requests(sim, "unplannedFailover")) == len(VMS)

    second = run_failback()  # same host, same plan: the plan lock refuses it
    assert second.is_failed()
    assert "plan three-tier is already being run on this host" in error_of(second)
    monkeypatch.setenv("DRPLAN_LOCK_DIR", str(tmp_path / "elsewhere"))  # as if from another host
    third = run_failback()
    assert third.is_failed()
    assert "plan three-tier already has an active run: flow run" in error_of(third)
    assert run_id in error_of(third)

    resume_flow_run(run_id, run_input={"approved": True, "approver": "alice", "comment": "smoke tests ok"})
    worker.join(timeout=600)
    assert first["state"].is_completed(), error_of(first["state"])
    assert sorted(r["vm"] for r in requests(sim, "failoverCommit")) == sorted(VMS)
    assert first["state"].result()["outcome"] == "completed"


def test_killed_run_resumes_from_asr_state_without_failing_back_twice(sim, prefect_api, tmp_path):
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "PYTHONPATH": str(ROOT),
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    }
    code = (
        "from flows.failback import failback\n"
        f"failback(plan={str(THREE_TIER)!r}, commit='after-verification')\n"
    )
    log = tmp_path / "killed.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err
        )
        try:
            # kill it mid-way: the app tier's failback jobs are in flight
            wait_for(
                lambda: len(requests(sim, "unplannedFailover")) >= 3 or proc.poll() is not None,
                sim,
                "the killed run to start failing back the app tier",
            )
            assert proc.poll() is None, log.read_text()
        finally:
            proc.kill()
            proc.wait()
    before = Counter(r["vm"] for r in requests(sim, "unplannedFailover"))
    assert 3 <= sum(before.values()) < len(VMS)

    state = run_failback()
    assert state.is_completed(), error_of(state)
    assert Counter(r["vm"] for r in requests(sim, "unplannedFailover")) == Counter(VMS)  # exactly once each
    assert Counter(r["vm"] for r in requests(sim, "failoverCommit")) == Counter(VMS)
    assert {sim.estate.vm(vm).phase for vm in VMS} == {Phase.reprotected_to_azure}
    # the killed run, left Running in the API by its dead process, was marked Crashed by the new run
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    tagged = FlowRunFilter(tags=FlowRunFilterTags(all_=["drplan-plan:three-tier"]))
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=tagged)
    crashed = [r for r in runs if r.state.is_crashed() and "superseded" in (r.state.message or "")]
    assert len(crashed) == 1


def test_commit_policy_never_fails_back_and_verifies_but_commits_nothing(sim):
    state = run_failback(commit="never")
    assert state.is_completed(), error_of(state)
    assert state.result()["outcome"] == "failed back and verified; not committed (commit policy: never)"
    assert len(requests(sim, "unplannedFailover")) == len(VMS)
    assert requests(sim, "failoverCommit") == [] and requests(sim, "reProtect") == []


def test_group_in_recovery_plan_mode_fails_back_through_one_asr_recovery_plan(sim, tmp_path):
    from ruamel.yaml import YAML

    yaml = YAML()
    data = yaml.load(THREE_TIER.read_text())
    data["failback"]["group_failback_mode"] = "recovery-plan"
    plan = tmp_path / "three-tier.yaml"
    with plan.open("w") as fh:
        yaml.dump(data, fh)
    from flows.failback import failback

    state = failback(plan=str(plan), commit="after-verification", return_state=True)
    assert state.is_completed(), error_of(state)
    by_plan = [r for r in requests(sim, "unplannedFailover") if r.get("target") == "plan"]
    assert len(by_plan) == 1 and sorted(by_plan[0]["vms"]) == ["sql-01", "sql-02"]
    per_item = sorted(r["vm"] for r in requests(sim, "unplannedFailover") if r.get("target") == "item")
    assert per_item == ["app-01", "app-02", "web-01", "web-02"]
    assert {sim.estate.vm(vm).phase for vm in VMS} == {Phase.reprotected_to_azure}
