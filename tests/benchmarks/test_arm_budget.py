"""The benchmark's request accounting: ARM requests by kind, 429s apart, the request-budget bound, and the
units a run lost to throttling (no flow run: these are the pure functions the harness applies)."""

from __future__ import annotations

from benchmarks.orchestrate import failed_in_message, failed_units
from benchmarks.run import budget_bound, classify


def test_classify_counts_429s_and_the_simulators_own_routes_apart():
    counts = {
        ("GET", "ReplicationProtectedItems_Get"): 700,
        ("GET", "ReplicationJobs_Get"): 300,
        ("POST", "ReplicationProtectedItems_UnplannedFailover"): 100,
        ("DELETE", "ReplicationRecoveryPlans_Delete"): 5,
        ("GET", "Throttled"): 40,
        ("POST", "Throttled"): 2,
        ("GET", "DrplanSim"): 999,
    }
    arm = classify(counts)
    assert (arm["reads"], arm["writes"], arm["deletes"], arm["polls"]) == (1000, 105, 5, 300)
    assert arm["requests"] == 1105
    assert (arm["throttled_429"], arm["throttled_reads"], arm["throttled_writes"]) == (42, 40, 2)
    assert arm["sim_remote"] == 999


def test_budget_bound_is_what_each_bucket_needs_beyond_its_burst():
    # 7,000 reads: (7,000 - 250) / 25 = 270 s; 3,000 writes: (3,000 - 200) / 10 = 280 s; no deletes
    b = budget_bound({"reads": 7000, "writes": 3000, "deletes": 0})
    assert b == {"reads_s": 270.0, "writes_s": 280.0, "deletes_s": 0.0, "budget_s": 280.0}
    # within the bursts the budget costs nothing
    assert budget_bound({"reads": 250, "writes": 200, "deletes": 0})["budget_s"] == 0.0


def test_units_failed_by_throttling_are_told_from_other_failures():
    rows = [
        {"unit": "a", "status": "reprotected"},
        {"unit": "b", "status": "failed (failback)", "note": "(429) SubscriptionRequestsThrottled: ..."},
        {"unit": "c", "status": "failed (commit)", "note": "job failed: SimulatedFailure"},
        {"unit": "d", "status": "failed-back"},
    ]
    assert failed_units(rows) == (["b", "c"], ["b"])


def test_a_run_that_raised_is_counted_from_its_message():
    """A failed flow returns no report rows: its RunFailed message names the failed units (seen at 1,000 VMs:
    the table said 0 failed for a run that failed two units on a 429)."""
    message = (
        "failback of plan synth did not complete: 2 failed, 1 skipped\n"
        "  failed  rg-0033: read item states of VM vm-0158 hit a transient ASR error (HTTP 429): throttled\n"
        "  failed  vm-0001: failback of VM vm-0001 refused: protection is disabled\n"
        "  skipped vm-0002: dependency vm-0001 failed"
    )
    assert failed_in_message(message) == (["rg-0033", "vm-0001"], ["rg-0033"])
