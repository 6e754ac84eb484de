"""The drill flow on the simulated estate and a real Prefect engine: what a DR team sees after a drill."""

from __future__ import annotations

import os
import signal
from datetime import datetime

import pytest

from .conftest import SPEED, THREE_TIER, drill_estate

pytestmark = pytest.mark.usefixtures("harness")


def _test_vms(sim) -> list[str]:
    return [n for n in sim.onprem.vm_names() if n.endswith("-test")]


def _ops(sim, operation: str) -> list[dict]:
    """The simulator's ASR jobs of ``operation`` that succeeded (such a test failover made a test VM)."""
    return [
        r
        for r in sim.audit
        if r.get("event") == "job" and r.get("operation") == operation and r.get("outcome") == "succeeded"
    ]


def _vms_of(records: list[dict]) -> set[str]:
    return {r.get("vm") for r in records}


def test_drill_of_the_three_tier_plan_reports_rto_and_rpo_per_unit(external_sim) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.drill import drill

    sim = external_sim(drill_estate(THREE_TIER))
    state = drill(str(THREE_TIER), speed=SPEED, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()

    units = {row["unit"]: row for row in result["rows"]}
    assert set(units) == {"sql", "app-01", "app-02", "web-01", "web-02"}
    for name, row in units.items():
        assert int(row["rto_seconds"]) > 0, (name, row)
        assert int(row["rpo_seconds"]) >= 0, (name, row)
        assert row["rto"] and row["rpo"], (name, row)  # compared with the plan's targets (1h / 30m)
        assert ("target 1h" in row["rto"]) and ("target 30m" in row["rpo"]), row
    assert units["sql"]["checks"] == "6/6" and units["web-01"]["checks"] == "3/3"
    assert result["leftovers"] == [] and _test_vms(sim) == []

    # Graph order: a unit's test failover starts only after its dependencies' test VMs were verified.
    vms = {row["vm"]: row for row in result["vms"]}
    verified = {vm: datetime.fromisoformat(row["verified_at"]) for vm, row in vms.items()}
    started = {vm: datetime.fromisoformat(row["test_failover_start"]) for vm, row in vms.items()}
    for app in ("app-01", "app-02"):
        assert started[app] >= max(verified["sql-01"], verified["sql-02"])
    for web in ("web-01", "web-02"):
        assert started[web] >= max(verified["app-01"], verified["app-02"])

    # Every test VM was created once and removed.
    assert sorted(_vms_of(_ops(sim, "testFailover"))) == sorted(vms)
    assert sorted(_vms_of(_ops(sim, "testFailoverCleanup"))) == sorted(vms)

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
            )
        )
    report = next(a.data for a in artifacts if a.type == "markdown" and a.key.endswith("-report"))
    assert "RTO" in report and "RPO" in report and "None: every test VM was removed." in report
    assert {a.type for a in artifacts} >= {"markdown", "table", "progress"}


def test_a_failure_mid_drill_still_cleans_up_every_test_vm_and_runs_the_post_cleanup_hook(
    external_sim, plan_with_hooks, hook_log, events
) -> None:
    from drplan.drill.steps import DrillFailed
    from drplan.sim.estate import OperationFault
    from flows.drill import drill

    estate = drill_estate(plan_with_hooks)
    estate.faults.operations = [OperationFault(operation="testFailover", vm="app-02", mode="always")]
    sim = external_sim(estate)

    with pytest.raises(DrillFailed) as failed:
        drill(str(plan_with_hooks), speed=SPEED)

    assert set(failed.value.failed) == {"app-02"}
    assert {"web-01", "web-02", "smoke-test"} <= set(failed.value.skipped)
    assert failed.value.leftovers == []
    assert _test_vms(sim) == [], "a test VM was left behind"
    created = _vms_of(_ops(sim, "testFailover"))
    assert created == {"sql-01", "sql-02", "app-01"}
    assert created <= _vms_of(_ops(sim, "testFailoverCleanup"))

    # The post-cleanup hook ran, after every cleanup; the smoke test (after the failed tier) did not.
    assert hook_log.read_text().splitlines() == ["restore-dns"]
    order = [(node, what) for node, what, _ in events]
    hook_done = order.index(("restore-dns", "hook-done"))
    cleaned = [i for i, (_, what) in enumerate(order) if what == "cleaned-up"]
    assert cleaned and max(cleaned) < hook_done
    # The approval gate did not stop the unattended drill.
    assert ("change-approval", "hook-done") in order


def test_a_cancelled_drill_cleans_up(external_sim, plan_with_hooks, hook_log, events) -> None:
    from drplan.run.events import observing
    from flows.drill import drill

    sim = external_sim(drill_estate(plan_with_hooks))
    sent: list[int] = []

    def cancel_when_sql_is_up(event) -> None:
        # What a worker does to cancel a flow run: SIGTERM to the flow-run process (here: this one).
        if event.node == "sql" and event.transition == "verified" and not sent:
            sent.append(os.getpid())
            os.kill(os.getpid(), signal.SIGTERM)

    # After its graceful teardown the engine re-delivers SIGTERM to the handler it found (normally the default
    # which ends the process, as a worker expects): here that handler only records it, so pytest survives.
    redelivered: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: redelivered.append(signum))
    try:
        with observing(cancel_when_sql_is_up):
            try:
                state = drill(str(plan_with_hooks), speed=SPEED, return_state=True)
            except BaseException as exc:  # noqa: BLE001 - the engine re-raises the termination (TerminationSignal)
                state = exc
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert sent, "the drill never reached the point where it is cancelled"
    assert not (hasattr(state, "is_completed") and state.is_completed()), "the drill was not interrupted"
    created = _vms_of(_ops(sim, "testFailover"))
    assert {"sql-01", "sql-02"} <= created
    assert created <= _vms_of(_ops(sim, "testFailoverCleanup"))
    assert _test_vms(sim) == [], "a cancelled drill left a test VM behind"
    assert "restore-dns" in hook_log.read_text().splitlines()
    assert not any(node.startswith("web") and what == "verified" for node, what, _ in events)


def test_an_approval_marked_in_drills_stops_the_drill_until_answered(
    external_sim, plan_with_hooks, hook_log, events, monkeypatch
) -> None:
    import threading

    from drplan.run.events import observing
    from flows.cli import resume_when_paused
    from flows.drill import drill

    monkeypatch.setenv("DRPLAN_APPROVAL_POLL_SECONDS", "1")
    plan = plan_with_hooks.read_text().replace(
        "    prompt: Approve the change window?\n",
        "    prompt: Approve the change window?\n    in_drills: true\n",
    )
    plan_with_hooks.write_text(plan)
    external_sim(drill_estate(plan_with_hooks))
    answered: list[bool] = []

    def answer(event) -> None:
        if event.transition == "approval-requested" and event.node == "change-approval":
            run_id = event.payload["run_id"]
            approval = {"approved": True, "approver": "dr-lead", "comment": "drill window open"}
            worker = threading.Thread(
                target=lambda: answered.append(resume_when_paused(run_id, lambda: approval)), daemon=True
            )
            worker.start()

    with observing(answer):
        result = drill(str(plan_with_hooks), speed=SPEED)

    assert answered == [True], "the drill did not pause for the approval marked in_drills"
    done = [msg for node, what, msg in events if node == "change-approval" and what == "hook-done"]
    assert done == ["approved by dr-lead"]
    assert result["leftovers"] == [] and hook_log.read_text().splitlines()[-1] == "restore-dns"
