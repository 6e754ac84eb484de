"""Every ASR operation through the real SDK over HTTPS against the simulated vault, checked in its audit."""

from __future__ import annotations

import pytest
from asr_helpers import SteppingClock, accepted, client_for, make_estate

from drplan.asr import recovery_plan_name
from drplan.asr.transport import BoundedARMPolling
from drplan.errors import PreconditionError
from drplan.observed import JobStatus, Phase
from drplan.recovery.phase import phase_of
from drplan.recovery.points import choose_for_unit
from drplan.sim.estate import Settings


def phase(client, ref) -> Phase:
    return phase_of(client.item_state(ref))


def test_full_lifecycle_of_one_vm(simulate):
    sim = simulate(make_estate(["app-01"], phase=Phase.failed_over_to_azure))
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]
    assert phase(client, ref) is Phase.failed_over_to_azure

    job = client.reprotect_to_onprem(
        ref,
        master_target_id="mt-lnx-01",
        process_server_id="ps-azure-01",
        retention_drive="/mnt/retention",
        profile_id="policy-failback",
    )
    assert (job.scenario, job.state, job.reused) == ("ReverseReplication", JobStatus.succeeded, False)
    assert phase(client, ref) is Phase.reprotected_to_onprem
    assert accepted(sim, "reProtect")[0]["provider"] == "InMage"

    points = client.recovery_points(ref)
    chosen = choose_for_unit("latest", {"app-01": points}, now=sim.clock.now())["app-01"]
    job = client.failback(ref, chosen.point)
    assert (job.scenario, job.state) == ("UnplannedFailover", JobStatus.succeeded)
    state = client.item_state(ref)
    assert phase_of(state) is Phase.failed_back and state.failover_recovery_point_id == chosen.point.id
    (write,) = accepted(sim, "unplannedFailover")
    assert (write["provider"], write["recovery_point_type"]) == ("InMage", "Custom")
    assert write["recovery_point"] == chosen.point.id.rsplit("/", 1)[-1]
    assert write["direction"] == "PrimaryToRecovery"  # PowerShell's item-level direction, the default
    assert sim.engine.azure_vm("app-01") == "stopped"
    assert sim.onprem.read_state(["app-01"]).vms["app-01"].power_state == "poweredOn"

    assert client.commit(ref).state is JobStatus.succeeded
    assert phase(client, ref) is Phase.committed and sim.engine.azure_vm("app-01") == "deleted"

    # "agent isn't installed" until the agent has re-registered (15 simulated minutes after the VM started):
    # retried within the window
    job = client.reprotect_to_azure(
        ref, process_server_id="cs-01", policy_id="policy-to-azure", agent_registration_window=1200
    )
    assert job.state is JobStatus.succeeded
    assert phase(client, ref) is Phase.reprotected_to_azure
    attempts = sim.audit.requests("reProtect")
    assert attempts[-1]["provider"] == "InMageAzureV2"
    failed = [r for r in sim.audit if r.get("event") == "job" and r.get("code") == "AgentNotInstalled"]
    assert failed, "the first reprotect attempts met the agent-registration window"


def test_failback_point_types(simulate):
    sim = simulate(make_estate(["a", "b"]))
    client = client_for(sim)
    refs = client.discover(["a", "b"])
    client.failback(refs["a"], point_type="LatestTag")
    client.failback(refs["b"])
    by_vm = {r["vm"]: r for r in accepted(sim, "unplannedFailover")}
    assert by_vm["a"]["recovery_point_type"] == "LatestTag"
    assert by_vm["a"]["recovery_point_consistency"] == "ApplicationConsistent"
    assert by_vm["b"]["recovery_point_type"] == "LatestTime"
    with pytest.raises(PreconditionError, match="LatestTime, LatestTag, or Custom"):
        client.failback(refs["a"], point_type="Newest")


def test_failback_direction_is_a_setting(simulate):
    sim = simulate(make_estate(["a"]))
    client = client_for(sim, direction="RecoveryToPrimary")
    client.failback(client.discover(["a"])["a"])
    assert accepted(sim, "unplannedFailover")[0]["direction"] == "RecoveryToPrimary"


def test_test_failover_and_cleanup(simulate):
    sim = simulate(make_estate(["app-01"]))
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]

    job = client.test_failover(ref, network_id="vnet-dr-test")
    assert (job.scenario, job.state) == ("TestFailover", JobStatus.succeeded)
    assert "TestFailoverCleanup" in client.item_state(ref).allowed_operations
    assert client.test_failover(ref).reused  # awaiting cleanup: not issued again

    job = client.test_failover_cleanup(ref)
    assert (job.scenario, job.state) == ("TestFailoverCleanup", JobStatus.succeeded)
    assert client.test_failover_cleanup(ref).reused  # nothing left to clean up
    assert phase(client, ref) is Phase.reprotected_to_onprem
    assert len(accepted(sim, "testFailover")) == 1 and len(accepted(sim, "testFailoverCleanup")) == 1


def test_group_by_recovery_plan_holds_just_its_members(simulate):
    names = ["db-01", "db-02", "app-01"]
    sim = simulate(
        make_estate(names, groups={"sql": ["db-01", "db-02"]}, settings=Settings(enforce_group_failover=True))
    )
    client = client_for(sim)
    refs = client.discover(names)
    members = [refs["db-01"], refs["db-02"]]

    # ASR (like PowerShell) refuses a single-item failover inside a multi-VM group
    with pytest.raises(PreconditionError) as err:
        client.failback_group("sql", members, mode="per-item", points=None, point_type="LatestTime")
    assert err.value.rule == "members of a multi-VM replication group fail over together"
    assert "db-01" in str(err.value) and "db-02" in str(err.value)
    assert accepted(sim, "unplannedFailover") == []

    jobs = client.failback_group("sql", members, mode="recovery-plan", point_type="LatestTag")
    assert {j.name for j in jobs.values()} == {jobs["db-01"].name} and jobs[
        "db-01"
    ].state is JobStatus.succeeded
    (write,) = accepted(sim, "unplannedFailover")
    assert write["plan"] == recovery_plan_name("sql") and sorted(write["vms"]) == ["db-01", "db-02"]
    assert (write["direction"], write["recovery_point_type"]) == ("RecoveryToPrimary", "LatestTag")
    assert len({p["time"] for p in write["recovery_points"].values()}) == 1  # the common point
    assert client.recovery_plan(recovery_plan_name("sql")).items == {r.item.lower() for r in members}
    assert all(phase(client, r) is Phase.failed_back for r in members)
    assert phase(client, refs["app-01"]) is Phase.reprotected_to_onprem

    # a re-run reuses the plan and does not fail over again
    again = client.failback_group("sql", members, mode="recovery-plan")
    assert all(j.reused for j in again.values())
    assert len(sim.audit.requests("createRecoveryPlan")) == 1 and len(accepted(sim, "unplannedFailover")) == 1

    jobs = client.commit_group("sql", members, mode="recovery-plan")
    assert jobs["db-01"].scenario == "CommitFailover"
    assert all(phase(client, r) is Phase.committed for r in members)

    sim.clock.advance(900)  # let the agents re-register with the configuration server
    job = client.plan_reprotect(recovery_plan_name("sql"), members, toward="azure")
    assert job.scenario == "ReverseReplication" and all(
        phase(client, r) is Phase.reprotected_to_azure for r in members
    )

    with pytest.raises(PreconditionError, match="already exists with other members"):
        client.ensure_recovery_plan(recovery_plan_name("sql"), [refs["db-01"], refs["app-01"]])


def test_group_per_item_to_the_common_point(simulate):
    names = ["db-01", "db-02"]
    sim = simulate(make_estate(names, groups={"sql": names}))
    client = client_for(sim)
    refs = client.discover(names)
    chosen = choose_for_unit(
        "common-app-consistent", client.recovery_points_for(refs.values()), now=sim.clock.now(), unit="sql"
    )

    jobs = client.failback_group("sql", list(refs.values()), points={vm: c.point for vm, c in chosen.items()})
    assert {j.state for j in jobs.values()} == {JobStatus.succeeded}
    writes = accepted(sim, "unplannedFailover")
    assert {w["vm"]: w["recovery_point"] for w in writes} == {
        vm: c.point.id.rsplit("/", 1)[-1] for vm, c in chosen.items()
    }
    assert {w["recovery_point_time"] for w in writes} == {
        chosen["db-01"].point.time.isoformat().replace("+00:00", "Z")
    }
    assert client.commit_group("sql", list(refs.values()))["db-02"].state is JobStatus.succeeded


def test_group_drill_by_recovery_plan(simulate):
    names = ["db-01", "db-02"]
    sim = simulate(make_estate(names, groups={"sql": names}))
    client = client_for(sim)
    members = list(client.discover(names).values())
    job = client.test_failover_group("sql", members, mode="recovery-plan", network_id="vnet-dr-test")["db-01"]
    assert job.scenario == "TestFailover"
    assert client.test_failover_group("sql", members, mode="recovery-plan")["db-01"].reused
    job = client.test_failover_cleanup_group("sql", members, mode="recovery-plan")["db-02"]
    assert (job.scenario, job.reused) == ("TestFailoverCleanup", False)
    assert len(accepted(sim, "testFailover")) == 1 and len(accepted(sim, "testFailoverCleanup")) == 1
    assert accepted(sim, "testFailover")[0]["plan"] == "drplan-sql"


def test_waits_poll_no_slower_than_the_bound_on_the_injected_clock(simulate):
    sim = simulate(make_estate(["a"]))  # the simulator's Retry-After says "600 s" for a 10-minute job
    clock = SteppingClock(sim.clock)
    client = client_for(sim, clock=clock, polling_interval=20)
    ref = client.discover(["a"])["a"]

    assert client.failback(ref).state is JobStatus.succeeded
    assert clock.sleeps and max(clock.sleeps) <= 20

    # the SDK's own LRO poller, bounded the same way (the SDK's default would wait 30 s per poll)
    clock.sleeps.clear()
    poller = client.sdk.replication_protected_items.begin_failover_commit(
        sim.resource_group,
        sim.vault,
        ref.fabric,
        ref.container,
        ref.item,
        polling=BoundedARMPolling(20, clock=clock),
    )
    item = poller.result()
    assert item.properties.protection_state == "UnplannedFailoverCommitted"
    assert clock.sleeps and max(clock.sleeps) <= 20
