"""Discovery and reads through the real SDK over HTTPS against the simulated vault."""

from __future__ import annotations

import math

import pytest
from asr_helpers import client_for, make_estate

from drplan.errors import NotFoundError, PreconditionError
from drplan.recovery.points import choose_for_unit
from drplan.sim.estate import PointGenerator

LIST_ITEMS = ("GET", "ReplicationProtectedItems_ListByReplicationProtectionContainers")


def test_discovery_of_200_vms_lists_each_container_once(simulate):
    names = [f"vm-{i:03d}" for i in range(200)]
    sim = simulate(make_estate(names, recovery_points=PointGenerator(retention=7200)), page_size=50)
    client = client_for(sim)
    sim.reset_counts()

    refs = client.discover(names)

    assert sorted(refs) == names
    assert len({r.item for r in refs.values()}) == 200
    counts = sim.request_counts
    assert counts[("GET", "ReplicationFabrics_List")] == 1
    assert counts[("GET", "ReplicationProtectionContainers_ListByReplicationFabrics")] == 1  # one fabric
    # one listing of the one container, paged through nextLink: 200 items / 50 per page
    assert counts[LIST_ITEMS] == math.ceil(200 / 50)
    assert counts[("GET", "ReplicationProtectedItems_Get")] == 0
    assert sum(counts.values()) == 1 + 1 + 4


def test_batched_states_read_one_listing_per_container(simulate):
    names = [f"vm-{i:03d}" for i in range(30)]
    sim = simulate(make_estate(names))
    client = client_for(sim)
    refs = client.discover(names)
    sim.reset_counts()

    states = client.item_states(list(refs.values()))

    assert set(states) == set(names)
    assert all(s.provider == "InMage" and s.protection_state == "Protected" for s in states.values())
    assert dict(sim.request_counts) == {LIST_ITEMS: 1}


def test_unknown_names_are_reported_together_with_close_matches(simulate):
    sim = simulate(make_estate(["app-01", "app-02", "web-01"]))
    client = client_for(sim)
    with pytest.raises(NotFoundError) as err:
        client.discover(["app-01", "ap-01", "WEB-01", "zzz"])
    text = str(err.value)
    assert "VM 'ap-01' is not a protected item" in text and "did you mean 'app-01'" in text
    assert "did you mean 'web-01'" in text
    assert "VM 'zzz' is not a protected item in vault vault-sim" in text
    assert err.value.operation == "discover" and "ap-01" in err.value.vm and "zzz" in err.value.vm


def test_names_found_more_than_once_are_refused(simulate):
    sim = simulate(make_estate(["app-01", "db-01"]))
    sim.estate.vms.append(sim.estate.vm("db-01").model_copy())  # a second protected item named db-01
    client = client_for(sim)
    with pytest.raises(PreconditionError, match="VM 'db-01' matches 2 protected items") as err:
        client.discover(["app-01", "db-01"])
    assert err.value.vm == "db-01"


def test_item_state_and_recovery_points_are_our_value_types(simulate):
    sim = simulate(make_estate(["db-01", "db-02", "app-01"], groups={"sql": ["db-01", "db-02"]}))
    client = client_for(sim)
    refs = client.discover(["db-01", "db-02", "app-01"])

    state = client.item_state(refs["app-01"])
    assert (state.friendly_name, state.provider, state.replication_health) == ("app-01", "InMage", "Normal")
    assert "UnplannedFailover" in state.allowed_operations and state.current_job is None

    points = client.recovery_points_for([refs["db-01"], refs["db-02"]])
    assert all(points["db-01"]) and points["db-01"] == sorted(points["db-01"], key=lambda p: p.time)
    assert any(p.app_consistent and p.multi_vm_sync for p in points["db-01"])
    assert all(p.id.startswith(refs["db-01"].id + "/recoveryPoints/") for p in points["db-01"])
    chosen = choose_for_unit("common-app-consistent", points, now=sim.clock.now(), unit="sql")
    assert chosen["db-01"].point.time == chosen["db-02"].point.time
