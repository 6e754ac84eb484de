"""Shared item reads: many threads' fresh reads answered by few requests, never by an older read."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from asr_helpers import client_for, make_estate

from drplan.asr.jobs import JOB_CHECK_EVERY
from drplan.asr.shared_reads import SharedReads
from drplan.clock import REAL_CLOCK
from drplan.errors import NotFoundError
from drplan.observed import ItemRef, ItemState, JobStatus, Phase

LIST = ("GET", "ReplicationProtectedItems_ListByReplicationProtectionContainers")
GET = ("GET", "ReplicationProtectedItems_Get")
VAULT_LIST = ("GET", "ReplicationProtectedItems_List")


def test_thirty_threads_reading_at_once_cost_a_few_listings_not_thirty_gets(simulate):
    names = [f"app-{i:02d}" for i in range(30)]
    sim = simulate(make_estate(names), page_size=10)
    client = client_for(sim, clock=sim.clock)  # a clock whose waits take (scaled) wall time, as in a run
    refs = client.discover(names)
    sim.reset_counts()
    start = threading.Barrier(len(names))

    def read(name: str):
        start.wait()
        return client.item_state(refs[name])

    with ThreadPoolExecutor(len(names)) as pool:
        states = list(pool.map(read, names))
    assert [s.ref.vm for s in states] == names
    assert all(s.protection_state for s in states)
    requests = sim.request_counts[GET] + sim.request_counts[LIST] + sim.request_counts[VAULT_LIST]
    assert requests <= 8, sim.request_counts  # one GET for the first, then pages of 10
    client.close()


def test_one_item_alone_is_one_get(simulate):
    sim = simulate(make_estate(["app-01", "app-02", "app-03"]))
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]
    sim.reset_counts()
    assert client.item_state(ref).ref.vm == "app-01"
    assert sim.request_counts[GET] == 1 and sim.request_counts[LIST] == 0
    client.close()


def test_an_item_gone_from_the_listing_fails_only_its_own_read(simulate):
    names = [f"app-{i:02d}" for i in range(12)]
    sim = simulate(make_estate(names), page_size=5)
    client = client_for(sim)
    refs = client.discover(names)
    gone = ItemRef("app-99", refs["app-00"].fabric, refs["app-00"].container, "no-such-item")
    with pytest.raises(NotFoundError, match="app-99"):
        client.item_states([*refs.values(), gone])
    assert len(client.item_states(list(refs.values()))) == 12
    client.close()


def _state(ref: ItemRef, version: int) -> ItemState:
    return ItemState(ref, ref.vm, f"v{version}", "Normal", (), None, "InMage", None, None)


def _listed(ref: ItemRef, version: int) -> SimpleNamespace:
    """What a listing yields: an SDK item (its ``name`` is the item's), converted only when wanted."""
    return SimpleNamespace(name=ref.item, state=_state(ref, version))


def test_a_read_asked_while_a_listing_runs_is_answered_by_the_next_one():
    """Freshness: the answer to a question never comes from a read that started before it was asked."""
    refs = [ItemRef(f"vm-{i}", "f", "c", f"item-{i}") for i in range(3)]
    version = 0
    in_listing, release = threading.Event(), threading.Event()

    def list_container(fabric, container, operation, vms):
        nonlocal version
        version += 1
        seen = version
        if seen == 1:
            in_listing.set()
            release.wait(5)
        return [_listed(r, seen) for r in refs], 1

    reads = SharedReads(
        get=lambda ref, op: _state(ref, 0),
        list_container=list_container,
        list_vault=lambda op, vms: ([], 1),
        to_state=lambda model: model.state,
        clock=REAL_CLOCK,
        min_gap=0.0,
        gap_per_request=0.0,
    )
    reads.costs.learn_container(("f", "c"), 3, 1)
    first = threading.Thread(target=lambda: reads.states(refs, "read"))
    first.start()
    assert in_listing.wait(5)
    late: dict[str, ItemState] = {}
    second = threading.Thread(target=lambda: late.update(reads.states(refs[:2], "read")))
    second.start()
    release.set()
    first.join(5)
    second.join(5)
    assert {s.protection_state for s in late.values()} == {"v2"}
    assert reads.rounds == 2


def test_rounds_are_spaced_by_their_cost_on_the_clock(simulate):
    names = [f"app-{i:02d}" for i in range(6)]
    sim = simulate(make_estate(names, phase=Phase.reprotected_to_onprem))
    client = client_for(sim)
    refs = client.discover(names)
    before = sim.clock.monotonic()
    client.item_states(list(refs.values()))
    client.item_states(list(refs.values()))
    assert sim.clock.monotonic() - before >= client._reads.min_gap
    client.close()


def test_a_job_is_awaited_on_its_item_without_polling_the_job(simulate):
    """The item names its running job; once it names none and shows the work done, the job succeeded: no
    poll of the job (test_errors: a job that failed is read, for its errors)."""
    sim = simulate(make_estate(["app-01", "app-02"]))
    client = client_for(sim)
    refs = client.discover(["app-01", "app-02"])
    sim.reset_counts()
    started = sim.clock.monotonic()
    job = client.failback(refs["app-01"])
    assert job.state is JobStatus.succeeded and job.name
    waited = sim.clock.monotonic() - started
    # the job itself is read only every JOB_CHECK_EVERY seconds, in case the item lags behind it
    assert sim.request_counts[("GET", "ReplicationJobs_Get")] <= waited // JOB_CHECK_EVERY, sim.request_counts
    assert client.item_state(refs["app-01"]).last_successful_failover_time is not None
    client.close()


def test_a_round_whose_leader_fails_in_its_wait_fails_its_readers_and_not_the_next_round():
    class FailingOnce:
        def __init__(self):
            self.failed = False

        def now(self):
            return REAL_CLOCK.now()

        def monotonic(self):
            return REAL_CLOCK.monotonic()

        def sleep(self, seconds):
            if not self.failed:
                self.failed = True
                raise RuntimeError("interrupted")

    ref = ItemRef("vm-0", "f", "c", "item-0")
    reads = SharedReads(
        get=lambda r, op: _state(r, 7),
        list_container=lambda f, c, op, vms: ([], 1),
        list_vault=lambda op, vms: ([], 1),
        to_state=lambda model: model.state,
        clock=FailingOnce(),
        min_gap=60.0,  # the second read's leader must wait: its wait fails
    )
    assert reads.states([ref], "read")["vm-0"].protection_state == "v7"
    with pytest.raises(RuntimeError, match="interrupted"):
        reads.states([ref], "read")
    reads._next_at = 0.0
    assert reads.states([ref], "read")["vm-0"].protection_state == "v7"
