"""The modernized cycle (InMageRcm -> InMageRcmFailback -> InMageRcm) through the real SDK over HTTPS, every
request and response body checked against the 2025-08-01 spec (and the compute spec for the instance view)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.recoveryservicessiterecovery import models as m

from drplan.observed import Phase
from drplan.plan.loader import load_plan
from drplan.sim import Estate, start_simulator

from .conftest import Rcm, compute_client, modern_estate, small_estate
from .exchange import check_exchange
from .test_cli import ROOT


def test_infrastructure_reads_show_appliances_policies_and_the_discovered_vcenter(
    modern_sim, rcm, exchanged, spec, compute_spec
):
    c, rg, v = rcm.client, rcm.rg, rcm.vault
    e = modern_sim.engine
    fabrics = list(c.replication_fabrics.list(rg, v))
    assert [f.name for f in fabrics] == ["rcm-fabric"]  # nothing classic in this estate
    details = c.replication_fabrics.get(rg, v, "rcm-fabric").properties.custom_details
    assert isinstance(details, m.InMageRcmFabricSpecificDetails)
    assert [p.name for p in details.process_servers] == ["appliance-01", "appliance-02"]
    agent = details.reprotect_agents[0]
    assert agent.id == e.component_id("appliance-01", "reprotectAgents")
    assert agent.accessible_datastores == ["datastore1", "datastore2"] and agent.health == "Normal"
    assert agent.last_heartbeat_utc is not None and agent.vcenter_id.endswith(
        "/replicationvCenters/vcenter-01"
    )
    for group in ("rcm_proxies", "replication_agents", "mars_agents", "dras", "push_installers"):
        assert len(getattr(details, group)) == 2, group
    assert {a.fqdn for a in details.agent_details} >= {"web01.example.local"}
    assert sum(len(a.disks) for a in details.agent_details) == 5  # db-01 has two disks

    appliances = list(c.replication_appliances.list(rg, v))
    names = [a.properties.provider_specific_details.appliances[0].name for a in appliances]
    assert names == ["appliance-01", "appliance-02"]
    policies = {p.name: p for p in c.replication_policies.list(rg, v)}
    assert isinstance(policies["rcm-policy"].properties.provider_specific_details, m.InMageRcmPolicyDetails)
    back = c.replication_policies.get(rg, v, "rcm-failback-policy").properties.provider_specific_details
    assert (
        isinstance(back, m.InMageRcmFailbackPolicyDetails) and back.crash_consistent_frequency_in_minutes == 5
    )

    vc = next(iter(c.replicationv_centers.list_by_replication_fabrics(rg, v, "rcm-fabric")))
    assert vc.properties.run_as_account_id == e.run_as_id("vcenter-runas")
    assert vc.properties.process_server_id == e.component_id("appliance-01", "processServers")
    assert [x.properties.fabric_type for x in c.replication_protection_containers.list(rg, v)] == [
        "InMageRcm"
    ]
    providers = list(
        c.replication_recovery_services_providers.list_by_replication_fabrics(rg, v, "rcm-fabric")
    )
    assert [p.properties.connection_status for p in providers] == ["Connected", "Connected"]
    items = list(
        c.replication_protected_items.list_by_replication_protection_containers(
            rg, v, "rcm-fabric", "rcm-container"
        )
    )
    assert len(items) == 4

    web = rcm.get("web-01").properties
    assert web.protection_state == "UnplannedFailoverCommitted" and web.active_location == "Recovery"
    assert web.allowed_operations == ["ReverseReplicate", "DisableProtection"]
    d = web.provider_specific_details
    assert isinstance(d, m.InMageRcmReplicationDetails)
    assert d.is_agent_registration_successful_after_failover is True
    assert d.mobility_agent_details.last_heartbeat_utc is not None
    app = rcm.get("app-01").properties.provider_specific_details
    assert app.process_server_name == "appliance-02" and app.last_recovery_point_id
    points = rcm.points("app-01")
    assert points and isinstance(
        points[0].properties.provider_specific_details, m.InMageRcmRecoveryPointDetails
    )
    check_exchange(spec, compute_spec, exchanged, modern_sim.request_log)


def test_full_cycle_reprotect_failback_cancel_commit_and_back_to_azure(spec, compute_spec):
    with start_simulator(modern_estate(), speed=1) as sim:  # time moves only when the test advances it
        responses = []
        sim.response_hook = lambda *a: responses.append(a)
        rcm, site, d = Rcm(sim), sim.onprem, sim.estate.durations
        site.power_on("WEB01")  # someone started the old VM: the reprotect powers it off

        # reprotect Azure -> on-prem: InMageRcmReprotectInput, RecoveryToPrimary
        rcm.reprotect_back("web-01", polling=False)
        sim.clock.advance(d.reprotect * 0.5)
        mid = rcm.get("web-01").properties
        assert mid.allowed_operations == [] and mid.current_scenario.scenario_name == "ReverseReplication"
        back = mid.provider_specific_details
        assert isinstance(back, m.InMageRcmFailbackReplicationDetails)
        assert 0 < back.resync_progress_percentage < 100 and back.resync_state == "StartedResynchronization"
        assert site.read_state(["WEB01"]).vms["WEB01"].power_state == "poweredOff"
        sim.clock.advance(d.reprotect)
        r = rcm.get("web-01").properties
        back = r.provider_specific_details
        assert r.protection_state == "Protected" and r.allowed_operations == [
            "PlannedFailover",
            "DisableProtection",
        ]
        assert back.resync_progress_percentage == 100 and back.reprotect_agent_name == "appliance-01"
        assert (
            back.target_data_store_name == "datastore1"
            and back.log_storage_account_id == sim.engine.log_storage_id
        )
        assert (
            back.is_agent_registration_successful_after_failover
            and back.mobility_agent_details.last_heartbeat_utc
        )
        assert back.last_used_policy_friendly_name == "rcm-failback-policy"
        assert back.discovered_vm_details.power_status == "OFF"

        # planned failover, crash-consistent: the point is made once the Azure VM is shut down
        sim.clock.advance(3600)
        rcm.planned_failback("web-01", "CrashConsistent", polling=False)
        started = sim.clock.now()
        sim.clock.advance(d.failback)
        r = rcm.get("web-01").properties
        back = r.provider_specific_details
        assert r.protection_state == "PlannedFailoverCommitRequired" and r.active_location == "Recovery"
        assert r.allowed_operations == ["Commit", "CancelFailover", "DisableProtection"]
        assert back.last_planned_failover_status == "Succeeded"
        assert abs((back.last_planned_failover_start_time - started).total_seconds()) < 5
        point = next(p for p in rcm.points("web-01") if p.id == r.failover_recovery_point_id)
        assert point.properties.recovery_point_type == "CrashConsistent"
        assert point.properties.recovery_point_time > started  # after the job started: at the shutdown step
        assert sim.engine.azure_vm("web-01") == "stopped"
        state = site.read_state(["WEB01"]).vms["WEB01"]
        assert state.power_state == "poweredOn"
        assert r.current_scenario.scenario_name == "None"
        jobs = list(
            rcm.client.replication_jobs.list(rcm.rg, rcm.vault, filter="scenarioName eq 'PlannedFailover'")
        )
        tasks = [t.name for t in jobs[0].properties.tasks]
        assert tasks == ["PreFailoverCheck", "ShutdownAzureVm", "SyncPendingChanges", "PowerOnOnPremVm"]
        assert jobs[0].properties.custom_details.protected_item_details[0].recovery_point_id == point.id

        # cancel: the Azure VM runs again, the on-prem VM is off; then an app-consistent failback
        rcm.client.replication_protected_items.begin_failover_cancel(
            rcm.rg, rcm.vault, *rcm.ref("web-01"), polling=False
        )
        sim.clock.advance(d.failover_cancel)
        r = rcm.get("web-01").properties
        assert (
            r.protection_state == "Protected"
            and r.provider_specific_details.last_planned_failover_status == "Cancelled"
        )
        assert site.read_state(["WEB01"]).vms["WEB01"].power_state == "poweredOff"
        assert sim.engine.azure_vm("web-01") == "running"
        rcm.planned_failback("web-01", "ApplicationConsistent", polling=False)
        shutdown = sim.clock.now() + timedelta(seconds=d.failback * 0.25)
        sim.clock.advance(d.failback)
        r = rcm.get("web-01").properties
        apps = [
            p for p in rcm.points("web-01") if p.properties.recovery_point_type == "ApplicationConsistent"
        ]
        newest_app = max(
            (p for p in apps if p.properties.recovery_point_time <= shutdown),
            key=lambda p: p.properties.recovery_point_time,
        )
        assert r.failover_recovery_point_id == newest_app.id  # the newest app-consistent point at shutdown

        # commit deletes the Azure VM; reprotect on-prem -> Azure (InMageRcmFailbackReprotectInput) once the
        # agent on the on-prem VM registered
        rcm.client.replication_protected_items.begin_failover_commit(
            rcm.rg, rcm.vault, *rcm.ref("web-01"), polling=False
        )
        sim.clock.advance(d.commit)
        r = rcm.get("web-01").properties
        assert r.protection_state == "PlannedFailoverStatesBegin"
        assert r.allowed_operations == ["ReverseReplicate", "DisableProtection"]
        assert sim.engine.azure_vm("web-01") == "deleted"
        sim.clock.advance(d.agent_registration)
        rcm.reprotect_forward("web-01", "appliance-02", polling=False)
        sim.clock.advance(d.reprotect_to_azure)
        r = rcm.get("web-01").properties
        assert isinstance(r.provider_specific_details, m.InMageRcmReplicationDetails)
        assert r.protection_state == "Protected" and r.allowed_operations == [
            "UnplannedFailover",
            "TestFailover",
            "DisableProtection",
        ]
        assert r.provider_specific_details.process_server_name == "appliance-02"
        scenarios = [j.properties.scenario_name for j in rcm.client.replication_jobs.list(rcm.rg, rcm.vault)]
        assert scenarios == [
            "ReverseReplication",
            "CommitFailover",
            "PlannedFailover",
            "CancelFailover",
            "PlannedFailover",
            "ReverseReplication",
        ]
        assert sim.audit.requests("plannedFailover")[0]["recovery_point_type"] == "CrashConsistent"
        seen = check_exchange(spec, compute_spec, responses, sim.request_log)
        assert (
            "ReplicationProtectedItems_PlannedFailover" in seen
            and "ReplicationProtectedItems_Reprotect" in seen
        )


def test_forward_failover_change_point_and_commit(modern_sim, rcm, exchanged, spec, compute_spec):
    points = rcm.points("app-01")
    r = rcm.failover("app-01", points[0].id)
    assert r.properties.protection_state == "UnplannedFailoverCommitPendingStatesBegin"
    assert r.properties.allowed_operations == ["Commit", "CancelFailover", "ChangePit", "DisableProtection"]
    assert (
        modern_sim.onprem.read_state(["app-01"]).vms["app-01"].power_state == "poweredOff"
    )  # performShutdown
    r = rcm.apply_point("app-01", points[2].id)
    assert r.properties.failover_recovery_point_id == points[2].id
    r = rcm.commit("app-01")
    assert r.properties.protection_state == "UnplannedFailoverCommitted"
    assert r.properties.provider_specific_details.is_agent_registration_successful_after_failover is True
    check_exchange(spec, compute_spec, exchanged, modern_sim.request_log)


def test_forward_drill_test_vm_is_checked_in_azure_through_the_compute_sdk(spec, compute_spec):
    with start_simulator(modern_estate(), speed=1) as sim:  # time moves only when the test advances it
        responses = []
        sim.response_hook = lambda *a: responses.append(a)
        rcm, d = Rcm(sim), sim.estate.durations
        rcm.drill("app-01", polling=False)
        sim.clock.advance(d.test_failover)
        r = rcm.get("app-01").properties
        assert r.test_failover_state == "WaitingForCompletion"
        assert r.allowed_operations == ["TestFailoverCleanup"]
        assert r.provider_specific_details.test_network_id == rcm.test_network()
        compute = compute_client(sim)
        vm = compute.virtual_machines.get(rcm.rg, "app-01-test", expand="instanceView")
        assert [s.code for s in vm.instance_view.statuses] == [
            "ProvisioningState/succeeded",
            "PowerState/running",
        ]
        assert vm.instance_view.vm_agent.statuses[0].display_status == "Not Ready"  # still booting
        sim.clock.advance(d.boot)
        vm = compute.virtual_machines.get(rcm.rg, "app-01-test", expand="instanceView")
        assert vm.instance_view.vm_agent.statuses[0].display_status == "Ready"
        assert vm.instance_view.vm_agent.vm_agent_version and vm.instance_view.computer_name == "app-01"
        assert compute.virtual_machines.get(rcm.rg, "app-01-test").instance_view is None
        failed_over = compute.virtual_machines.get(
            rcm.rg, "web-01", expand="instanceView"
        )  # failed over to Azure
        assert failed_over.instance_view.statuses[1].code == "PowerState/running"
        cleanup = m.TestFailoverCleanupInput(
            properties=m.TestFailoverCleanupInputProperties(comments="drill done")
        )
        rcm.client.replication_protected_items.begin_test_failover_cleanup(
            rcm.rg, rcm.vault, *rcm.ref("app-01"), cleanup, polling=False
        )
        sim.clock.advance(d.test_failover_cleanup)
        assert rcm.get("app-01").properties.test_failover_state == "MarkedForDeletion"
        with pytest.raises(ResourceNotFoundError) as err:
            compute.virtual_machines.get(rcm.rg, "app-01-test", expand="instanceView")
        assert err.value.error.code == "ResourceNotFound"
        assert sim.request_counts[("GET", "VirtualMachines_Get")] == 5
        check_exchange(spec, compute_spec, responses, sim.request_log)


def _plan(rcm: Rcm, name: str, vms: list[str]):
    items = [m.RecoveryPlanProtectedItem(id=rcm.get(vm).id, virtual_machine_id=rcm.ref(vm)[2]) for vm in vms]
    body = m.CreateRecoveryPlanInput(
        properties=m.CreateRecoveryPlanInputProperties(
            primary_fabric_id=rcm.sim.engine.rcm_fabric_id,
            recovery_fabric_id="Microsoft Azure",
            failover_deployment_model="ResourceManager",
            groups=[m.RecoveryPlanGroup(group_type="Boot", replication_protected_items=items)],
        )
    )
    return rcm.client.replication_recovery_plans.begin_create(rcm.rg, rcm.vault, name, body).result()


def _plan_failback(rcm: Rcm, name: str, rp_type: str, sync: str = "Enable"):
    body = m.RecoveryPlanPlannedFailoverInput(
        properties=m.RecoveryPlanPlannedFailoverInputProperties(
            failover_direction="RecoveryToPrimary",
            provider_specific_details=[
                m.RecoveryPlanInMageRcmFailbackFailoverInput(
                    recovery_point_type=rp_type, use_multi_vm_sync_point=sync
                )
            ],
        )
    )
    return rcm.client.replication_recovery_plans.begin_planned_failover(
        rcm.rg, rcm.vault, name, body
    ).result()


def test_recovery_plan_planned_failback_gives_each_group_its_common_point(
    modern_sim, rcm, exchanged, spec, compute_spec
):
    for vm in ("db-01", "db-02", "web-01"):
        rcm.reprotect_back(vm)
    plans = rcm.client.replication_recovery_plans
    plan = _plan(rcm, "rp-erp", ["db-01", "db-02", "web-01"])
    assert plan.properties.allowed_operations == ["PlannedFailover"]
    assert plan.properties.replication_providers == ["InMageRcmFailback"]
    with pytest.raises(HttpResponseError) as err:  # plan-level reprotect does not exist for modernized items
        plans.begin_reprotect(rcm.rg, rcm.vault, "rp-erp").result()
    assert (
        err.value.error.code == "OperationNotSupported"
        and "reprotect each protected item" in err.value.message
    )

    modern_sim.clock.advance(7200)
    r = _plan_failback(rcm, "rp-erp", "ApplicationConsistent")
    assert r.properties.last_planned_failover_time is not None
    assert r.properties.allowed_operations == ["Commit", "CancelFailover"]
    ids = {vm: rcm.get(vm).properties.failover_recovery_point_id for vm in ("db-01", "db-02", "web-01")}
    times = {
        vm: rcm.client.recovery_points.get(
            rcm.rg, rcm.vault, *rcm.ref(vm), i.rsplit("/", 1)[-1]
        ).properties.recovery_point_time
        for vm, i in ids.items()
    }
    assert times["db-01"] == times["db-02"]  # the group's common app-consistent point
    r = plans.begin_failover_cancel(rcm.rg, rcm.vault, "rp-erp").result()
    assert r.properties.allowed_operations == ["PlannedFailover"]
    r = _plan_failback(rcm, "rp-erp", "CrashConsistent")
    pts = {
        vm: rcm.get(vm).properties.failover_recovery_point_id.rsplit("/", 1)[-1] for vm in ("db-01", "db-02")
    }
    got = {vm: rcm.client.recovery_points.get(rcm.rg, rcm.vault, *rcm.ref(vm), p) for vm, p in pts.items()}
    assert got["db-01"].properties.recovery_point_time == got["db-02"].properties.recovery_point_time
    assert got["db-01"].properties.recovery_point_type == "CrashConsistent"
    assert got["db-01"].properties.provider_specific_details is None  # no InMageRcmFailback point details
    r = plans.begin_failover_commit(rcm.rg, rcm.vault, "rp-erp").result()
    assert r.properties.current_scenario_status == "Succeeded"
    assert all(modern_sim.engine.azure_vm(vm) == "deleted" for vm in ("db-01", "db-02", "web-01"))
    check_exchange(spec, compute_spec, exchanged, modern_sim.request_log)


def test_modernized_and_classic_estates_of_the_same_plan_both_load_and_serve():
    plan = load_plan(ROOT / "plans/three-tier.yaml")
    modern = Estate.from_plan(plan, provider="modernized")
    classic = Estate.from_plan(plan)
    assert (
        {v.provider for v in classic.vms} == {"classic"} and classic.master_targets and not classic.appliances
    )
    assert (
        {v.provider for v in modern.vms} == {"modernized"} and modern.appliances and not modern.master_targets
    )
    assert all(v.appliance for v in modern.vms)
    for est in (modern, classic):
        again = Estate.from_yaml_text(est.to_yaml())
        assert again.model_dump() == est.model_dump()
        with start_simulator(again, speed=6000) as sim:
            rcm = Rcm(sim)
            kinds = {type(i.properties.provider_specific_details).__name__ for i in rcm.items()}
            assert kinds == (
                {"InMageRcmFailbackReplicationDetails"} if est is modern else {"InMageReplicationDetails"}
            )


def test_a_mixed_estate_serves_both_fabrics(spec, compute_spec):
    est = small_estate()
    est.appliances = modern_estate().appliances
    est.vms = [*est.vms, modern_estate().vm("app-01")]
    with start_simulator(est, speed=6000) as sim:
        responses = []
        sim.response_hook = lambda *a: responses.append(a)
        rcm = Rcm(sim)
        assert [f.name for f in rcm.client.replication_fabrics.list(rcm.rg, rcm.vault)] == [
            "vmware-fabric",
            "rcm-fabric",
        ]
        by_vm = {i.properties.friendly_name: i for i in rcm.items()}
        assert (
            by_vm["app-01"].id.split("/")[10] == "rcm-fabric"
            and by_vm["db-01"].id.split("/")[10] == "vmware-fabric"
        )
        assert rcm.get("app-01").properties.provider_specific_details.instance_type == "InMageRcm"
        assert rcm.get("db-01").properties.provider_specific_details.instance_type == "InMage"
        policies = sorted(p.name for p in rcm.client.replication_policies.list(rcm.rg, rcm.vault))
        assert policies == ["policy-failback", "policy-to-azure", "rcm-failback-policy", "rcm-policy"]
        with pytest.raises(ResourceNotFoundError):  # an item is only found under its own fabric
            rcm.client.replication_protected_items.get(
                rcm.rg, rcm.vault, "vmware-fabric", "vmware-container", rcm.ref("app-01")[2]
            )
        check_exchange(spec, compute_spec, responses, sim.request_log)


def test_estate_generation_fills_appliances_up_to_60_disks():
    plan = load_plan(ROOT / "plans/erp-mixed.yaml")
    est = Estate.from_plan(plan, provider="modernized", phase=Phase.failed_over_to_azure)
    per = {a.name: sum(v.disks for v in est.vms if v.appliance == a.name) for a in est.appliances}
    assert all(0 < n <= 60 for n in per.values())
    assert est.start_time is None and timedelta(seconds=est.durations.reprotect_alternate) > timedelta(
        seconds=est.durations.reprotect
    )
