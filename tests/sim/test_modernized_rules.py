"""Each rule and fault of the modernized stack: the error code and message a client reads through the SDK."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.recoveryservicessiterecovery import models as m

from drplan.sim import start_simulator
from drplan.sim.estate import OperationFault, Vm
from drplan.sim.rcm_transitions import link_local_ip

from .conftest import Rcm, compute_client, modern_estate


def _error(fn, *args, **kw) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as err:
        fn(*args, **kw)
    return err.value


def test_planned_failover_before_the_reprotect_is_outside_allowed_operations(rcm):
    err = _error(rcm.planned_failback, "web-01")
    assert err.status_code == 400 and err.error.code == "OperationNotAllowed"
    assert "web-01" in err.message and "not reprotected to on-premises" in err.message
    assert "allowed operations: ReverseReplicate, DisableProtection" in err.message
    assert not rcm.sim.engine.jobs


@pytest.mark.parametrize("operation", ["unplannedFailover", "testFailover", "applyRecoveryPoint"])
def test_operations_that_do_not_exist_for_inmagercmfailback_are_refused(rcm, operation):
    rcm.reprotect_back("web-01")
    c, ref = rcm.client.replication_protected_items, (rcm.rg, rcm.vault, *rcm.ref("web-01"))
    calls = {
        "unplannedFailover": lambda: c.begin_unplanned_failover(
            *ref,
            m.UnplannedFailoverInput(
                properties=m.UnplannedFailoverInputProperties(
                    failover_direction="RecoveryToPrimary",
                    source_site_operations="NotRequired",
                    provider_specific_details=m.InMageRcmUnplannedFailoverInput(perform_shutdown="true"),
                )
            ),
        ).result(),
        "testFailover": lambda: rcm.drill("web-01"),
        "applyRecoveryPoint": lambda: rcm.apply_point("web-01", "any"),
    }
    err = _error(calls[operation])
    assert err.status_code == 400 and err.error.code == "OperationNotSupported"
    assert "does not exist for replication provider InMageRcmFailback" in err.message
    assert "web-01" in err.message and "planned failover" in err.message


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"connected": False}, "ApplianceNotConnected", "appliance appliance-01 is not connected"),
        ({"health": "Critical"}, "ApplianceNotHealthy", "appliance appliance-01 health is Critical"),
    ],
)
def test_reprotect_needs_a_healthy_connected_appliance(rcm, change, code, words):
    for k, v in change.items():
        setattr(rcm.sim.estate.appliance("appliance-01"), k, v)
    err = _error(rcm.reprotect_back, "web-01")
    assert err.error.code == code and words in err.message and "web-01" in err.message
    health = rcm.client.replication_fabrics.get(
        rcm.rg, rcm.vault, "rcm-fabric"
    ).properties.health_error_details
    assert code in {h.error_code for h in health}


def test_an_appliance_holds_at_most_60_disks():
    est = modern_estate()
    est.vms.append(Vm(name="big-01", provider="modernized", appliance="appliance-02", disks=59))
    with start_simulator(est, speed=6000) as sim:
        rcm = Rcm(sim)
        err = _error(rcm.reprotect_back, "db-01", "appliance-02")  # 1 + 59 in use, db-01 brings 2
        assert err.error.code == "ApplianceDiskLimitExceeded"
        assert "appliance-02 replicates 60 of its 60 disks" in err.message and "db-01" in err.message
        fabric = rcm.client.replication_fabrics.get(rcm.rg, rcm.vault, "rcm-fabric").properties
        assert "ApplianceDiskLimitReached" in {h.error_code for h in fabric.health_error_details}
        assert rcm.reprotect_back("db-01", "appliance-01").properties.protection_state == "Protected"


def test_the_datastore_must_be_reachable_from_the_appliance(rcm):
    err = _error(rcm.reprotect_back, "web-01", "appliance-02", "datastore2")
    assert err.error.code == "DatastoreNotAccessible"
    assert "datastore 'datastore2' is not reachable from appliance appliance-02" in err.message


def test_agent_not_registered_after_failover_refuses_the_reprotect(rcm):
    rcm.sim.estate.vm("web-01").agent_registered_after_failover = False
    item = rcm.get("web-01").properties
    assert item.provider_specific_details.is_agent_registration_successful_after_failover is False
    assert "AgentNotRegisteredAfterFailover" in {h.error_code for h in item.health_errors}
    err = _error(rcm.reprotect_back, "web-01")
    assert err.error.code == "AgentNotRegisteredAfterFailover"
    assert "did not register after the failover" in err.message


def test_a_stale_agent_heartbeat_refuses_the_reprotect(rcm):
    rcm.sim.estate.vm("web-01").agent_heartbeat_age = 3600
    err = _error(rcm.reprotect_back, "web-01")
    assert err.error.code == "MobilityAgentHeartbeatStale"
    assert "has not sent a heartbeat for more than 15 minutes" in err.message


@pytest.mark.parametrize(
    ("kw", "code", "words"),
    [
        ({"appliance": "nope"}, "ReprotectAgentNotFound", "reprotectAgentId"),
        (
            {"log_storage": "/subscriptions/x/storageAccounts/other"},
            "LogStorageAccountNotFound",
            "log storage",
        ),
        ({"direction": "PrimaryToRecovery"}, "InvalidFailoverDirection", "must be RecoveryToPrimary"),
    ],
)
def test_reprotect_input_must_name_what_the_vault_lists(rcm, kw, code, words):
    if kw.get("appliance") == "nope":
        rcm.sim.estate.appliances[0].name = "appliance-01"  # ids of unknown appliances are unknown ids
    err = _error(rcm.reprotect_back, "web-01", **kw)
    assert err.error.code == code and words in err.message


def test_classic_input_on_a_modernized_item_is_refused(rcm):
    body = m.ReverseReplicationInput(
        properties=m.ReverseReplicationInputProperties(
            failover_direction="RecoveryToPrimary",
            provider_specific_details=m.InMageAzureV2ReprotectInput(),
        )
    )
    err = _error(
        lambda: rcm.client.replication_protected_items.begin_reprotect(
            rcm.rg, rcm.vault, *rcm.ref("web-01"), body
        ).result()
    )
    assert err.error.code == "InvalidProviderInput" and "'InMageRcm'" in err.message


def test_reprotect_to_azure_checks_process_server_policy_and_agent_registration(rcm):
    rcm.sim.estate.durations.agent_registration = 86400  # the on-prem VM's agent registers late
    rcm.reprotect_back("web-01")
    rcm.planned_failback("web-01")
    rcm.commit("web-01")
    err = _error(rcm.reprotect_forward, "web-01", policy=rcm.sim.engine.policy_id("rcm-failback-policy"))
    assert err.error.code == "PolicyNotFound" and "not an InMageRcm replication policy" in err.message
    err = _error(rcm.reprotect_forward, "web-01", "appliance-03")
    assert err.error.code == "ProcessServerNotFound"
    err = _error(rcm.reprotect_forward, "web-01")  # the on-prem VM's agent has not registered yet
    assert err.error.code == "AgentNotInstalled"
    assert "hasn't registered with the appliance yet" in err.message
    job = rcm.client.replication_jobs.list(rcm.rg, rcm.vault, filter="jobStatus eq 'Failed'")
    assert [t.state for t in next(iter(job)).properties.tasks] == ["Failed", "Skipped"]


def test_app_consistent_failback_needs_an_app_consistent_point():
    est = modern_estate()
    est.vm("web-01").recovery_points = []
    est.vm("web-01").phase = "reprotected-to-onprem"
    with start_simulator(est, speed=6000) as sim:
        err = _error(Rcm(sim).planned_failback, "web-01", "ApplicationConsistent")
        assert err.error.code == "NoRecoveryPoint" and "use CrashConsistent" in err.message


def test_original_vm_deleted_fails_back_to_a_new_vm_with_full_replication():
    est = modern_estate()
    est.vm("web-01").onprem_vm_deleted = True
    with start_simulator(est, speed=1) as sim:
        rcm, d = Rcm(sim), sim.estate.durations
        assert not sim.onprem.read_state(["WEB01"]).vms["WEB01"].present
        rcm.reprotect_back("web-01", polling=False)
        sim.clock.advance(d.reprotect)  # the original-location duration is not enough
        details = rcm.get("web-01").properties.provider_specific_details
        assert 0 < details.initial_replication_progress_percentage < 100
        assert details.resync_progress_percentage is None
        new = sim.onprem.read_state(["WEB01"]).vms["WEB01"]
        assert new.present and new.power_state == "poweredOff"
        sim.clock.advance(d.reprotect_alternate)
        item = rcm.get("web-01").properties
        assert item.provider_specific_details.initial_replication_progress_percentage == 100
        job = next(iter(rcm.client.replication_jobs.list(rcm.rg, rcm.vault)))
        assert [t.name for t in job.properties.tasks] == [
            "PreReprotectCheck",
            "CreateOnPremVm",
            "StartReplication",
            "InitialReplication",
        ]
        assert (job.properties.end_time - job.properties.start_time).total_seconds() == d.reprotect_alternate


def test_a_failed_planned_failover_cancels_itself_and_can_be_retried():
    est = modern_estate()
    est.vm("web-01").phase = "reprotected-to-onprem"
    with start_simulator(est, speed=1) as sim:  # time moves only when the test advances it
        rcm, d = Rcm(sim), sim.estate.durations
        rcm.planned_failback("web-01", polling=False)
        sim.clock.advance(d.failback * 0.7)  # the Azure VM is shut down, the point made
        assert sim.engine.azure_vm("web-01") == "stopped"
        sim.estate.vcenter.connected = False  # lost before the on-prem VM is started
        sim.clock.advance(d.failback)
        job = next(iter(rcm.client.replication_jobs.list(rcm.rg, rcm.vault))).properties
        assert job.state == "Failed"
        assert job.errors[0].service_error_details.code == "VCenterNotConnected"
        assert "web-01" in job.errors[0].service_error_details.message
        assert [(t.name, t.state) for t in job.tasks][-2:] == [
            ("PowerOnOnPremVm", "Failed"),
            ("RollbackFailover", "Succeeded"),
        ]
        item = rcm.get("web-01").properties
        assert item.protection_state == "Protected"
        assert item.allowed_operations == ["PlannedFailover", "DisableProtection"]
        assert item.provider_specific_details.last_planned_failover_status == "Failed"
        assert sim.engine.azure_vm("web-01") == "running"
        sim.estate.vcenter.connected = True
        rcm.planned_failback("web-01", polling=False)
        sim.clock.advance(d.failback)
        assert rcm.get("web-01").properties.protection_state == "PlannedFailoverCommitRequired"


def test_appliance_lost_during_the_failback_fails_the_job_at_its_prerequisites(rcm):
    rcm.reprotect_back("web-01")
    rcm.sim.estate.appliance("appliance-01").connected = False
    err = _error(rcm.planned_failback, "web-01")
    assert err.error.code == "ApplianceNotConnected" and "appliance-01" in err.message
    assert rcm.get("web-01").properties.provider_specific_details.last_planned_failover_status == "Failed"


def test_static_ip_is_not_kept_until_a_hook_sets_it():
    est = modern_estate()
    est.vm("web-01").phase = "reprotected-to-onprem"
    with start_simulator(est, speed=6000) as sim:
        Rcm(sim).planned_failback("web-01")
        site = sim.onprem
        state = site.wait_for_boot("WEB01", timeout=600)
        assert state.guest_ip == link_local_ip("web-01") != "10.20.0.21"
        site.set_guest_ip("WEB01", "10.20.0.21")  # what a post-failback hook (or the guest) does
        assert site.read_state(["WEB01"]).vms["WEB01"].guest_ip == "10.20.0.21"


def test_injected_faults_apply_to_the_new_operations():
    est = modern_estate()
    est.vm("web-01").phase = "reprotected-to-onprem"
    est.faults.operations = [
        OperationFault(
            operation="plannedFailover", vm="web-01", mode="once", code="DiskCopyFailed", message="boom"
        ),
        OperationFault(
            operation="reProtect", mode="always", stage="request", status=409, code="Busy", message="busy"
        ),
    ]
    with start_simulator(est, speed=6000) as sim:
        rcm = Rcm(sim, retry_total=0)
        err = _error(rcm.planned_failback, "web-01")
        assert (
            err.error.code == "DiskCopyFailed"
            and "Planned failover of VM 'web-01' failed: boom" in err.message
        )
        assert rcm.get("web-01").properties.provider_specific_details.last_planned_failover_status == "Failed"
        assert rcm.planned_failback("web-01").properties.protection_state == "PlannedFailoverCommitRequired"
        err = _error(rcm.reprotect_back, "db-01")
        assert (
            err.status_code == 409
            and err.error.code == "Busy"
            and "Reprotect of VM 'db-01': busy" in err.message
        )
        sim.estate.faults.rate_503 = 1.0
        err = _error(compute_client(sim, retry_total=0).virtual_machines.get, rcm.rg, "web-01")
        assert err.status_code == 503 and err.error.code == "ServiceUnavailable"
        err = _error(rcm.get, "app-01")
        assert err.status_code == 503
