"""ARM's per-subscription token buckets (``estate.throttling``), through the real SDK client."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest

from drplan.asr.transport import StaticTokenCredential, build_sdk_client
from drplan.sim import start_simulator
from drplan.sim.estate import TokenBucket
from drplan.sim.server import API_VERSION

from .conftest import Asr, small_estate

READS = "x-ms-ratelimit-remaining-subscription-reads"


def _headers(response, deserialized, headers):
    return response.http_response.headers


def _throttled_estate(reads: TokenBucket):
    estate = small_estate()
    estate.throttling.enabled = True
    estate.throttling.reads = reads
    return estate


def test_off_by_default_no_headers_no_429(sim, asr):
    assert not sim.estate.throttling.enabled
    for _ in range(5):
        headers = asr.client.replication_fabrics.get(asr.rg, asr.vault, "vmware-fabric", cls=_headers)
        assert READS not in headers
    assert sim.throttle.throttled == {}


def test_arm_figures_are_the_default():
    t = small_estate().throttling
    assert (t.reads.burst, t.reads.per_second) == (250, 25)
    assert (t.writes.burst, t.writes.per_second) == (200, 10)
    assert (t.deletes.burst, t.deletes.per_second) == (200, 10)


def test_burst_beyond_the_bucket_gets_429_with_retry_after_and_the_arm_envelope():
    # 5 reads, one more every 100 simulated seconds (10 real seconds at speed 10): the 6th is refused
    with start_simulator(_throttled_estate(TokenBucket(burst=5, per_second=0.01)), speed=10) as sim:
        asr = Asr(sim, retry_total=0)
        left = [
            int(asr.client.replication_fabrics.get(asr.rg, asr.vault, "vmware-fabric", cls=_headers)[READS])
            for _ in range(5)
        ]
        assert left == [4, 3, 2, 1, 0]
        with pytest.raises(HttpResponseError) as err:
            asr.client.replication_fabrics.get(asr.rg, asr.vault, "vmware-fabric")
        resp = err.value.response
        assert resp.status_code == 429
        assert 1 <= int(resp.headers["Retry-After"]) <= 100  # whole (simulated) seconds until a token
        assert resp.headers[READS] == "0"
        body = resp.json()["error"]
        assert body["code"] == "SubscriptionRequestsThrottled"
        assert sim.subscription_id in body["message"]
        assert sim.throttle.throttled == {"reads": 1}
        assert sim.request_counts[("GET", "Throttled")] == 1


def test_the_adapters_retry_policy_absorbs_the_429s():
    # 2 reads, one more every 20 simulated seconds (0.2 s at speed 100): 8 reads need retries even when a
    # loaded machine makes each request slow (a 50 ms request refills a quarter of a token)
    with start_simulator(_throttled_estate(TokenBucket(burst=2, per_second=0.05)), speed=100) as sim:
        client = build_sdk_client(
            sim.subscription_id,
            endpoint=sim.endpoint,
            ca_file=sim.ca_file,
            credential=StaticTokenCredential(sim.token),
            clock=sim.clock,
        )
        for _ in range(8):
            fabric = client.replication_fabrics.get(sim.resource_group, sim.vault, "vmware-fabric")
            assert fabric.name == "vmware-fabric"
        assert sim.throttle.throttled["reads"] >= 1
        assert sim.throttle.admitted["reads"] == 8


def test_writes_and_deletes_have_their_own_buckets_and_headers():
    with start_simulator(_throttled_estate(TokenBucket(burst=1, per_second=0.001)), speed=100) as sim:
        asr = Asr(sim, retry_total=0)
        base = (
            f"{sim.endpoint}/subscriptions/{sim.subscription_id}/resourceGroups/{sim.resource_group}"
            f"/providers/Microsoft.RecoveryServices/vaults/{sim.vault}"
        )
        fabric = asr.client.replication_fabrics.get(asr.rg, asr.vault, "vmware-fabric", cls=_headers)
        assert fabric[READS] == "0"
        # reads are spent; a write and a delete (even of something missing) take tokens of their own
        item = f"{base}/replicationFabrics/f/replicationProtectionContainers/c/replicationProtectedItems/nope"
        write = asr.client.send_request(
            HttpRequest("POST", f"{item}/unplannedFailover?api-version={API_VERSION}", json={})
        )
        assert write.status_code == 404
        assert write.headers["x-ms-ratelimit-remaining-subscription-writes"] == "199"
        gone = asr.client.send_request(
            HttpRequest("DELETE", f"{base}/replicationRecoveryPlans/nope?api-version={API_VERSION}")
        )
        assert gone.headers["x-ms-ratelimit-remaining-subscription-deletes"] == "199"
        assert READS not in gone.headers
        assert sim.throttle.admitted == {"reads": 1, "writes": 1, "deletes": 1}
