"""ARM/ASR errors mapped onto drplan.errors, one injected fault at a time; messages name VM and operation."""

from __future__ import annotations

import pytest
from asr_helpers import accepted, client_for, make_estate

from drplan.asr import AsrClient, StaticTokenCredential
from drplan.asr.transport import THROTTLE_RETRIES
from drplan.errors import (
    AgentNotInstalledError,
    AsrError,
    NotFoundError,
    PermissionError_,
    PreconditionError,
    TransientError,
)
from drplan.observed import JobStatus, Phase
from drplan.plan.schema import AzureTarget
from drplan.recovery.phase import phase_of
from drplan.sim.estate import ExplicitPoint, OperationFault

POST_FAILBACK = ("POST", "ReplicationProtectedItems_UnplannedFailover")
GET_ITEM = ("GET", "ReplicationProtectedItems_Get")


def test_401_is_a_permission_error_and_never_retried(simulate):
    sim = simulate(make_estate(["app-01"]))
    ref = client_for(sim).discover(["app-01"])["app-01"]
    statuses = []
    client = client_for(  # an empty bearer token: 401
        sim,
        credential=StaticTokenCredential(""),
        raw_response_hook=lambda r: statuses.append(r.http_response.status_code),
    )
    with pytest.raises(PermissionError_) as err:
        client.item_state(ref)
    assert "read item state of VM app-01" in str(err.value) and "does not retry" in str(err.value)
    assert statuses == [401]


def test_403_on_a_write_is_a_permission_error(simulate):
    sim = simulate(make_estate(["app-01"]))
    sim.estate.faults.operations.append(
        OperationFault(
            operation="unplannedFailover",
            stage="request",
            status=403,
            mode="always",
            code="AuthorizationFailed",
            message="the client has no authorization to perform action unplannedFailover",
        )
    )
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]
    with pytest.raises(PermissionError_, match="failback of VM app-01 was refused: not authorised") as err:
        client.failback(ref)
    assert err.value.code == "AuthorizationFailed"
    assert sim.request_counts[POST_FAILBACK] == 1 and accepted(sim) == []


def test_404_wrong_vault_is_not_found(simulate):
    sim = simulate(make_estate(["app-01"]))
    azure = AzureTarget(
        subscription_id=sim.subscription_id, resource_group=sim.resource_group, vault="no-such"
    )
    client = AsrClient.for_vault(
        azure,
        endpoint=sim.endpoint,
        ca_file=sim.ca_file,
        credential=StaticTokenCredential(sim.token),
        clock=sim.clock,
    )
    with pytest.raises(NotFoundError, match=r"discover \(list fabrics\) of VM app-01 failed: not found"):
        client.discover(["app-01"])


def test_429_is_retried_honouring_retry_after_on_its_own_budget_then_reported_as_transient(simulate):
    sim = simulate(make_estate(["app-01"]))
    client = client_for(sim, retry_total=2)
    ref = client.discover(["app-01"])["app-01"]
    sim.estate.faults.rate_429 = 1.0
    sim.reset_counts()
    with pytest.raises(TransientError, match="read item state of VM app-01 hit a transient ASR error") as err:
        client.item_state(ref)
    # first try + THROTTLE_RETRIES for the 429s (ARM refused them unseen) + the 2 of retry_total
    assert err.value.retry_after == 1.0 and sim.request_counts[GET_ITEM] == 1 + THROTTLE_RETRIES + 2
    assert err.value.throttled
    sim.estate.faults.rate_429 = 0.0
    assert client.item_state(ref).friendly_name == "app-01"


def test_random_transient_faults_on_reads_are_absorbed(simulate):
    sim = simulate(make_estate(["app-01", "app-02"]))
    sim.estate.faults.rate_500, sim.estate.faults.rate_503 = 0.2, 0.2
    client = client_for(sim)
    refs = client.discover(["app-01", "app-02"])
    assert {s.provider for s in client.item_states(list(refs.values())).values()} == {"InMage"}
    assert client.recovery_points(refs["app-01"])


@pytest.mark.parametrize("status", [500, 503])
def test_transient_failure_of_a_write_is_rechecked_then_sent_again_once(simulate, status):
    sim = simulate(make_estate(["app-01"]))
    sim.estate.faults.operations.append(
        OperationFault(
            operation="unplannedFailover",
            stage="request",
            status=status,
            mode="once",
            code="ServiceUnavailable",
        )
    )
    client = client_for(sim)
    job = client.failback(client.discover(["app-01"])["app-01"])
    assert job.state is JobStatus.succeeded
    assert [r["outcome"] for r in sim.audit.requests("unplannedFailover")] == ["refused", "accepted"]


def _fault_vcenter(sim):
    sim.estate.vcenter.connected = False


def _fault_cs(sim):
    sim.estate.configuration_server.connected = False


def _fault(field, value="x"):
    def apply(sim):
        setattr(sim.estate.vm("app-01"), field, value)

    return apply


# (what breaks, failback doc rule, does the failure come from the job rather than the request)
FAILBACK_RULES = [
    (_fault_vcenter, "vCenter connected", True),
    (_fault_cs, "configuration server running and connected", True),
    (_fault("in_configuration_server", False), "VM present in the configuration server", True),
    (_fault("migrated", True), "the VM was not migrated", False),
    (_fault("moved_resource_group", True), "the VM was not moved to another resource group", False),
    (_fault("azure_vm_deleted", True), "its Azure VM was not deleted", False),
]


@pytest.mark.parametrize(("breaks", "rule", "in_job"), FAILBACK_RULES, ids=[r[1] for r in FAILBACK_RULES])
def test_failback_doc_rules_map_to_precondition_errors(simulate, breaks, rule, in_job):
    sim = simulate(make_estate(["app-01"]))
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]
    breaks(sim)
    with pytest.raises(PreconditionError) as err:
        client.failback(ref)
    assert err.value.rule == rule
    assert str(err.value).startswith("failback of VM app-01") and f"failback doc rule: {rule}" in str(
        err.value
    )
    assert len(accepted(sim, "unplannedFailover")) == (1 if in_job else 0)
    assert phase_of(client.item_state(ref)) is Phase.reprotected_to_onprem  # nothing half-done


def test_physical_windows_2008_r2_sp1_cannot_fail_back(simulate):
    sim = simulate(make_estate(["app-01"]))
    vm = sim.estate.vm("app-01")
    vm.machine_type, vm.os, vm.os_version = "physical", "windows", "Windows Server 2008 R2 SP1"
    client = client_for(sim)
    with pytest.raises(PreconditionError) as err:
        client.failback(client.discover(["app-01"])["app-01"])
    assert err.value.rule == "not a physical Windows Server 2008 R2 SP1 server"


def test_no_recovery_point_cannot_fail_back(simulate):
    sim = simulate(make_estate(["app-01"]))
    sim.estate.vm("app-01").recovery_points = []
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]
    assert client.recovery_points(ref) == []
    with pytest.raises(PreconditionError) as err:
        client.failback(ref)
    assert err.value.rule == "every VM has at least one recovery point"


def test_unhealthy_replication_is_refused_before_any_write(simulate):
    sim = simulate(make_estate(["app-01"]))
    sim.estate.vm("app-01").replication_health = "Critical"
    client = client_for(sim)
    with pytest.raises(PreconditionError, match="replication health is Critical") as err:
        client.failback(client.discover(["app-01"])["app-01"])
    assert err.value.rule == "reprotect finished: protected, replication health OK"
    assert sim.audit.requests() == []


def test_protection_disabled_is_refused_before_any_write(simulate):
    sim = simulate(make_estate(["app-01"]))
    sim.estate.vm("app-01").protection_disabled = True
    client = client_for(sim)
    with pytest.raises(PreconditionError) as err:
        client.failback(client.discover(["app-01"])["app-01"])
    assert err.value.rule == "protection was not disabled" and sim.audit.requests() == []


def test_failback_before_reprotect_is_refused_before_any_write(simulate):
    sim = simulate(make_estate(["app-01"], phase=Phase.failed_over_to_azure))
    client = client_for(sim)
    with pytest.raises(PreconditionError, match="it is failed-over-to-azure") as err:
        client.failback(client.discover(["app-01"])["app-01"])
    assert err.value.rule == "reprotect finished: protected, replication health OK"
    assert sim.audit.requests() == []


def test_master_target_snapshots_fail_reprotect(simulate):
    sim = simulate(make_estate(["app-01"], phase=Phase.failed_over_to_azure))
    sim.estate.master_target("mt-lnx-01").snapshots = 2
    client = client_for(sim)
    with pytest.raises(PreconditionError, match="reprotect to on-prem of VM app-01 failed") as err:
        client.reprotect_to_onprem(
            client.discover(["app-01"])["app-01"],
            master_target_id="mt-lnx-01",
            process_server_id="ps-azure-01",
            retention_drive="/mnt/retention",
            profile_id="policy-failback",
        )
    assert err.value.rule == "master target has no snapshots"


def test_reprotect_inputs_are_required(simulate):
    sim = simulate(make_estate(["app-01"], phase=Phase.failed_over_to_azure))
    client = client_for(sim)
    with pytest.raises(PreconditionError, match="needs process server, failback policy"):
        client.reprotect_to_onprem(
            client.discover(["app-01"])["app-01"],
            master_target_id="mt-lnx-01",
            process_server_id=None,
            retention_drive="F:",
            profile_id=None,
        )
    assert sim.audit.requests() == []


def test_agent_not_installed_yet(simulate):
    sim = simulate(make_estate(["app-01"], phase=Phase.committed))
    sim.onprem.power_off("app-01")
    sim.onprem.power_on("app-01")  # started just now: its agent has not re-registered yet
    client = client_for(sim)
    with pytest.raises(AgentNotInstalledError, match="reprotect to Azure of VM app-01 failed") as err:
        client.reprotect_to_azure(client.discover(["app-01"])["app-01"], process_server_id="cs-01")
    assert "15 minutes" in str(err.value) or "registration window" in str(err.value)


def test_a_failed_job_names_vm_operation_and_job(simulate):
    sim = simulate(make_estate(["app-01"]))
    sim.estate.faults.operations.append(OperationFault(operation="failoverCommit", vm="app-01", mode="once"))
    client = client_for(sim)
    ref = client.discover(["app-01"])["app-01"]
    client.failback(ref)
    with pytest.raises(AsrError) as err:
        client.commit(ref)
    assert type(err.value) is AsrError
    assert str(err.value).startswith("commit of VM app-01 failed (job ") and "SimulatedFailure" in str(
        err.value
    )
    assert client.commit(ref).state is JobStatus.succeeded  # the fault fired once: a re-run commits


def test_untrusted_tls_certificate_fails_closed(simulate):
    sim = simulate(make_estate(["app-01"]))
    azure = AzureTarget(
        subscription_id=sim.subscription_id, resource_group=sim.resource_group, vault=sim.vault
    )
    client = AsrClient.for_vault(azure, endpoint=sim.endpoint, clock=sim.clock, retry_total=0)  # no CA file
    with pytest.raises(AsrError, match="TLS certificate was not trusted") as err:
        client.discover(["app-01"])
    assert not isinstance(err.value, TransientError)


def test_unreachable_endpoint_is_transient():
    azure = AzureTarget(
        subscription_id="00000000-0000-0000-0000-000000000000", resource_group="rg", vault="v"
    )
    client = AsrClient.for_vault(azure, endpoint="https://127.0.0.1:9", ca_file=None, retry_total=0)
    with pytest.raises(TransientError, match=r"discover \(list fabrics\) of VM app-01 could not reach ASR"):
        client.discover(["app-01"])


def test_explicit_points_feed_the_policy(simulate):
    sim = simulate(make_estate(["app-01"]))
    sim.estate.vm("app-01").recovery_points = [
        ExplicitPoint(ago=3600, kind="app"),
        ExplicitPoint(ago=60, kind="crash"),
    ]
    client = client_for(sim)
    points = client.recovery_points(client.discover(["app-01"])["app-01"])
    assert [(p.app_consistent, round((sim.clock.start - p.time).total_seconds())) for p in points] == [
        (True, 3600),
        (False, 60),
    ]
