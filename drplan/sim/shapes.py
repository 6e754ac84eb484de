"""JSON bodies the simulator returns, shaped as the 2025-08-01 Site Recovery OpenAPI definitions."""

from __future__ import annotations

from datetime import datetime, timedelta

from drplan.observed import Phase
from drplan.sim import rcm_shapes
from drplan.sim.conditions import Condition, item_conditions
from drplan.sim.items import Item
from drplan.sim.jobs import Job
from drplan.sim.lifecycle import Engine
from drplan.sim.recovery_plans import RecoveryPlan
from drplan.sim.recovery_points import SimPoint, latest
from drplan.sim.rules import phase_view
from drplan.sim.wire import (
    AZURE,
    IDLE_TIME,
    T_CONTAINER,
    T_FABRIC,
    T_ITEM,
    T_JOB,
    T_PLAN,
    T_POINT,
    T_PROVIDER,
    clean,
    error,
    health_error,
    iso,
    vcenter_body,
)

__all__ = ["clean", "error", "iso"]


def _condition_error(c: Condition, now: datetime, entity: str) -> dict:
    return health_error(
        c.code,
        c.summary,
        c.message,
        now,
        entity,
        source="ReplicationProtectedItem",
        causes=c.causes,
        action=c.action,
    )


# -- infrastructure ------------------------------------------------------------------------------------------
def fabric(e: Engine) -> dict:
    est, now = e.estate, e.clock.now()
    cs = est.configuration_server
    hb = (
        iso(now - timedelta(seconds=cs.heartbeat_age))
        if cs.connected
        else iso(e.clock.start - timedelta(seconds=cs.heartbeat_age))
    )
    mts = []
    for m in est.master_targets:
        errs = (
            []
            if not m.snapshots
            else [
                health_error(
                    "MasterTargetSnapshots",
                    "The master target has snapshots",
                    f"Master target {m.name} has {m.snapshots} snapshot(s); reprotect will fail",
                    now,
                    e.mt_id(m.name),
                )
            ]
        )
        mts.append(
            {
                "id": e.mt_id(m.name),
                "ipAddress": m.ip or None,
                "name": m.name,
                "osType": "Windows" if m.os == "windows" else "Linux",
                "agentVersion": "9.60.0.0",
                "lastHeartbeat": hb,
                "versionStatus": "Supported",
                "retentionVolumes": [
                    {
                        "volumeName": m.retention_drive,
                        "capacityInBytes": 1 << 40,
                        "freeSpaceInBytes": 1 << 39,
                        "thresholdPercentage": 80,
                    }
                ],
                "dataStores": [
                    {
                        "symbolicName": d,
                        "uuid": f"ds-{d}",
                        "capacity": "4096",
                        "freeSpace": "2048",
                        "type": "VMFS",
                    }
                    for d in m.datastores
                ],
                "validationErrors": [],
                "healthErrors": errs,
                "diskCount": 1,
                "osVersion": "Windows Server 2016" if m.os == "windows" else "CentOS 7",
            }
        )
    pss: list[dict] = [
        {
            "friendlyName": p.name,
            "id": e.ps_id(p.name),
            "ipAddress": p.ip or None,
            "osType": "Windows",
            "agentVersion": "9.60.0.0",
            "lastHeartbeat": hb,
            "versionStatus": "Supported",
            "psServiceStatus": "Running" if cs.connected else "Stopped",
            "healthErrors": [],
            "machineCount": str(sum(1 for v in est.vms if v.process_server == p.name)),
        }
        for p in est.process_servers
    ]
    if cs.name not in {p.name for p in est.process_servers}:  # the configuration server's own process server
        pss.append(
            {
                "friendlyName": cs.name,
                "id": e.ps_id(cs.name),
                "ipAddress": cs.ip,
                "osType": "Windows",
                "agentVersion": "9.60.0.0",
                "lastHeartbeat": hb,
                "versionStatus": "Supported",
                "psServiceStatus": "Running" if cs.connected else "Stopped",
                "healthErrors": [],
                "machineCount": "0",
            }
        )
    health_errors = (
        []
        if cs.connected
        else [
            health_error(
                "ConfigurationServerNotConnected",
                "The configuration server is not connected",
                f"Configuration server {cs.name} has not sent a heartbeat since {hb}",
                now,
                cs.name,
            )
        ]
    )
    return clean(
        {
            "id": e.fabric_id,
            "name": cs.fabric,
            "type": T_FABRIC,
            "location": est.vault.location,
            "properties": {
                "friendlyName": cs.name,
                "internalIdentifier": cs.fabric,
                "bcdrState": "Valid",
                "health": "Normal" if cs.connected else "Critical",
                "healthErrorDetails": health_errors,
                "customDetails": {
                    "instanceType": "VMware",
                    "processServers": pss,
                    "masterTargetServers": mts,
                    "runAsAccounts": [{"accountId": "1", "accountName": "vcenter-account"}],
                    "replicationPairCount": str(len(est.vms)),
                    "processServerCount": str(len(pss)),
                    "agentCount": str(len(est.vms)),
                    "protectedServers": str(len(est.vms)),
                    "csServiceStatus": "Running" if cs.connected else "Stopped",
                    "ipAddress": cs.ip,
                    "agentVersion": "9.60.0.0",
                    "hostName": cs.name,
                    "lastHeartbeat": hb,
                    "versionStatus": "Supported",
                },
            },
        }
    )


def container(e: Engine) -> dict:
    cs = e.estate.configuration_server
    return {
        "id": e.container_id,
        "name": cs.container,
        "type": T_CONTAINER,
        "location": e.estate.vault.location,
        "properties": {
            "fabricFriendlyName": cs.name,
            "friendlyName": cs.container,
            "fabricType": "VMware",
            "protectedItemCount": len(e.estate.vms),
            "pairingStatus": "Paired",
            "role": "Primary",
        },
    }


def vcenter(e: Engine) -> dict:
    est = e.estate
    ps = est.process_servers[0].name if est.process_servers else est.configuration_server.name
    return vcenter_body(
        est.vcenter,
        now=e.clock.now(),
        fabric_id=e.fabric_id,
        fabric=est.configuration_server.fabric,
        location=est.vault.location,
        process_server_id=e.ps_id(ps),
        run_as_account_id="1",
        seen_by="The configuration server",
    )


def provider(e: Engine) -> dict:
    est, now = e.estate, e.clock.now()
    cs = est.configuration_server
    hb = (
        now - timedelta(seconds=cs.heartbeat_age)
        if cs.connected
        else e.clock.start - timedelta(seconds=cs.heartbeat_age)
    )
    return {
        "id": f"{e.fabric_id}/replicationRecoveryServicesProviders/{cs.name}",
        "name": cs.name,
        "type": T_PROVIDER,
        "location": est.vault.location,
        "properties": {
            "fabricType": "VMware",
            "friendlyName": cs.name,
            "providerVersion": "5.1.8000.0",
            "serverVersion": "9.60.0.0",
            "providerVersionState": "Latest",
            "fabricFriendlyName": cs.name,
            "lastHeartBeat": iso(hb),
            "connectionStatus": "Connected" if cs.connected else "NotConnected",
            "protectedItemCount": len(est.vms),
            "allowedScenarios": [],
            "healthErrorDetails": [],
            "machineName": cs.name,
        },
    }


# -- protected items -----------------------------------------------------------------------------------------
def _scenario(e: Engine, job_name: str | None) -> dict:
    if job_name and job_name in e.jobs:
        job = e.jobs[job_name]
        return {"scenarioName": job.scenario, "jobId": e.job_id(job.name), "startTime": iso(job.start)}
    return {"scenarioName": "None", "jobId": e.job_id("None"), "startTime": IDLE_TIME}


def item(e: Engine, it: Item) -> dict:
    est, now = e.estate, e.clock.now()
    vm = e.vm_of(it)
    modern = vm.provider == "modernized"
    provider_name, state, desc, location = phase_view(vm)
    if modern and vm.phase == Phase.failed_over_to_azure and it.commit_pending:
        state, desc = "UnplannedFailoverCommitPendingStatesBegin", "Failover completed"
    if vm.protection_disabled:
        state, desc = "Unprotected", "Protection disabled"
    running = it.current_job if it.current_job and e.jobs[it.current_job].running else None
    if running and e.jobs[running].op == "reProtect":
        desc = "Reprotect in progress"
    scenario = _scenario(e, running or (it.test_job if it.test_state == "WaitingForCompletion" else None))
    pts = e.points(it)
    newest = pts[0] if pts else None
    test_desc = {"WaitingForCompletion": "Waiting for user input", "MarkedForDeletion": "Cleaned up"}
    health_errors = [
        _condition_error(c, now, it.name)
        for c in item_conditions(vm, est.configuration_server.name)
        if not (modern and c.code == "VmNotFoundInConfigurationServer")
    ]
    if modern:
        health_errors += rcm_shapes.item_health_errors(e, it)
    if vm.replication_health != "Normal":
        health_errors.append(
            health_error(
                "ReplicationUnhealthy",
                "Replication is not healthy",
                f"Replication health of {vm.name} is {vm.replication_health}",
                now,
                it.name,
            )
        )
    if modern:
        site = est.modernized
        back = provider_name == "InMageRcmFailback"
        policy = it.policy or (site.policy_failback if back else site.policy_to_azure)
        fabric_name, provider_ref, container_name = site.vmware_site, vm.appliance, site.container
    else:
        policy = "policy-failback" if provider_name == "InMage" else "policy-to-azure"
        cs = est.configuration_server
        fabric_name, provider_ref, container_name = cs.name, cs.name, cs.container
    props = {
        "friendlyName": vm.name,
        "protectedItemType": "VMwareVirtualMachine" if vm.machine_type == "vmware" else "PhysicalMachine",
        "protectableItemId": f"{e.item_container_id(it)}/replicationProtectableItems/{it.name}",
        "recoveryServicesProviderId": f"{e.item_fabric_id(it)}/replicationRecoveryServicesProviders/"
        f"{provider_ref}",
        "primaryFabricFriendlyName": fabric_name,
        "primaryFabricProvider": "InMageRcm" if modern else "VMware",
        "recoveryFabricFriendlyName": AZURE,
        "recoveryFabricId": AZURE,
        "primaryProtectionContainerFriendlyName": container_name,
        "recoveryProtectionContainerFriendlyName": AZURE,
        "protectionState": state,
        "protectionStateDescription": desc,
        "activeLocation": location,
        "testFailoverState": it.test_state or "None",
        "testFailoverStateDescription": test_desc.get(it.test_state or "", "None"),
        "allowedOperations": e.allowed_ops(it),
        "replicationHealth": vm.replication_health,
        "failoverHealth": "Normal",
        "healthErrors": health_errors,
        "policyId": f"{e.vault_id}/replicationPolicies/{policy}",
        "policyFriendlyName": policy,
        "lastSuccessfulFailoverTime": iso(it.last_failover_time),
        "lastSuccessfulTestFailoverTime": iso(it.last_test_failover_time),
        "currentScenario": scenario,
        "failoverRecoveryPointId": e.point_id(it, it.failover_point) if it.failover_point else None,
        "providerSpecificDetails": _provider_details(e, it, provider_name, newest, pts)
        if not modern
        else (
            rcm_shapes.failback_details(e, it)
            if provider_name == "InMageRcmFailback"
            else rcm_shapes.forward_details(e, it, newest)
        ),
        "recoveryContainerId": AZURE,
    }
    return clean(
        {
            "id": e.item_id(it),
            "name": it.name,
            "type": T_ITEM,
            "location": est.vault.location,
            "properties": props,
        }
    )


def _provider_details(
    e: Engine, it: Item, provider_name: str, newest: SimPoint | None, pts: list[SimPoint]
) -> dict:
    est, now = e.estate, e.clock.now()
    vm = e.vm_of(it)
    rpo = int((now - newest.time).total_seconds()) if newest else None
    group = vm.replication_group
    common = {
        "vmId": it.name,
        "infrastructureVmId": f"vm-{it.name[:8]}",
        "vCenterInfrastructureId": est.vcenter.name,
        "protectionStage": "Protected"
        if vm.phase in (Phase.reprotected_to_onprem, Phase.replicating_to_azure, Phase.reprotected_to_azure)
        else "Failover",
        "vmProtectionState": "Protected",
        "vmProtectionStateDescription": "Protected",
        "rpoInSeconds": rpo,
        "ipAddress": vm.ip,
        "lastHeartbeat": iso(now),
        "processServerId": e.ps_id(vm.process_server) if vm.process_server else None,
        "masterTargetId": e.mt_id(vm.master_target) if vm.master_target else None,
        "multiVmGroupId": f"mvg-{group}" if group else None,
        "multiVmGroupName": group,
        "multiVmSyncStatus": "Enabled" if group else "Disabled",
        "discoveryType": "Physical" if vm.machine_type == "physical" else "vCenter",
        "osVersion": vm.os_version,
        "isAdditionalStatsAvailable": False,
        "lastRpoCalculatedTime": iso(now),
        "lastUpdateReceivedTime": iso(newest.time) if newest else None,
    }
    if provider_name == "InMage":
        app = latest(pts, app=True)
        return {
            "instanceType": "InMage",
            "activeSiteType": "Azure"
            if vm.phase in (Phase.reprotected_to_onprem, Phase.failback_in_progress)
            else "OnPrem",
            "osDetails": {"osType": "Windows" if vm.os == "windows" else "Linux"},
            "retentionWindowStart": iso(pts[-1].time) if pts else None,
            "retentionWindowEnd": iso(newest.time) if newest else None,
            "consistencyPoints": {
                k: iso(p.time) for k, p in (("LatestTime", newest), ("LatestTag", app)) if p
            },
            "agentDetails": {"agentVersion": "9.60.0.0", "agentUpdateStatus": "NotRequired"},
            **common,
        }
    return {
        "instanceType": "InMageAzureV2",
        "osType": "Windows" if vm.os == "windows" else "Linux",
        "agentVersion": "9.60.0.0",
        "processServerName": vm.process_server,
        "recoveryAzureVMName": vm.name,
        "targetVmId": (
            f"/subscriptions/{est.vault.subscription_id}/resourceGroups/{est.vault.resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{vm.name}"
        )
        if it.azure_vm in ("running", "stopped")
        else None,
        "useManagedDisks": "True",
        "osName": vm.os_version,
        **common,
    }


def point(e: Engine, it: Item, p: SimPoint) -> dict:
    """A recovery point; an InMageRcmFailback item's points carry no provider details (the spec has none)."""
    provider = phase_view(e.vm_of(it))[0]
    details = (
        None
        if provider == "InMageRcmFailback"
        else {
            "instanceType": "InMageRcm" if provider == "InMageRcm" else "InMageAzureV2",
            "isMultiVmSyncPoint": "True" if p.multi_vm_sync else "False",
        }
    )
    return clean(
        {
            "id": e.point_id(it, p.name),
            "name": p.name,
            "type": T_POINT,
            "properties": {
                "recoveryPointTime": iso(p.time),
                "recoveryPointType": p.type,
                "providerSpecificDetails": details,
            },
        }
    )


# -- jobs and plans ------------------------------------------------------------------------------------------
def _errors(errs: list[tuple[str, str]], task_id: str, t: datetime | None) -> list[dict]:
    return [
        {
            "serviceErrorDetails": {
                "code": c,
                "message": m,
                "possibleCauses": m,
                "recommendedAction": "Fix the cause and retry the operation.",
            },
            "errorLevel": "Error",
            "creationTime": iso(t),
            "taskId": task_id,
        }
        for c, m in errs
    ]


def job(e: Engine, j: Job) -> dict:
    tasks = [
        clean(
            {
                "taskId": s.task_id,
                "name": s.name,
                "friendlyName": s.friendly,
                "startTime": iso(s.start),
                "endTime": iso(s.end),
                "allowedActions": [],
                "state": s.state,
                "stateDescription": {"Succeeded": "Completed"}.get(s.state, s.state),
                "taskType": "TaskDetails",
                "errors": _errors(s.errors, s.task_id, s.end),
            }
        )
        for s in j.steps
    ]
    affected = {
        "ProtectedItemCount": str(len(j.items)),
        "PrimaryFabricProviderId": "VMware",
        "RecoveryFabricProviderId": "Azure",
    }
    details: dict = {"instanceType": "AsrJobDetails", "affectedObjectDetails": affected}
    if j.op in ("unplannedFailover", "plannedFailover", "testFailover"):
        items = []
        for vm in j.items:
            it = e.items[vm]
            p = j.points.get(vm)
            items.append(
                clean(
                    {
                        "name": it.name,
                        "friendlyName": vm,
                        "recoveryPointId": e.point_id(it, p.name) if p else None,
                        "recoveryPointTime": iso(p.time) if p else None,
                        "testVmName": it.test_vm if j.op == "testFailover" else None,
                    }
                )
            )
        details = {
            "instanceType": "TestFailoverJobDetails" if j.op == "testFailover" else "FailoverJobDetails",
            "affectedObjectDetails": affected,
            "protectedItemDetails": items,
        }
    props = {
        "activityId": j.name,
        "scenarioName": j.scenario,
        "friendlyName": j.friendly,
        "state": j.state,
        "stateDescription": j.state_description,
        "tasks": tasks,
        "errors": [e_ for c, m, tid in j.errors for e_ in _errors([(c, m)], tid, j.end)],
        "startTime": iso(j.start),
        "endTime": iso(j.end),
        "allowedActions": [],
        "targetObjectId": j.target_id,
        "targetObjectName": j.target_name,
        "targetInstanceType": j.target_type,
        "customDetails": details,
    }
    return clean(
        {
            "id": e.job_id(j.name),
            "name": j.name,
            "type": T_JOB,
            "location": e.estate.vault.location,
            "properties": props,
        }
    )


def plan(e: Engine, p: RecoveryPlan) -> dict:
    running = p.current_job if p.current_job and e.jobs[p.current_job].running else None
    last = e.jobs.get(p.last_job) if p.last_job else None
    if running:
        status, status_desc = "InProgress", "InProgress"
    elif p.test_waiting:
        status, status_desc = "Suspended", "WaitingForStopTestFailover"
    elif last:
        status, status_desc = last.state, last.state_description
    else:
        status, status_desc = None, None
    groups = [g for g in p.groups]
    if not any(g.get("groupType") == "Failover" for g in groups):
        groups = [
            {
                "groupType": "Shutdown",
                "replicationProtectedItems": [],
                "startGroupActions": [],
                "endGroupActions": [],
            },
            {
                "groupType": "Failover",
                "replicationProtectedItems": [],
                "startGroupActions": [],
                "endGroupActions": [],
            },
        ] + groups
    groups = [
        {
            "groupType": g.get("groupType"),
            "replicationProtectedItems": [
                clean({"id": r.get("id"), "virtualMachineId": r.get("virtualMachineId")})
                for r in g.get("replicationProtectedItems") or []
            ],
            "startGroupActions": g.get("startGroupActions") or [],
            "endGroupActions": g.get("endGroupActions") or [],
        }
        for g in groups
    ]
    providers = sorted({phase_view(e.estate.vm(vm))[0] for vm in p.items})
    modern = bool(p.items) and all(e.estate.vm(vm).provider == "modernized" for vm in p.items)
    props = {
        "friendlyName": p.name,
        "primaryFabricId": p.primary_fabric_id,
        "primaryFabricFriendlyName": e.estate.modernized.vmware_site
        if modern
        else e.estate.configuration_server.name,
        "recoveryFabricId": p.recovery_fabric_id,
        "recoveryFabricFriendlyName": AZURE,
        "failoverDeploymentModel": p.deployment_model,
        "replicationProviders": providers,
        "allowedOperations": e.plan_allowed_ops(p),
        "lastPlannedFailoverTime": iso(p.last_planned_failover_time),
        "lastUnplannedFailoverTime": iso(p.last_unplanned_failover_time),
        "lastTestFailoverTime": iso(p.last_test_failover_time),
        "currentScenario": _scenario(e, running or (p.last_job if p.test_waiting else None)),
        "currentScenarioStatus": status,
        "currentScenarioStatusDescription": status_desc,
        "groups": groups,
        "providerSpecificDetails": [],
    }
    return clean(
        {
            "id": e.plan_id(p.name),
            "name": p.name,
            "type": T_PLAN,
            "location": e.estate.vault.location,
            "properties": props,
        }
    )
