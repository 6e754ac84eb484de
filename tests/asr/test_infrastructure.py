"""The vault's VMware infrastructure through the adapter: configuration server checks, master targets and
process servers (names → the ids ASR lists), and the item conditions surfaced in ``ItemState``."""

from __future__ import annotations

import pytest
from asr_helpers import accepted, client_for, make_estate

from drplan.errors import PreconditionError
from drplan.observed import Phase

FABRICS = ("GET", "ReplicationFabrics_List")
PROVIDERS = ("GET", "ReplicationRecoveryServicesProviders_List")


def test_infrastructure_lists_master_targets_and_process_servers_in_one_read(simulate):
    sim = simulate(make_estate(["app-01"]))
    client = client_for(sim)
    sim.reset_counts()

    infra = client.infrastructure()

    assert dict(sim.request_counts) == {FABRICS: 1, PROVIDERS: 1}
    mts = {mt.name: mt for mt in infra.master_targets}
    assert {n: mt.os_type for n, mt in mts.items()} == {"mt-lnx-01": "Linux", "mt-win-01": "Windows"}
    assert mts["mt-lnx-01"].id == sim.engine.mt_id("mt-lnx-01")
    assert mts["mt-lnx-01"].retention_volumes == ("/mnt/retention",)
    assert {p.name: p.id for p in infra.process_servers} == {
        "ps-azure-01": sim.engine.ps_id("ps-azure-01"),
        "cs-01": sim.engine.ps_id("cs-01"),
    }
    assert infra.master_target(sim.engine.mt_id("mt-win-01").upper()).name == "mt-win-01"  # ids: any case
    assert infra.process_server("ps-nope") is None
    (cs,) = infra.configuration_servers
    assert (cs.name, cs.fabric, cs.connected) == ("cs-01", "vmware-fabric", True)


def test_configuration_server_checks_pass_when_connected_and_heard_from(simulate):
    sim = simulate(make_estate(["app-01"]))
    checks = client_for(sim).configuration_server_checks()
    assert [(c.name, c.ok) for c in checks] == [
        ("configuration-server cs-01", True),
        ("configuration-server-heartbeat cs-01", True),
    ]


def test_a_disconnected_configuration_server_fails_both_checks(simulate):
    estate = make_estate(["app-01"])
    estate.configuration_server.connected = False
    sim = simulate(estate)
    sim.clock.advance(3600)  # no heartbeat since before the start
    failed = [c for c in client_for(sim).configuration_server_checks() if not c.ok]
    assert [c.name for c in failed] == ["configuration-server cs-01", "configuration-server-heartbeat cs-01"]
    assert "configuration server cs-01 is not connected to the vault (NotConnected, service Stopped)" in (
        failed[0].message
    )
    assert "minutes ago" in failed[1].message
    assert all(c.rule == "configuration server running and connected" for c in failed)


def test_a_stale_heartbeat_fails_although_the_provider_says_connected(simulate):
    estate = make_estate(["app-01"])
    estate.configuration_server.heartbeat_age = 3600.0
    sim = simulate(estate)
    checks = {c.name: c for c in client_for(sim).configuration_server_checks()}
    assert checks["configuration-server cs-01"].ok
    stale = checks["configuration-server-heartbeat cs-01"]
    assert not stale.ok and "last sent a heartbeat 60 minutes ago" in stale.message


def test_item_state_carries_health_errors_and_os_details(simulate):
    estate = make_estate(["app-01", "db-01"])
    db = estate.vm("db-01")
    db.os, db.os_version, db.machine_type = "windows", "Windows Server 2008 R2 SP1", "physical"
    db.in_configuration_server = False
    sim = simulate(estate)
    client = client_for(sim)
    states = client.item_states(list(client.discover(["app-01", "db-01"]).values()))

    assert states["app-01"].health_errors == () and states["app-01"].discovery_type == "vCenter"
    db_state = states["db-01"]
    assert db_state.health_codes == ("VmNotFoundInConfigurationServer", "UnsupportedPhysicalServer")
    assert "db-01" in db_state.health_errors[0]
    assert (db_state.os_type, db_state.os_version, db_state.discovery_type) == (
        "Windows",
        "Windows Server 2008 R2 SP1",
        "Physical",
    )
    assert db_state.master_target_id == sim.engine.mt_id("mt-lnx-01")


def _sent_reprotect(sim) -> dict:
    """The providerSpecificDetails of the one reprotect request the simulator received."""
    (req,) = [r for r in sim.request_log if r["body"] and "reProtect" in r["route"] + r["path"]]
    return req["body"]["properties"]["providerSpecificDetails"]


def test_reprotect_sends_the_ids_asr_lists_for_the_plans_server_names(simulate):
    sim = simulate(make_estate(["app-01"], phase=Phase.failed_over_to_azure))
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]
    client.reprotect_to_onprem(
        ref,
        master_target_id="mt-lnx-01",
        process_server_id="ps-azure-01",
        retention_drive="/mnt/retention",
        profile_id="policy-failback",
    )
    details = _sent_reprotect(sim)
    assert details["masterTargetId"] == sim.engine.mt_id("mt-lnx-01")
    assert details["processServerId"] == sim.engine.ps_id("ps-azure-01")
    assert len(accepted(sim, "reProtect")) == 1


def test_reprotect_with_an_unknown_server_is_refused_before_any_write(simulate):
    sim = simulate(make_estate(["app-01"], phase=Phase.failed_over_to_azure))
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]
    with pytest.raises(PreconditionError) as err:
        client.reprotect_to_onprem(
            ref,
            master_target_id="mt-lnx-99",
            process_server_id="ps-azure-01",
            retention_drive="/mnt/retention",
            profile_id="policy-failback",
        )
    message = str(err.value)
    assert "reprotect to on-prem of VM app-01 refused: master target 'mt-lnx-99' is not registered" in message
    assert "registered: mt-lnx-01, mt-win-01" in message
    assert err.value.rule == "the master target is registered with the configuration server"
    assert sim.audit.requests() == []


def test_reprotect_to_azure_sends_the_process_server_id(simulate):
    sim = simulate(make_estate(["app-01"], phase=Phase.committed, durations={"agent_registration": 0}))
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]
    client.reprotect_to_azure(ref, process_server_id="cs-01", policy_id="policy-to-azure")
    assert _sent_reprotect(sim)["processServerId"] == sim.engine.ps_id("cs-01")
    assert client.item_state(ref).provider == "InMageAzureV2"
