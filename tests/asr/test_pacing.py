"""The adapter spends ARM's request budget at the rate it refills (``drplan.asr.pacing``): a burst of reads
from several threads past the bucket is paced, not answered 429."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from asr_helpers import SteppingClock, client_for, make_estate

from drplan.asr.pacing import RequestPacing
from drplan.sim.estate import TokenBucket


def _throttled(burst: int, per_second: float):
    estate = make_estate(["app-01"])
    estate.throttling.enabled = True
    estate.throttling.reads = TokenBucket(burst=burst, per_second=per_second)
    return estate


def _read_fabrics(client, n: int, threads: int = 1) -> list[str]:
    sdk = client.sdk

    def one(_):
        return sdk.replication_fabrics.get(client.resource_group, client.vault, "vmware-fabric").name

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(n)))


def test_reads_past_the_burst_are_paced_at_the_refill_rate_without_a_429(simulate):
    # 30 reads of burst, 20 more per simulated second; simulated time moves only by the client's waits
    sim = simulate(_throttled(burst=30, per_second=20), speed=0.001)
    pacing = RequestPacing(clock=SteppingClock(sim.clock), reserve=10, rates={"reads": 20.0})
    client = client_for(sim, pacing=pacing)
    started = sim.clock.monotonic()
    assert _read_fabrics(client, 90) == ["vmware-fabric"] * 90
    assert sim.throttle.throttled == {}  # never refused
    # the first 20 went at once; from 10 tokens left on, each read waited its turn, 1/20 s apart
    assert pacing.waited == 69
    assert 3.4 <= sim.clock.monotonic() - started < 3.6


def test_threads_share_the_pacing_and_are_never_refused(simulate):
    sim = simulate(_throttled(burst=30, per_second=20), speed=1)
    pacing = RequestPacing(clock=sim.clock, reserve=10, rates={"reads": 20.0})
    client = client_for(sim, clock=sim.clock, pacing=pacing)
    assert _read_fabrics(client, 60, threads=4) == ["vmware-fabric"] * 60
    assert sim.throttle.throttled == {}
    assert pacing.waited > 0


def test_without_the_header_nothing_waits(simulate):
    sim = simulate(make_estate(["app-01"]))  # throttling off: ARM's header is not sent
    pacing = RequestPacing(clock=sim.clock, reserve=10)
    client = client_for(sim, clock=sim.clock, pacing=pacing)
    assert _read_fabrics(client, 20) == ["vmware-fabric"] * 20
    assert pacing.waited == 0


def test_one_pacing_for_both_clients_of_a_vault(simulate):
    sim = simulate(make_estate(["app-01"]))
    client = client_for(sim)
    assert client.sdk._config.custom_hook_policy is client.pacing
    assert client._compute()._config.custom_hook_policy is client.pacing


def test_a_read_waits_out_more_429s_than_the_retry_budget_of_other_errors(simulate):
    # ten threads after one token every 20 simulated seconds (0.2 s of wall time): the last read is
    # refused some nine times, each time told to come back later; every read gets its answer
    sim = simulate(_throttled(burst=1, per_second=0.05), speed=100)
    client = client_for(sim, clock=sim.clock, retry_total=6)
    assert _read_fabrics(client, 10, threads=10) == ["vmware-fabric"] * 10
    assert sim.throttle.admitted["reads"] == 10 and sim.throttle.throttled["reads"] > 20
