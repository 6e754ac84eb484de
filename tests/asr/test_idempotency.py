"""Re-runs are safe: work already done is not issued again, a running job is awaited (by a new client too)."""

from __future__ import annotations

import pytest
from asr_helpers import accepted, client_for, make_estate

from drplan.errors import JobTimeout, PreconditionError
from drplan.observed import JobStatus, Phase
from drplan.recovery.phase import phase_of

REPROTECT_ONPREM = dict(
    master_target_id="mt-lnx-01",
    process_server_id="ps-azure-01",
    retention_drive="/mnt/retention",
    profile_id="policy-failback",
)


def test_every_operation_repeated_after_it_happened_writes_nothing(simulate):
    sim = simulate(make_estate(["app-01"], phase=Phase.failed_over_to_azure))
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]

    steps = [
        ("reProtect", lambda: client.reprotect_to_onprem(ref, **REPROTECT_ONPREM)),
        ("testFailover", lambda: client.test_failover(ref, network_id="vnet-test")),
        ("testFailoverCleanup", lambda: client.test_failover_cleanup(ref)),
        ("unplannedFailover", lambda: client.failback(ref)),
        ("failoverCommit", lambda: client.commit(ref)),
    ]
    for operation, run in steps:
        first = run()
        assert (first.state, first.reused) == (JobStatus.succeeded, False)
        writes = len(sim.audit.requests())
        again = run()
        assert again.reused and again.state is JobStatus.succeeded
        assert len(sim.audit.requests()) == writes, f"{operation} was sent a second time"
        assert len(accepted(sim, operation)) == 1

    # a later step makes the earlier ones "already done" too
    assert client.reprotect_to_onprem(ref, **REPROTECT_ONPREM).reused
    assert client.failback(ref).reused
    assert len(accepted(sim, "reProtect")) == 1 and len(accepted(sim, "unplannedFailover")) == 1


def test_restart_while_a_failback_runs_awaits_that_job(simulate):
    sim = simulate(make_estate(["app-01"]))
    before_crash = client_for(sim)
    ref = before_crash.discover(["app-01"])["app-01"]
    started = before_crash.failback(ref, wait=False)
    assert started.state in (JobStatus.not_started, JobStatus.in_progress)
    before_crash.close()  # the process dies here; ASR keeps running the job

    after_restart = client_for(sim)
    ref = after_restart.discover(["app-01"])["app-01"]
    assert phase_of(after_restart.item_state(ref)) is Phase.failback_in_progress
    assert after_restart.inflight_job(ref).name == started.name

    job = after_restart.failback(ref)
    assert (job.name, job.state, job.reused) == (started.name, JobStatus.succeeded, True)
    assert len(accepted(sim, "unplannedFailover")) == 1
    assert phase_of(after_restart.item_state(ref)) is Phase.failed_back
    assert after_restart.inflight_job(ref) is None


@pytest.mark.parametrize("operation", ["failback", "reprotect to Azure"])
def test_a_read_made_stale_by_its_job_ending_is_read_again_not_acted_on(simulate, operation):
    """A step retried after a transient error decides on the item it read moments ago; when the job that
    read names ends before the decision (its job GET says so), the phase is from before the job's outcome:
    the item is read again, and nothing is sent a second time (seen in CI under 40 % transient faults)."""
    phase = Phase.reprotected_to_onprem if operation == "failback" else Phase.committed
    sim = simulate(make_estate(["app-01"], phase=phase))
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]
    act = {"failback": client.failback, "reprotect to Azure": client.reprotect_to_azure}[operation]
    started = act(ref, wait=False)
    stale = client.item_state(ref)
    assert stale.current_job == started.name and phase_of(stale) is not Phase.failed_back
    sim.clock.advance(6 * 3600)  # the job ends between the item's read and the decision
    job = act(ref, state=stale)
    assert job.reused and job.state is JobStatus.succeeded
    write = {"failback": "unplannedFailover", "reprotect to Azure": "reProtect"}[operation]
    assert len(accepted(sim, write)) == 1


def test_restart_while_a_group_recovery_plan_fails_back_awaits_it(simulate):
    names = ["db-01", "db-02"]
    sim = simulate(make_estate(names, groups={"sql": names}))
    first = client_for(sim)
    members = list(first.discover(names).values())
    started = first.failback_group("sql", members, mode="recovery-plan", wait=False)["db-01"]
    first.close()

    second = client_for(sim)
    jobs = second.failback_group("sql", list(second.discover(names).values()), mode="recovery-plan")
    assert {j.name for j in jobs.values()} == {started.name} and jobs["db-02"].state is JobStatus.succeeded
    assert len(accepted(sim, "unplannedFailover")) == 1 and len(sim.audit.requests("createRecoveryPlan")) == 1


def test_a_different_running_job_blocks_instead_of_piling_up(simulate):
    sim = simulate(make_estate(["app-01"]))
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]
    running = client.failback(ref, wait=False)
    with pytest.raises(
        PreconditionError, match=f"job {running.name} \\(UnplannedFailover\\) is still running"
    ):
        client.commit(ref)
    assert accepted(sim, "failoverCommit") == []
    client.wait_job(running.name)


def test_deadline_leaves_the_job_running_and_a_rerun_awaits_it(simulate):
    sim = simulate(make_estate(["app-01"]))
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]
    with pytest.raises(JobTimeout) as err:
        client.failback(ref, timeout=1)  # one simulated second
    assert err.value.job and "failback of VM app-01" in str(err.value)
    job = client.failback(ref)
    assert (job.name, job.state, job.reused) == (err.value.job, JobStatus.succeeded, True)
    assert len(accepted(sim, "unplannedFailover")) == 1
