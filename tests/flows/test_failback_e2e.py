"""End to end: the three-tier plan failed back on the simulated estate by the real Prefect engine.

The simulator's audit log (every mutating ASR request, on simulated time) and the Prefect API's task runs
are the evidence; nothing here sleeps on wall time except while waiting for the engine itself.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest
from failback_support import E2E_SPEED, PLANNED, THREE_TIER, three_tier_estate

from drplan.observed import Phase
from drplan.plan.graph import load_and_compile
from drplan.sim import start_simulator

PLAN, GRAPH = load_and_compile(THREE_TIER)
VMS = [v.name for v in PLAN.vms]
UNIT_OF = {vm.name: u.name for u in GRAPH.units.values() for vm in u.vms}


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def run_failback(plan=THREE_TIER, **params):
    from drplan.run.events import observing
    from flows.failback import failback

    params.setdefault("commit", "after-verification")
    with observing(PLANNED):
        return failback(plan=str(plan), **params, return_state=True)


def task_runs(flow_run_id) -> dict[str, object]:
    """The flow run's task runs as recorded by the API, by task run name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.cli import wait_until_recorded

    assert wait_until_recorded(flow_run_id, PLANNED.by_run.get(str(flow_run_id), 1), timeout=90)
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {r.name: r for r in runs}


def accepted(audit, operation: str) -> list[dict]:
    return [
        r
        for r in audit
        if r.get("event") == "request" and r.get("operation") == operation and r.get("outcome") == "accepted"
    ]


@pytest.fixture(scope="module")
def three_tier_run(prefect_api, tmp_path_factory):
    """One complete failback (commit after verification) shared by the assertions below.

    The agent re-registers 50 simulated minutes after power-on, inside a 60-minute window: reprotect meets
    "agent isn't installed" first however long verify, gate and commit take on a loaded machine (at 150x,
    20 wall seconds), and still succeeds within the window."""
    plan = tmp_path_factory.mktemp("plan") / "three-tier.yaml"
    plan.write_text(
        THREE_TIER.read_text().replace("agent_registration_window: 20m", "agent_registration_window: 60m")
    )
    estate = three_tier_estate(agent_registration=3000.0)
    with pytest.MonkeyPatch.context() as mp, start_simulator(estate, speed=E2E_SPEED) as sim:
        mp.setenv("DRPLAN_SIM_ENDPOINT", sim.endpoint)
        mp.setenv("DRPLAN_SIM_CA_FILE", sim.ca_file)
        mp.setenv("DRPLAN_SIM_TOKEN", sim.token)
        mp.setenv("DRPLAN_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))
        state = run_failback(plan)
        yield state, list(sim.audit), sim


def test_three_tier_completes_and_every_vm_is_failed_back_once(three_tier_run):
    state, audit, sim = three_tier_run
    assert state.is_completed(), state.message
    result = state.result()
    assert result["outcome"] == "completed"
    assert Counter(r["vm"] for r in accepted(audit, "unplannedFailover")) == Counter(VMS)
    assert {sim.estate.vm(vm).phase for vm in VMS} == {Phase.reprotected_to_azure}


def test_every_failback_starts_after_its_dependencies_were_verified(three_tier_run):
    state, audit, _ = three_tier_run
    verified = {r["vm"]: _t(r["verified_at"]) for r in state.result()["rows"] if r["verified_at"]}
    unit_verified = {u: max(verified[vm.name] for vm in GRAPH.units[u].vms) for u in GRAPH.units}
    for req in accepted(audit, "unplannedFailover"):
        for dep in GRAPH.predecessors(UNIT_OF[req["vm"]]):
            assert unit_verified[dep] <= _t(req["time"]), (req["vm"], dep)
    # and no wave barrier: app-02 did not wait for app-01 (both start once sql is verified)
    starts = {r["vm"]: _t(r["time"]) for r in accepted(audit, "unplannedFailover")}
    assert starts["app-02"] < unit_verified["app-01"] or starts["app-01"] < unit_verified["app-02"]


def test_group_uses_its_common_app_consistent_point_and_standalone_vms_their_latest(three_tier_run):
    state, audit, _ = three_tier_run
    reqs = {r["vm"]: r for r in accepted(audit, "unplannedFailover")}
    rows = {r["vm"]: r for r in state.result()["rows"]}
    sql = [reqs["sql-01"], reqs["sql-02"]]
    assert {r["recovery_point_time"] for r in sql} == {sql[0]["recovery_point_time"]}
    assert {r["recovery_point_type"] for r in sql} == {"Custom"}  # drplan's choice: the common point
    # standalone VMs: the type ASR resolves when the job runs (their own newest point at that moment)
    assert {reqs[vm]["recovery_point_type"] for vm in ("app-01", "app-02", "web-01", "web-02")} == {
        "LatestTime"
    }
    assert {rows["sql-01"]["point_kind"], rows["sql-02"]["point_kind"]} == {"app-consistent"}
    for vm in ("app-01", "app-02", "web-01", "web-02"):
        assert rows[vm]["data_loss"] == "0s", rows[vm]  # its own newest point when ASR resolved it
        assert reqs[vm]["recovery_point"] == rows[vm]["point"].rsplit("/", 1)[-1]


def test_commit_only_after_every_unit_was_verified_and_reprotect_outlasts_the_agent_window(three_tier_run):
    state, audit, _ = three_tier_run
    last_verified = max(_t(r["verified_at"]) for r in state.result()["rows"] if r["verified_at"])
    commits = accepted(audit, "failoverCommit")
    assert sorted(r["vm"] for r in commits) == sorted(VMS)
    assert all(_t(r["time"]) >= last_verified for r in commits)
    agent_refusals = [
        r for r in audit if r.get("operation") == "reProtect" and r.get("code") == "AgentNotInstalled"
    ]
    assert agent_refusals, "reprotect never met the simulated 'agent isn't installed' window"
    final = {r["vm"] for r in state.result()["rows"] if r["reprotect"].startswith("ok")}
    assert final == set(VMS)


def test_task_runs_wait_for_edges_match_the_plan_graph(three_tier_run):
    state, _, _ = three_tier_run
    runs = task_runs(state.state_details.flow_run_id)
    by_id = {str(r.id): name for name, r in runs.items()}

    def parents(name: str) -> set[str]:
        return {by_id[str(i.id)] for i in runs[name].task_inputs.get("wait_for", [])}

    for unit in GRAPH.order:
        assert parents(f"failback {unit}") == {f"verify {p}" for p in GRAPH.predecessors(unit)}
        assert parents(f"verify {unit}") == {f"failback {unit}"}
        assert parents(f"commit {unit}") == {"approve commit"}
        assert parents(f"reprotect {unit}") == {f"commit {unit}"}
    sinks = {f"verify {u}" for u in GRAPH.order if not GRAPH.successors(u)}
    assert parents("approve commit") == sinks
    assert all(r.state.is_completed() for r in runs.values())


def test_report_artifacts_and_unit_events_are_published(three_tier_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    state, _, _ = three_tier_run
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    kinds = {a.type for a in arts}
    assert {"markdown", "table", "progress"} <= kinds
    report = next(a for a in arts if a.type == "markdown" and a.key.endswith("-report")).data
    for vm in VMS:
        assert f"| {vm} |" in report
    assert "RTO" in report and "completed" in report
    assert next(a for a in arts if a.type == "progress").data == 100.0


def test_each_unit_transition_is_a_prefect_event(three_tier_run):
    import time

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

    state, _, _ = three_tier_run
    related = EventRelatedFilter(id=[f"prefect.flow-run.{state.state_details.flow_run_id}"])
    wanted = {(f"drplan.unit.{t}", u) for u in GRAPH.order for t in ("failed-back", "verified", "committed")}
    names = sorted({e for e, _ in wanted})
    seen: set = set()
    deadline = time.monotonic() + 60  # the server persists events asynchronously
    with get_client(sync_client=True) as client:
        while not wanted <= seen and time.monotonic() < deadline:
            page = client.read_events(
                EventFilter(event=EventNameFilter(name=names), related=related), limit=50
            )
            seen = {(e.event, e.resource.get("prefect.resource.name")) for e in page.events}
            time.sleep(0.5)
    assert wanted <= seen, sorted(wanted - seen)
