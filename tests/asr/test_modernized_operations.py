"""The modernized providers (InMageRcm → InMageRcmFailback) through drplan's adapter, the real SDK and HTTPS
against the simulated vault, checked in its audit log."""

from __future__ import annotations

import pytest
from asr_helpers import accepted, client_for

from drplan.asr import recovery_plan_name
from drplan.errors import AgentNotInstalledError, AsrError, PreconditionError
from drplan.observed import JobStatus, Phase
from drplan.plan.schema import GroupFailbackMode
from drplan.recovery.phase import is_modernized, phase_of
from drplan.sim import Estate
from drplan.sim.estate import Appliance, Faults, OperationFault, PointGenerator, Vm


def rcm_estate(phase: Phase = Phase.failed_over_to_azure, **vm_fields) -> Estate:
    """db-01/db-02 (group 'db') and web-01 on appliance-01, app-01 on appliance-02; all modernized."""
    vms = [
        Vm(name="db-01", os="windows", replication_group="db", disks=2),
        Vm(name="db-02", os="windows", replication_group="db"),
        Vm(name="web-01", vcenter_name="WEB01", os="linux"),
        Vm(name="app-01", os="linux", appliance="appliance-02"),
    ]
    vms = [
        v.model_copy(
            update={
                "provider": "modernized",
                "appliance": v.appliance or "appliance-01",
                "phase": phase,
                **vm_fields,
            }
        )
        for v in vms
    ]
    return Estate(
        appliances=[
            Appliance(name="appliance-01", ip="10.0.2.10", datastores=["datastore1", "datastore2"]),
            Appliance(name="appliance-02", ip="10.0.2.11", datastores=["datastore1"]),
        ],
        vms=vms,
        recovery_points=PointGenerator(retention=4 * 3600),
    )


def phase(client, ref) -> Phase:
    return phase_of(client.item_state(ref))


def reprotect_back(client, ref):
    return client.reprotect_to_onprem_modernized(
        ref, appliance="appliance-01", datastore="datastore1", log_storage_account="drplanlogsa"
    )


def test_the_whole_modernized_cycle_of_one_vm(simulate):
    sim = simulate(rcm_estate())
    client = client_for(sim)
    ref = client.discover(["web-01"])["web-01"]
    state = client.item_state(ref)
    assert (
        is_modernized(state)
        and state.family == "modernized"
        and phase_of(state) is Phase.failed_over_to_azure
    )
    assert state.agent_registered_after_failover is True and state.agent_heartbeat is not None
    assert state.appliance_name == "appliance-01" and state.azure_resource_group == sim.resource_group

    job = reprotect_back(client, ref)
    assert (job.scenario, job.state, job.reused) == ("ReverseReplication", JobStatus.succeeded, False)
    state = client.item_state(ref)
    assert phase_of(state) is Phase.reprotected_to_onprem and state.provider == "InMageRcmFailback"
    assert state.target_datastore == "datastore1" and state.resync_progress == 100
    assert client.replication_progress(ref, state=state) == (100, "resync")
    body = accepted(sim, "reProtect")[0]
    assert body["provider"] == "InMageRcm" and body["direction"] == "RecoveryToPrimary"
    assert reprotect_back(client, ref).reused  # already reprotected: not sent again
    assert len(accepted(sim, "reProtect")) == 1

    sim.clock.advance(3600)
    job = client.planned_failback(ref, "CrashConsistent")
    assert (job.scenario, job.state) == ("PlannedFailover", JobStatus.succeeded)
    state = client.item_state(ref)
    assert phase_of(state) is Phase.failed_back and state.last_planned_failover_status == "Succeeded"
    assert client.planned_failback(ref, "CrashConsistent").reused  # already failed back
    [request] = accepted(sim, "plannedFailover")
    assert request["recovery_point_type"] == "CrashConsistent" and request["provider"] == "InMageRcmFailback"

    client.commit(ref)
    assert phase(client, ref) is Phase.committed
    job = client.reprotect_to_azure_modernized(ref, agent_registration_window=3600, retry_every=300)
    assert job.state is JobStatus.succeeded
    state = client.item_state(ref)
    assert phase_of(state) is Phase.reprotected_to_azure and state.provider == "InMageRcm"
    first, *back = [r["provider"] for r in accepted(sim, "reProtect")]
    # the simulated agent heartbeats as soon as the on-prem VM runs but registers 15 minutes later: the
    # "agent not installed" jobs before that are retried within the window
    assert first == "InMageRcm" and set(back) == {"InMageRcmFailback"}
    assert not [r for r in sim.audit if r.get("provider") in ("InMage", "InMageAzureV2")]


def test_classic_and_modernized_operations_refuse_each_others_items(simulate):
    sim = simulate(rcm_estate(Phase.reprotected_to_onprem))
    client = client_for(sim)
    ref = client.discover(["web-01"])["web-01"]
    with pytest.raises(PreconditionError, match="planned_failback"):
        client.failback(ref)
    with pytest.raises(PreconditionError, match="ApplicationConsistent or CrashConsistent"):
        client.planned_failback(ref, "Custom")
    assert not accepted(sim)


def test_cancel_then_app_consistent_failback(simulate):
    sim = simulate(rcm_estate(Phase.reprotected_to_onprem))
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]
    sim.clock.advance(7200)
    client.planned_failback(ref, "LatestTime")
    job = client.cancel_failback(ref)
    assert job.scenario == "CancelFailover" and phase(client, ref) is Phase.reprotected_to_onprem
    assert client.cancel_failback(ref).reused  # nothing left to cancel
    client.planned_failback(ref, "ApplicationConsistent")
    assert [r["recovery_point_type"] for r in accepted(sim, "plannedFailover")] == [
        "CrashConsistent",
        "ApplicationConsistent",
    ]


def test_a_failed_planned_failover_is_rolled_back_and_retried(simulate):
    est = rcm_estate(Phase.reprotected_to_onprem)
    est.faults = Faults(
        operations=[
            OperationFault(operation="plannedFailover", vm="web-01", mode="once", message="disk lost")
        ]
    )
    sim = simulate(est)
    client = client_for(sim)
    ref = client.discover(["web-01"])["web-01"]
    with pytest.raises(AsrError, match="disk lost.*ASR rolled it back") as err:
        client.planned_failback(ref)
    assert getattr(err.value, "rolled_back", False)
    state = client.item_state(ref)
    assert phase_of(state) is Phase.reprotected_to_onprem and state.last_planned_failover_status == "Failed"
    assert client.planned_failback(ref).state is JobStatus.succeeded  # the retry
    assert phase(client, ref) is Phase.failed_back


def test_a_group_fails_back_through_one_recovery_plan_with_multi_vm_sync(simulate):
    sim = simulate(rcm_estate(Phase.reprotected_to_onprem))
    client = client_for(sim)
    refs = client.discover(["db-01", "db-02"])
    sim.clock.advance(7200)
    jobs = client.failback_group(
        "db", list(refs.values()), mode=GroupFailbackMode.recovery_plan, point_type="LatestTag"
    )
    assert {j.scenario for j in jobs.values()} == {"PlannedFailover"}
    [request] = accepted(sim, "plannedFailover")
    assert request["target"] == "plan" and request["plan"] == recovery_plan_name("db")
    assert request["recovery_point_type"] == "ApplicationConsistent"
    [body] = [r["body"] for r in sim.request_log if r["route"] == "ReplicationRecoveryPlans_PlannedFailover"]
    assert body["properties"]["providerSpecificDetails"] == [
        {
            "instanceType": "InMageRcmFailback",
            "recoveryPointType": "ApplicationConsistent",
            "useMultiVmSyncPoint": "Enable",
        }
    ]
    states = client.item_states(list(refs.values()))
    times = {client.recovery_point(refs[vm], s.failover_recovery_point_id).time for vm, s in states.items()}
    assert len(times) == 1  # the group's common point
    client.commit_group("db", list(refs.values()), mode=GroupFailbackMode.recovery_plan)
    assert {phase_of(s) for s in client.item_states(list(refs.values())).values()} == {Phase.committed}


def test_reprotect_to_azure_waits_for_the_agent_instead_of_a_fixed_window(simulate):
    sim = simulate(rcm_estate(Phase.committed, agent_registered_after_failover=False))
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]
    with pytest.raises(AgentNotInstalledError, match="did not register after the failover"):
        client.reprotect_to_azure_modernized(ref, readiness_timeout=600)
    assert not accepted(sim, "reProtect")


def test_modernized_infrastructure_and_names_resolved_to_ids(simulate):
    sim = simulate(rcm_estate())
    client = client_for(sim)
    infra = client.modernized_infrastructure()
    e = sim.engine
    assert [a.name for a in infra.appliances] == ["appliance-01", "appliance-02"]
    one = infra.appliance("appliance-01")
    assert one.reprotect_agent_id == e.component_id("appliance-01", "reprotectAgents")
    assert one.process_server_id == e.component_id("appliance-01", "processServers")
    assert one.connected and one.healthy and one.datastores == ("datastore1", "datastore2")
    assert infra.appliance(one.reprotect_agent_id.upper()) == one
    assert {p.provider for p in infra.policies} == {"InMageRcm", "InMageRcmFailback"}
    assert infra.run_as_account_ids() == (e.run_as_id("vcenter-runas"),)
    assert client.storage_account_id("drplanlogsa").lower() == e.log_storage_id.lower()
    with pytest.raises(PreconditionError, match="appliance-09.*registered: appliance-01, appliance-02"):
        client.appliance_info("appliance-09", vm="web-01", operation="reprotect")


def test_a_forward_drill_into_an_azure_network_is_checked_through_compute(simulate):
    sim = simulate(rcm_estate(Phase.replicating_to_azure))
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]
    assert client.item_state(ref).last_point_received is not None
    with pytest.raises(PreconditionError, match="isolated Azure network"):
        client.test_failover(ref)
    client.test_failover(ref, network_id="vnet-drill")
    [request] = accepted(sim, "testFailover")
    assert request["provider"] == "InMageRcm"
    vm = client.azure_vm("app-01-test")
    assert vm.exists and vm.running
    sim.clock.advance(sim.estate.durations.boot)
    assert client.azure_vm("app-01-test").agent_ready
    client.test_failover_cleanup(ref)
    assert not client.azure_vm("app-01-test").exists
    client.close()


@pytest.mark.parametrize("group", [False, True])
def test_a_planned_failback_is_first_polled_after_the_retry_after_asr_gave(simulate, group):
    """Not at once and then a whole polling interval later: a failback of minutes took at least the
    interval (10 s in production, an hour here) and one poll more."""
    from asr_helpers import SteppingClock

    sim = simulate(rcm_estate(phase=Phase.reprotected_to_onprem))
    clock = SteppingClock(sim.clock)
    client = client_for(sim, clock=clock, polling_interval=3600)
    refs = client.discover(["db-01", "db-02"])
    started = sim.clock.monotonic()
    sim.reset_counts()
    if group:
        jobs = client.failback_group(
            "db", list(refs.values()), mode=GroupFailbackMode.recovery_plan, point_type="LatestTag"
        )
        job = jobs["db-01"]
    else:
        job = client.planned_failback(refs["db-01"], "CrashConsistent")
    assert job.state is JobStatus.succeeded
    assert sim.clock.monotonic() - started < 3600, clock.sleeps
    # polls: of the recovery plan's job; of the item for an item's job (one read before the write)
    polls = sim.request_counts[("GET", "ReplicationJobs_Get")]
    polls += sim.request_counts[("GET", "ReplicationProtectedItems_Get")] - (0 if group else 1)
    assert 1 <= polls <= 2, sim.request_counts
