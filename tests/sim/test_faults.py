"""Fault injection produces the configured responses."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError

from drplan.sim import start_simulator
from drplan.sim.estate import OperationFault

from .conftest import Asr, small_estate


@pytest.mark.parametrize(("field", "status"), [("rate_429", 429), ("rate_500", 500), ("rate_503", 503)])
def test_transient_rate_one_always_answers_that_status(sim, field, status):
    setattr(sim.faults, field, 1.0)
    asr = Asr(sim, retry_total=0)
    with pytest.raises(HttpResponseError) as err:
        asr.items()
    assert err.value.status_code == status
    if status in (429, 503):
        assert err.value.response.headers["Retry-After"] == str(sim.faults.retry_after)


def test_sdk_retries_through_transient_faults_and_mutations_are_not_applied_twice():
    estate = small_estate()
    estate.faults.rate_503 = 0.3
    estate.faults.retry_after = 0
    estate.faults.seed = 7
    with start_simulator(estate, speed=6000) as sim:
        asr = Asr(sim, retry_backoff_factor=0.01, retry_total=10)
        assert len(asr.items()) == 3
        asr.failback("web-01")
        outcomes = [r["outcome"] for r in sim.audit.requests("unplannedFailover")]
        assert outcomes.count("accepted") == 1  # a faulted POST never started a job
        assert len([j for j in sim.engine.jobs.values() if j.op == "unplannedFailover"]) == 1


def test_fault_sequence_is_reproducible_from_the_seed():
    def statuses(seed):
        estate = small_estate()
        estate.faults.seed, estate.faults.rate_429, estate.faults.rate_500 = seed, 0.3, 0.3
        with start_simulator(estate, speed=6000) as sim:
            asr = Asr(sim, retry_total=0)
            out = []
            for _ in range(12):
                try:
                    asr.client.replication_fabrics.list(asr.rg, asr.vault).next()
                    out.append(200)
                except HttpResponseError as exc:
                    out.append(exc.status_code)
            return out

    first = statuses(3)
    assert first == statuses(3)
    assert {429, 500, 200} <= set(first)


def test_operation_fault_once_then_succeeds(sim, asr):
    sim.faults.operations.append(
        OperationFault(
            operation="unplannedFailover",
            vm="web-01",
            mode="once",
            code="FailoverFailed",
            message="disk copy failed",
        )
    )
    with pytest.raises(HttpResponseError) as err:
        asr.failback("web-01")
    assert err.value.error.code == "FailoverFailed" and "web-01" in err.value.message
    assert asr.failback("web-01").properties.active_location == "Recovery"


def test_operation_fault_always_and_at_request(sim, asr):
    sim.faults.operations.append(
        OperationFault(
            operation="failoverCommit",
            mode="always",
            stage="request",
            status=409,
            code="Conflict",
            message="busy",
        )
    )
    asr.failback("web-01")
    for _ in range(2):
        with pytest.raises(HttpResponseError) as err:
            asr.commit("web-01")
        assert err.value.status_code == 409 and err.value.error.code == "Conflict"
    assert [r["outcome"] for r in sim.audit.requests("failoverCommit")] == ["refused", "refused"]


def test_added_latency_delays_every_response(sim, asr):
    import time

    sim.faults.latency = 0.2
    t0 = time.monotonic()
    asr.client.replication_fabrics.list(asr.rg, asr.vault).next()
    assert time.monotonic() - t0 >= 0.2  # a lower bound: the injected delay happened
