"""Contract: the real SDK over HTTPS against the simulator; every body checked against Microsoft's spec."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
from azure.mgmt.recoveryservicessiterecovery import models as m

from drplan.observed import Phase
from drplan.sim import start_simulator

from .conftest import Asr, small_estate

RESULT_DEFS = {
    "ReplicationProtectedItems_OperationResults": "ReplicationProtectedItem",
    "ReplicationRecoveryPlans_OperationResults": "RecoveryPlan",
}


def _response_definition(spec, route: str, status: int) -> str:
    if status >= 400:
        return "common:ErrorResponse"
    return RESULT_DEFS.get(route) or spec.response_definition(route, status)


def _check_all(spec, responses, request_log) -> set[str]:
    """Validate every captured response and request body; return the routes seen."""
    problems, seen = [], set()
    for method, route, status, body in responses:
        seen.add(route)
        if body is None:
            assert status in (202, 204), (method, route, status)
            continue
        for p in spec.errors(_response_definition(spec, route, status), body):
            problems.append(f"{method} {route} {status}: {p}")
    for req in request_log:
        if req["body"] is None:
            continue
        definition = spec.request_definition(req["route"])
        assert definition, req["route"]
        for p in spec.errors(definition, req["body"]):
            problems.append(f"request {req['route']}: {p}")
    assert not problems, "\n".join(problems[:40])
    return seen


@pytest.fixture
def captured(sim):
    responses = []
    sim.response_hook = lambda method, route, status, body: responses.append((method, route, status, body))
    return responses


def test_lists_page_with_next_link_and_models_are_populated(sim, asr, captured, spec):
    c, rg, v = asr.client, asr.rg, asr.vault
    sim.page_size = 2
    items = asr.items()
    assert sorted(i.properties.friendly_name for i in items) == ["db-01", "db-02", "web-01"]
    assert (
        sim.request_counts[("GET", "ReplicationProtectedItems_List")] == 2
    )  # page size 2: nextLink followed
    item = asr.get("db-01")
    assert item.properties.protection_state == "Protected"
    assert item.properties.provider_specific_details.instance_type == "InMage"
    assert isinstance(item.properties.provider_specific_details, m.InMageReplicationDetails)
    assert item.properties.provider_specific_details.multi_vm_group_name == "db"
    assert "UnplannedFailover" in item.properties.allowed_operations

    fabric, container, _ = asr.ref("db-01")
    fabrics = list(c.replication_fabrics.list(rg, v))
    assert [f.name for f in fabrics] == [fabric]
    details = c.replication_fabrics.get(rg, v, fabric).properties.custom_details
    assert isinstance(details, m.VMwareDetails)
    assert {mt.name for mt in details.master_target_servers} == {"mt-win-01", "mt-lin-01"}
    assert details.process_servers[0].friendly_name == "ps-azure-01"
    vcs = list(c.replicationv_centers.list(rg, v))
    assert vcs[0].properties.ip_address == sim.estate.vcenter.host
    assert list(c.replicationv_centers.list_by_replication_fabrics(rg, v, fabric))[0].name == vcs[0].name
    assert c.replicationv_centers.get(rg, v, fabric, vcs[0].name).properties.discovery_status == "Completed"
    assert [x.name for x in c.replication_protection_containers.list(rg, v)] == [container]
    assert [
        x.name for x in c.replication_protection_containers.list_by_replication_fabrics(rg, v, fabric)
    ] == [container]
    providers = list(c.replication_recovery_services_providers.list(rg, v))
    assert providers[0].properties.connection_status == "Connected"
    assert (
        len(list(c.replication_recovery_services_providers.list_by_replication_fabrics(rg, v, fabric))) == 1
    )
    by_container = list(
        c.replication_protected_items.list_by_replication_protection_containers(rg, v, fabric, container)
    )
    assert len(by_container) == 3

    sim.page_size = 100
    points = asr.points("db-01")
    assert len(points) > 2
    newest = points[0]
    assert newest.properties.recovery_point_time is not None
    assert newest.properties.recovery_point_type in ("ApplicationConsistent", "CrashConsistent")
    assert newest.properties.provider_specific_details.is_multi_vm_sync_point == "True"
    got = c.recovery_points.get(rg, v, *asr.ref("db-01"), newest.name)
    assert got.properties.recovery_point_time == newest.properties.recovery_point_time
    assert list(c.replication_recovery_plans.list(rg, v)) == []
    assert list(c.replication_jobs.list(rg, v)) == []
    _check_all(spec, captured, sim.request_log)


def test_item_lifecycle_through_the_sdk(sim, asr, captured, spec):
    """Failback -> commit -> reprotect to Azure, plus a drill and a cancelled failback, all validated."""
    rg, v = asr.rg, asr.vault
    # drill first: test failover to on-prem, then cleanup
    r = asr.test_failover("web-01")
    assert r.properties.test_failover_state == "WaitingForCompletion"
    assert r.properties.allowed_operations[0] == "TestFailoverCleanup"
    assert r.properties.current_scenario.scenario_name == "TestFailover"
    assert sim.onprem.read_state(["WEB01-test"]).vms["WEB01-test"].present
    r = asr.test_cleanup("web-01")
    assert r.properties.test_failover_state == "MarkedForDeletion"
    assert not sim.onprem.read_state(["WEB01-test"]).vms["WEB01-test"].present

    # a failback that is cancelled
    r = asr.failback("web-01")
    assert r.properties.protection_state == "UnplannedFailoverCommitPendingStatesBegin"
    r = asr.cancel("web-01")
    assert (
        r.properties.protection_state == "Protected"
        and sim.estate.vm("web-01").phase == Phase.reprotected_to_onprem
    )

    # failback for real
    app_point = next(
        p for p in asr.points("web-01") if p.properties.recovery_point_type == "ApplicationConsistent"
    )
    r = asr.failback("web-01", "Custom", app_point.id)
    assert r.properties.friendly_name == "web-01"
    assert r.properties.active_location == "Recovery"
    assert r.properties.failover_recovery_point_id == app_point.id
    assert r.properties.last_successful_failover_time is not None
    assert r.properties.allowed_operations == ["Commit", "CancelFailover", "DisableProtection"]
    assert r.properties.current_scenario.scenario_name == "None"
    r = asr.commit("web-01")
    assert r.properties.protection_state == "UnplannedFailoverCommitted"
    assert "ReverseReplicate" in r.properties.allowed_operations
    sim.clock.advance(sim.estate.durations.agent_registration)
    r = asr.reprotect_to_azure("web-01")
    assert r.properties.provider_specific_details.instance_type == "InMageAzureV2"
    assert r.properties.protection_state == "Protected" and r.properties.active_location == "Primary"

    jobs = list(asr.client.replication_jobs.list(rg, v))
    assert [j.properties.scenario_name for j in jobs][:3] == [
        "ReverseReplication",
        "CommitFailover",
        "UnplannedFailover",
    ]
    assert all(j.properties.state == "Succeeded" for j in jobs)
    failback_job = asr.job(jobs[2].name)
    assert failback_job.properties.target_object_name == "web-01"
    assert [t.state for t in failback_job.properties.tasks] == ["Succeeded"] * 4
    assert failback_job.properties.custom_details.protected_item_details[0].recovery_point_id == app_point.id
    filtered = list(asr.client.replication_jobs.list(rg, v, filter="scenarioName eq 'TestFailover'"))
    assert [j.properties.scenario_name for j in filtered] == ["TestFailover"]
    assert list(asr.client.replication_jobs.list(rg, v, filter="jobStatus eq 'Failed'")) == []
    _check_all(spec, captured, sim.request_log)


def test_reprotect_to_onprem_from_failed_over_to_azure(spec):
    estate = small_estate()
    for vm in estate.vms:
        vm.phase = Phase.failed_over_to_azure
    with start_simulator(estate, speed=6000) as sim:
        responses = []
        sim.response_hook = lambda *a: responses.append(a)
        asr = Asr(sim)
        before = asr.get("db-01")
        assert before.properties.provider_specific_details.instance_type == "InMageAzureV2"
        assert before.properties.allowed_operations == ["ReverseReplicate", "DisableProtection"]
        assert asr.points("db-01") == []
        r = asr.reprotect_to_onprem("db-01")
        assert r.properties.provider_specific_details.instance_type == "InMage"
        assert r.properties.protection_state == "Protected"
        assert "UnplannedFailover" in r.properties.allowed_operations
        points = asr.points("db-01")  # the initial replication's point, then more as time passes
        assert points[-1].properties.recovery_point_time == sim.estate.vm("db-01").replicating_since
        _check_all(spec, responses, sim.request_log)


def _plan_input(asr: Asr, vms: list[str]) -> m.CreateRecoveryPlanInput:
    fabric, _, _ = asr.ref(vms[0])
    items = [m.RecoveryPlanProtectedItem(id=asr.get(vm).id, virtual_machine_id=asr.ref(vm)[2]) for vm in vms]
    return m.CreateRecoveryPlanInput(
        properties=m.CreateRecoveryPlanInputProperties(
            primary_fabric_id=f"{asr.sim.engine.fabric_id}",
            recovery_fabric_id="Microsoft Azure",
            failover_deployment_model="ResourceManager",
            groups=[
                m.RecoveryPlanGroup(
                    group_type="Boot",
                    replication_protected_items=items,
                    start_group_actions=[],
                    end_group_actions=[],
                )
            ],
        )
    )


def test_recovery_plan_create_get_and_actions(sim, asr, captured, spec):
    c, rg, v = asr.client.replication_recovery_plans, asr.rg, asr.vault
    plan = c.begin_create(rg, v, "rp-db", _plan_input(asr, ["db-01", "db-02"])).result()
    assert plan.name == "rp-db"
    assert [g.group_type for g in plan.properties.groups] == ["Shutdown", "Failover", "Boot"]
    assert set(plan.properties.allowed_operations) >= {"UnplannedFailover", "TestFailover"}
    assert [p.name for p in c.list(rg, v)] == ["rp-db"]

    tfo = m.RecoveryPlanTestFailoverInput(
        properties=m.RecoveryPlanTestFailoverInputProperties(
            failover_direction="RecoveryToPrimary",
            network_type="VmNetworkAsInput",
            network_id="drill-network",
            provider_specific_details=[m.RecoveryPlanInMageFailoverInput(recovery_point_type="LatestTag")],
        )
    )
    r = c.begin_test_failover(rg, v, "rp-db", tfo).result()
    assert r.properties.current_scenario_status == "Suspended"
    assert r.properties.current_scenario.scenario_name == "TestFailover"
    assert r.properties.allowed_operations == ["TestFailoverCleanup"]
    cleanup = m.RecoveryPlanTestFailoverCleanupInput(
        properties=m.RecoveryPlanTestFailoverCleanupInputProperties(comments="drill ok")
    )
    r = c.begin_test_failover_cleanup(rg, v, "rp-db", cleanup).result()
    assert r.properties.current_scenario_status == "Succeeded"

    ufo = m.RecoveryPlanUnplannedFailoverInput(
        properties=m.RecoveryPlanUnplannedFailoverInputProperties(
            failover_direction="RecoveryToPrimary",
            source_site_operations="NotRequired",
            provider_specific_details=[m.RecoveryPlanInMageFailoverInput(recovery_point_type="LatestTag")],
        )
    )
    r = c.begin_unplanned_failover(rg, v, "rp-db", ufo).result()
    assert r.properties.last_unplanned_failover_time is not None
    assert "Commit" in r.properties.allowed_operations
    p1, p2 = asr.get("db-01").properties, asr.get("db-02").properties
    t1 = asr.client.recovery_points.get(
        rg, v, *asr.ref("db-01"), p1.failover_recovery_point_id.rsplit("/", 1)[1]
    )
    t2 = asr.client.recovery_points.get(
        rg, v, *asr.ref("db-02"), p2.failover_recovery_point_id.rsplit("/", 1)[1]
    )
    assert t1.properties.recovery_point_time == t2.properties.recovery_point_time  # the common multi-VM point
    assert t1.properties.recovery_point_type == "ApplicationConsistent"
    rec = sim.audit.requests("unplannedFailover")[-1]
    assert rec["plan"] == "rp-db" and rec["direction"] == "RecoveryToPrimary"
    assert set(rec["recovery_points"]) == {"db-01", "db-02"}

    r = c.begin_failover_commit(rg, v, "rp-db").result()
    assert "ReverseReplicate" in r.properties.allowed_operations
    sim.clock.advance(sim.estate.durations.agent_registration)
    r = c.begin_reprotect(rg, v, "rp-db").result()
    assert asr.get("db-02").properties.provider_specific_details.instance_type == "InMageAzureV2"
    assert c.get(rg, v, "rp-db").properties.current_scenario_status == "Succeeded"
    _check_all(spec, captured, sim.request_log)


def test_plan_failover_cancel(sim, asr, spec, captured):
    c, rg, v = asr.client.replication_recovery_plans, asr.rg, asr.vault
    c.begin_create(rg, v, "rp-web", _plan_input(asr, ["web-01"])).result()
    ufo = m.RecoveryPlanUnplannedFailoverInput(
        properties=m.RecoveryPlanUnplannedFailoverInputProperties(
            failover_direction="RecoveryToPrimary",
            source_site_operations="NotRequired",
            provider_specific_details=[m.RecoveryPlanInMageFailoverInput(recovery_point_type="LatestTime")],
        )
    )
    c.begin_unplanned_failover(rg, v, "rp-web", ufo).result()
    r = c.begin_failover_cancel(rg, v, "rp-web").result()
    assert "UnplannedFailover" in r.properties.allowed_operations
    assert sim.estate.vm("web-01").phase == Phase.reprotected_to_onprem
    _check_all(spec, captured, sim.request_log)


def test_lro_polls_202_while_running_and_item_names_the_job(asr, sim):
    """202 + absolute Location + Retry-After; polling answers 202 while running, then 200 + the item."""
    import requests

    sim.clock.speed = 60.0  # a 600 s failback now takes 10 real seconds: observe it mid-flight
    statuses = []
    asr.client.replication_protected_items.begin_unplanned_failover(
        asr.rg,
        asr.vault,
        *asr.ref("web-01"),
        m.UnplannedFailoverInput(
            properties=m.UnplannedFailoverInputProperties(
                failover_direction="RecoveryToPrimary",
                source_site_operations="NotRequired",
                provider_specific_details=m.InMageUnplannedFailoverInput(recovery_point_type="LatestTime"),
            )
        ),
        polling=False,
        raw_response_hook=lambda resp: statuses.append(
            (resp.http_response.status_code, dict(resp.http_response.headers))
        ),
    )
    status, headers = statuses[0]
    assert status == 202
    location = headers["Location"]
    assert location.startswith(sim.endpoint) and "/operationresults/" in location
    assert int(headers["Retry-After"]) >= 1
    job_name = location.split("/operationresults/")[1].split("?")[0]
    item = asr.get("web-01").properties
    assert item.current_scenario.scenario_name == "UnplannedFailover"
    assert item.current_scenario.job_id.endswith(job_name)
    assert item.allowed_operations == []
    assert asr.job(job_name).properties.state == "InProgress"
    auth = {"Authorization": f"Bearer {sim.token}"}
    poll = requests.get(location, headers=auth, verify=sim.ca_file, timeout=10)
    assert poll.status_code == 202 and poll.headers["Location"] == location
    sim.clock.advance(600)
    done = requests.get(location, headers=auth, verify=sim.ca_file, timeout=10)
    assert done.status_code == 200
    assert done.json()["properties"]["activeLocation"] == "Recovery"
    assert asr.job(job_name).properties.state == "Succeeded"
    rec = sim.audit.requests("unplannedFailover")[-1]
    assert rec["direction"] == "RecoveryToPrimary" and rec["vm"] == "web-01" and rec["job"] == job_name


def test_failed_job_surfaces_as_arm_error_on_poll(asr, sim):
    sim.estate.vcenter.connected = False
    with pytest.raises(HttpResponseError) as err:
        asr.failback("web-01")
    assert err.value.error.code == "VCenterNotConnected"
    assert "web-01" in str(err.value) and "detach" in str(err.value)


def test_missing_bearer_token_is_401_in_arm_envelope(sim):
    import requests

    url = (
        f"{sim.endpoint}/subscriptions/{sim.subscription_id}/resourceGroups/{sim.resource_group}"
        f"/providers/Microsoft.RecoveryServices/vaults/{sim.vault}/replicationProtectedItems"
        "?api-version=2025-08-01"
    )
    r = requests.get(url, verify=sim.ca_file, timeout=10)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "AuthenticationFailed"

    class NoToken:
        def get_token(self, *a, **k):
            from azure.core.credentials import AccessToken

            return AccessToken("", 2**31)

    client = SiteRecoveryManagementClient(
        NoToken(), sim.subscription_id, base_url=sim.endpoint, connection_verify=sim.ca_file
    )
    with pytest.raises(ClientAuthenticationError):
        list(client.replication_protected_items.list(sim.resource_group, sim.vault))


def test_tls_is_verified_against_the_simulator_ca(sim):
    """Without the CA file the handshake fails: verification is never turned off."""
    from azure.core.exceptions import ServiceRequestError

    from .conftest import StaticToken

    client = SiteRecoveryManagementClient(
        StaticToken(sim.token), sim.subscription_id, base_url=sim.endpoint, retry_total=0
    )
    with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
        list(client.replication_fabrics.list(sim.resource_group, sim.vault))


def test_microsoft_examples_validate_with_our_validator(spec):
    """The validator itself accepts Microsoft's own example bodies (and rejects junk)."""
    import json
    from pathlib import Path

    count = 0
    for path in sorted((Path(__file__).parent / "spec/examples").glob("*.json")):
        op = path.stem
        if op not in spec.operations or op.startswith("ReplicationProtectionClusters"):
            continue
        example = json.loads(path.read_text())
        for status, resp in example["responses"].items():
            if "body" in resp:
                spec.validate(spec.response_definition(op, int(status)), resp["body"])
                count += 1
    assert count >= 25
    bad = {"properties": {"providerSpecificDetails": {"instanceType": "Nope"}, "friendlyNme": "x"}}
    problems = spec.errors("ReplicationProtectedItem", bad)
    assert any("Nope" in p for p in problems) and any("friendlyNme" in p for p in problems)
