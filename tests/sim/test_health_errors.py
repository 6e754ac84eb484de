"""What a client can read before it writes: item health errors and OS details, the configuration server's
state, master targets and process servers with their ids. Every body checked against Microsoft's spec."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.recoveryservicessiterecovery import models as m

from drplan.observed import Phase
from drplan.plan.loader import load_plan
from drplan.sim import Estate, start_simulator

from .conftest import Asr

CONDITIONS = [
    ("migrated", True, "VmMigrated"),
    ("moved_resource_group", True, "VmMovedToAnotherResourceGroup"),
    ("azure_vm_deleted", True, "AzureVmDeleted"),
    ("protection_disabled", True, "ProtectionDisabled"),
    ("in_configuration_server", False, "VmNotFoundInConfigurationServer"),
    ("failback_host", "hyperv", "FailbackToHyperVNotSupported"),
]


@pytest.fixture
def captured(sim):
    bodies: dict[str, list] = {}
    sim.response_hook = lambda method, route, status, body: bodies.setdefault(route, []).append(body)
    return bodies


def _valid(spec, route: str, bodies: list) -> None:
    definition = spec.response_definition(route, 200)
    for body in bodies:
        spec.validate(definition, body)


@pytest.mark.parametrize(("flag", "value", "code"), CONDITIONS)
def test_each_condition_is_an_item_health_error_with_its_own_code(
    sim, asr, captured, spec, flag, value, code
):
    setattr(sim.estate.vm("db-01"), flag, value)
    errors = asr.get("db-01").properties.health_errors
    assert [e.error_code for e in errors] == [code]
    assert "db-01" in errors[0].error_message and errors[0].recommended_action
    assert asr.get("db-02").properties.health_errors == []  # only the flagged VM
    _valid(spec, "ReplicationProtectedItems_Get", captured["ReplicationProtectedItems_Get"])


def test_conditions_add_up_and_the_listing_shows_them_too(sim, asr, captured, spec):
    vm = sim.estate.vm("web-01")
    vm.migrated, vm.in_configuration_server = True, False
    listed = {i.properties.friendly_name: i for i in asr.items()}
    codes = [e.error_code for e in listed["web-01"].properties.health_errors]
    assert codes == ["VmMigrated", "VmNotFoundInConfigurationServer"]
    _valid(spec, "ReplicationProtectedItems_List", captured["ReplicationProtectedItems_List"])


def test_physical_w2008r2_sp1_shows_in_health_errors_and_os_details(sim, asr, captured, spec):
    vm = sim.estate.vm("db-01")
    vm.machine_type, vm.os_version = "physical", "Windows Server 2008 R2 SP1"
    props = asr.get("db-01").properties
    assert [e.error_code for e in props.health_errors] == ["UnsupportedPhysicalServer"]
    details = props.provider_specific_details
    assert isinstance(details, m.InMageReplicationDetails)
    assert (details.discovery_type, details.os_version) == ("Physical", "Windows Server 2008 R2 SP1")
    assert details.os_details.os_type == "Windows"
    assert props.protected_item_type == "PhysicalMachine"
    _valid(spec, "ReplicationProtectedItems_Get", captured["ReplicationProtectedItems_Get"])


def test_a_hyper_v_failback_target_is_refused(sim, asr):
    sim.estate.vm("db-01").failback_host = "hyperv"
    with pytest.raises(HttpResponseError) as err:
        asr.failback("db-01")
    assert err.value.error.code == "FailbackToHyperVNotSupported" and "db-01" in err.value.message
    assert not sim.engine.jobs


def test_fabric_lists_servers_with_arm_ids_names_os_and_the_cs_heartbeat(sim, asr, captured, spec):
    sim.clock.speed = 0.001  # simulated time stands (nearly) still: the heartbeat age is the estate's
    fabric, _, _ = asr.ref("db-01")
    fab = asr.client.replication_fabrics.get(asr.rg, asr.vault, fabric)
    details = fab.properties.custom_details
    prefix = f"{fab.id}/"
    mts = {mt.name: mt for mt in details.master_target_servers}
    assert {n: mt.os_type for n, mt in mts.items()} == {"mt-win-01": "Windows", "mt-lin-01": "Linux"}
    assert all(mt.id.startswith(prefix + "masterTargetServers/") for mt in mts.values())
    pss = {p.friendly_name: p.id for p in details.process_servers}
    assert set(pss) == {"ps-azure-01", "cs-01"}  # the configuration server's own process server too
    assert all(i.startswith(prefix + "processServers/") for i in pss.values())
    age = (sim.clock.now() - details.last_heartbeat).total_seconds()
    assert 60 <= age < 61 and details.cs_service_status == "Running"  # heartbeat_age: 60 s
    item = asr.get("db-01").properties.provider_specific_details
    assert item.master_target_id == mts["mt-win-01"].id and item.process_server_id == pss["ps-azure-01"]
    _valid(spec, "ReplicationFabrics_Get", captured["ReplicationFabrics_Get"])


def test_a_disconnected_configuration_server_shows_as_such(estate, spec):
    estate.configuration_server.connected = False
    with start_simulator(estate, speed=6000) as sim:
        asr = Asr(sim)
        sim.clock.advance(3600)
        (fab,) = asr.client.replication_fabrics.list(asr.rg, asr.vault)
        details = fab.properties.custom_details
        assert details.cs_service_status == "Stopped"
        assert (sim.clock.now() - details.last_heartbeat).total_seconds() > 3600
        (provider,) = asr.client.replication_recovery_services_providers.list(asr.rg, asr.vault)
        assert provider.properties.connection_status == "NotConnected"


def _reprotect(asr: Asr, vm: str, mt: str, ps: str):
    body = m.ReverseReplicationInput(
        properties=m.ReverseReplicationInputProperties(
            failover_direction="RecoveryToPrimary",
            provider_specific_details=m.InMageReprotectInput(
                master_target_id=mt, process_server_id=ps, retention_drive="F:", profile_id="policy-failback"
            ),
        )
    )
    return asr.client.replication_protected_items.begin_reprotect(
        asr.rg, asr.vault, *asr.ref(vm), body
    ).result()


def test_reprotect_takes_server_ids_and_refuses_names(estate):
    estate.vm("db-01").phase = Phase.failed_over_to_azure
    with start_simulator(estate, speed=6000) as sim:
        asr, e = Asr(sim), sim.engine
        with pytest.raises(HttpResponseError) as err:
            _reprotect(asr, "db-01", "mt-win-01", e.ps_id("ps-azure-01"))
        assert err.value.status_code == 400 and err.value.error.code == "MasterTargetNotFound"
        assert "'mt-win-01' is not the id of a master target" in err.value.message
        with pytest.raises(HttpResponseError) as err:
            _reprotect(asr, "db-01", e.mt_id("mt-win-01"), "ps-azure-01")
        assert err.value.error.code == "ProcessServerNotFound" and "db-01" in err.value.message
        assert not sim.engine.jobs
        # ARM ids compare case-insensitively
        done = _reprotect(asr, "db-01", e.mt_id("mt-win-01").upper(), e.ps_id("ps-azure-01"))
        assert done.properties.provider_specific_details.master_target_id == e.mt_id("mt-win-01")


def test_estate_from_plan_has_the_drill_test_network():
    from pathlib import Path

    plan = load_plan(Path(__file__).resolve().parents[2] / "plans" / "three-tier.yaml")
    estate = Estate.from_plan(plan)
    assert plan.drill.test_network in estate.vcenter.port_groups
    assert "VM Network" in estate.vcenter.port_groups
