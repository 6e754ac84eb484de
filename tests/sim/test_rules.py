"""The failback doc's rules, each shown as the error a user sees through the SDK."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError

from drplan.observed import Phase
from drplan.sim import start_simulator
from drplan.sim.estate import ExplicitPoint, Settings

from .conftest import Asr, small_estate


def _error(fn, *args, **kw) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as err:
        fn(*args, **kw)
    return err.value


def test_failback_without_finished_reprotect_is_refused(estate):
    estate.vm("web-01").phase = Phase.failed_over_to_azure
    with start_simulator(estate, speed=6000) as sim:
        asr = Asr(sim)
        err = _error(asr.failback, "web-01")
        assert err.status_code == 400 and err.error.code == "OperationNotAllowed"
        assert "web-01" in err.message and "not reprotected" in err.message
        assert sim.audit.requests("unplannedFailover", outcome="refused")[0]["vm"] == "web-01"
        assert not sim.engine.jobs  # refused before any job was created


def test_failback_while_reprotect_still_running_is_refused(estate):
    estate.vm("web-01").phase = Phase.failed_over_to_azure
    with start_simulator(estate, speed=60) as sim:  # the 900 s reprotect takes 15 real seconds
        asr = Asr(sim)
        asr.client.replication_protected_items.begin_reprotect(
            asr.rg, asr.vault, *asr.ref("web-01"), _reprotect_body(sim, "mt-lin-01"), polling=False
        )
        assert asr.get("web-01").properties.current_scenario.scenario_name == "ReverseReplication"
        err = _error(asr.failback, "web-01")
        assert err.status_code == 409 and err.error.code == "OperationInProgress"
        assert "Reprotect" in err.message and "web-01" in err.message


def _reprotect_body(sim, mt):
    from azure.mgmt.recoveryservicessiterecovery import models as m

    e = sim.engine
    return m.ReverseReplicationInput(
        properties=m.ReverseReplicationInputProperties(
            failover_direction="RecoveryToPrimary",
            provider_specific_details=m.InMageReprotectInput(
                master_target_id=e.mt_id(mt),
                process_server_id=e.ps_id("ps-azure-01"),
                retention_drive="F:",
                profile_id=f"{e.vault_id}/replicationPolicies/policy-failback",
            ),
        )
    )


@pytest.mark.parametrize(
    ("flag", "code", "words"),
    [
        ("migrated", "VmMigrated", "migrated"),
        ("moved_resource_group", "VmMovedToAnotherResourceGroup", "moved to another resource group"),
        ("azure_vm_deleted", "AzureVmDeleted", "was deleted"),
        ("protection_disabled", "ProtectionDisabled", "protection is disabled"),
    ],
)
def test_migrated_moved_deleted_or_unprotected_vms_cannot_fail_back(sim, asr, flag, code, words):
    setattr(sim.estate.vm("db-01"), flag, True)
    err = _error(asr.failback, "db-01")
    assert err.error.code == code
    assert words in err.message and "db-01" in err.message
    assert sim.estate.vm("db-01").phase == Phase.reprotected_to_onprem


def test_physical_windows_2008_r2_sp1_cannot_fail_back(sim, asr):
    vm = sim.estate.vm("db-01")
    vm.machine_type, vm.os_version = "physical", "Windows Server 2008 R2 SP1"
    err = _error(asr.failback, "db-01")
    assert err.error.code == "UnsupportedPhysicalServer"
    assert "2008 R2 SP1" in err.message
    vm.machine_type = "vmware"  # the same OS as a VMware VM is fine
    assert asr.failback("db-01").properties.active_location == "Recovery"


def test_disconnected_vcenter_fails_the_job_at_disk_detach_attach(sim, asr):
    sim.onprem.set_connected(False)
    err = _error(asr.failback, "web-01")
    assert err.error.code == "VCenterNotConnected" and "web-01" in err.message
    job = next(iter(sim.engine.jobs.values()))
    tasks = asr.job(job.name).properties.tasks
    assert [(t.name, t.state) for t in tasks] == [
        ("PreFailoverCheck", "Succeeded"),
        ("ShutdownAzureVm", "Succeeded"),
        ("DetachAttachDisks", "Failed"),
        ("StartOnPremVm", "Skipped"),
    ]
    assert tasks[2].errors[0].service_error_details.code == "VCenterNotConnected"
    assert asr.job(job.name).properties.state == "Failed"
    assert sim.estate.vm("web-01").phase == Phase.reprotected_to_onprem  # back where it was
    assert sim.engine.azure_vm("web-01") == "running"
    assert sim.audit[-1]["event"] == "job" and sim.audit[-1]["outcome"] == "failed"


def test_disconnected_configuration_server_fails_failback_and_reprotect(estate):
    estate.configuration_server.connected = False
    estate.vm("web-01").phase = Phase.failed_over_to_azure
    with start_simulator(estate, speed=6000) as sim:
        asr = Asr(sim)
        assert (
            asr.client.replication_recovery_services_providers.list(asr.rg, asr.vault)
            .next()
            .properties.connection_status
            == "NotConnected"
        )
        err = _error(asr.failback, "db-01")
        assert err.error.code == "ConfigurationServerNotConnected" and "db-01" in err.message
        err = _error(asr.reprotect_to_onprem, "web-01", "mt-lin-01")
        assert err.error.code == "ConfigurationServerNotConnected" and "web-01" in err.message


def test_vm_missing_from_configuration_server_fails(sim, asr):
    sim.estate.vm("db-02").in_configuration_server = False
    err = _error(asr.failback, "db-02")
    assert err.error.code == "VmNotFoundInConfigurationServer"
    assert "db-02" in err.message and "not registered with the configuration server" in err.message


def test_master_target_snapshots_fail_reprotect(estate):
    estate.vm("db-01").phase = Phase.failed_over_to_azure
    with start_simulator(estate, speed=6000) as sim:
        asr = Asr(sim)
        sim.onprem.add_snapshot("mt-win-01")
        assert sim.onprem.read_state(["mt-win-01"]).vms["mt-win-01"].has_snapshots
        err = _error(asr.reprotect_to_onprem, "db-01", "mt-win-01")
        assert err.error.code == "MasterTargetHasSnapshots"
        assert "mt-win-01" in err.message and "db-01" in err.message
        sim.onprem.remove_snapshots("mt-win-01")
        assert asr.reprotect_to_onprem("db-01", "mt-win-01").properties.protection_state == "Protected"


def test_reprotect_needs_a_master_target_of_the_vms_os(estate):
    estate.vm("db-01").phase = Phase.failed_over_to_azure
    with start_simulator(estate, speed=6000) as sim:
        err = _error(Asr(sim).reprotect_to_onprem, "db-01", "mt-lin-01")
        assert err.error.code == "MasterTargetOsMismatch" and "windows" in err.message


def test_vm_without_recovery_point_cannot_fail_back(estate):
    estate.vm("web-01").recovery_points = []
    estate.vm("db-01").recovery_points = [ExplicitPoint(ago=600, kind="crash")]
    with start_simulator(estate, speed=6000) as sim:
        asr = Asr(sim)
        assert asr.points("web-01") == []
        err = _error(asr.failback, "web-01")
        assert err.error.code == "NoRecoveryPoint"
        assert "at least one recovery point" in err.message and "web-01" in err.message
        err = _error(asr.failback, "db-01", "LatestTag")  # only a crash-consistent point exists
        assert err.error.code == "NoRecoveryPoint" and "app-consistent" in err.message
        assert asr.failback("db-01", "LatestTime").properties.active_location == "Recovery"


def test_reprotect_to_azure_fails_with_agent_not_installed_until_registered(sim, asr):
    sim.estate.durations.agent_registration = 86400  # far beyond the wall-clock drift of this test at 6000x
    asr.failback("web-01")
    asr.commit("web-01")
    err = _error(asr.reprotect_to_azure, "web-01")
    assert err.error.code == "AgentNotInstalled"
    assert "agent isn't installed" in err.message and "web-01" in err.message
    sim.clock.advance(sim.estate.durations.agent_registration)
    assert (
        asr.reprotect_to_azure("web-01").properties.provider_specific_details.instance_type == "InMageAzureV2"
    )
    failed = [r for r in sim.audit if r.get("event") == "job" and r.get("outcome") == "failed"]
    assert [r["code"] for r in failed] == ["AgentNotInstalled"]


def test_group_member_single_item_failover_refused_when_enforced():
    with start_simulator(small_estate(settings=Settings(enforce_group_failover=True)), speed=6000) as sim:
        asr = Asr(sim)
        err = _error(asr.failback, "db-01")
        assert err.error.code == "ReplicationGroupFailoverRequired"
        assert "'db'" in err.message and "recovery plan" in err.message
        assert asr.failback("web-01").properties.active_location == "Recovery"  # standalone VMs are fine


def test_custom_point_must_exist(sim, asr):
    bad = asr.get("web-01").id + "/recoveryPoints/00000000-0000-0000-0000-000000000000"
    err = _error(asr.failback, "web-01", "Custom", bad)
    assert err.error.code == "RecoveryPointNotFound"


def test_commit_before_failback_is_refused(sim, asr):
    err = _error(asr.commit, "web-01")
    assert err.error.code == "OperationNotAllowed" and "no failover to commit" in err.message
