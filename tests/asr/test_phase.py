"""phase_of reads every step of the lifecycle from what ASR (the simulator) shows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from asr_helpers import client_for, make_estate

from drplan.observed import ItemRef, ItemState, Phase
from drplan.recovery.phase import phase_of

LIFECYCLE = [p for p in Phase if p is not Phase.unknown and p is not Phase.failback_in_progress]


def test_phase_of_every_lifecycle_step_as_served(simulate):
    estate = make_estate([p.value for p in LIFECYCLE])
    for vm in estate.vms:
        vm.phase = Phase(vm.name)
    sim = simulate(estate)
    client = client_for(sim)
    refs = client.discover([p.value for p in LIFECYCLE])
    states = client.item_states(list(refs.values()))
    assert {vm: phase_of(s) for vm, s in states.items()} == {p.value: p for p in LIFECYCLE}


def test_phase_of_a_running_failback(simulate):
    sim = simulate(make_estate(["app-01"]))
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]
    job = client.failback(ref, wait=False)
    state = client.item_state(ref)
    assert phase_of(state) is Phase.failback_in_progress
    assert (state.current_job, state.current_scenario) == (job.name, "UnplannedFailover")


BASE = ItemState(
    ref=ItemRef("vm", "f", "c", "i"),
    friendly_name="vm",
    protection_state="Protected",
    replication_health="Normal",
    allowed_operations=(),
    active_location="Primary",
    provider="InMageAzureV2",
    current_job=None,
    current_scenario=None,
)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, Phase.replicating_to_azure),
        ({"last_successful_failover_time": datetime(2025, 1, 1, tzinfo=UTC)}, Phase.reprotected_to_azure),
        (
            {
                "protection_state": "UnplannedFailoverCommitPendingStatesBegin",
                "active_location": "Recovery",
                "allowed_operations": ("Commit", "ChangePit"),
            },
            Phase.failed_over_to_azure,
        ),
        ({"provider": "InMage"}, Phase.reprotected_to_onprem),
        (
            {
                "provider": "InMage",
                "protection_state": "Protected",
                "current_job": "j1",
                "current_scenario": "UnplannedFailover",
            },
            Phase.failback_in_progress,
        ),
        ({"provider": "InMage", "protection_state": "UnplannedFailoverCommitted"}, Phase.committed),
        ({"provider": "HyperVReplicaAzure"}, Phase.unknown),
        ({"provider": "InMage", "protection_state": "Unprotected"}, Phase.unknown),
    ],
)
def test_phase_of_from_item_fields(changes, expected):
    assert phase_of(replace(BASE, **changes)) is expected
