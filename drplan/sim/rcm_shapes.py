"""JSON bodies of the modernized side, shaped as the 2025-08-01 definitions: the InMageRcm fabric with its
appliances' components (``InMageRcmFabricSpecificDetails``), replication appliances, policies of both
directions, and the ``InMageRcm`` / ``InMageRcmFailback`` details of a protected item."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from drplan.observed import Phase
from drplan.sim.estate import DISKS_PER_APPLIANCE, STALE_HEARTBEAT, Appliance
from drplan.sim.items import Item
from drplan.sim.lifecycle import Engine
from drplan.sim.recovery_points import SimPoint
from drplan.sim.wire import (
    T_CONTAINER,
    T_FABRIC,
    T_POLICY,
    T_PROVIDER,
    clean,
    health_error,
    iso,
    vcenter_body,
)

AGENT_VERSION = "9.63.7187.1"
_NS = uuid.UUID("9c3f1e2a-7b6d-4c8e-a1f0-2d5e6b7c8a90")
_GB = 1 << 30


# -- appliances and the fabric ------------------------------------------------------------------------------
def _heartbeat(e: Engine, a: Appliance) -> datetime:
    base = e.clock.now() if a.connected else e.clock.start
    return base - timedelta(seconds=a.heartbeat_age)


def appliance_health(e: Engine, a: Appliance) -> tuple[str, list[dict]]:
    """(health, health errors) of an appliance: disconnected, unhealthy, or at its disk limit."""
    now, errs = e.clock.now(), []
    if not a.connected:
        errs.append(
            health_error(
                "ApplianceNotConnected",
                "The replication appliance is not connected",
                f"Appliance {a.name} has not sent a heartbeat since {iso(_heartbeat(e, a))}",
                now,
                a.name,
                source="ReplicationAppliance",
                action="Check the appliance's network connectivity to Azure and its services.",
            )
        )
    elif a.health != "Normal":
        errs.append(
            health_error(
                "ApplianceNotHealthy",
                "The replication appliance is not healthy",
                f"Appliance {a.name} health is {a.health}",
                now,
                a.name,
                source="ReplicationAppliance",
            )
        )
    used = e.disks_in_use(a.name)
    if used >= DISKS_PER_APPLIANCE:
        errs.append(
            health_error(
                "ApplianceDiskLimitReached",
                "The replication appliance replicates as many disks as it can",
                f"Appliance {a.name} replicates {used} of its {DISKS_PER_APPLIANCE} disks",
                now,
                a.name,
                source="ReplicationAppliance",
                action="Use another appliance (or a separate failback appliance) for more machines.",
            )
        )
    health = "Critical" if not a.connected else ("Warning" if errs and a.health == "Normal" else a.health)
    return health, errs


def _component(e: Engine, a: Appliance, component: str, name: str) -> dict:
    health, errs = appliance_health(e, a)
    return {
        "id": e.component_id(a.name, component),
        "name": name,
        "biosId": str(uuid.uuid5(_NS, f"bios|{a.name}")),
        "fabricObjectId": f"{e.vmware_site_id}/machines/{uuid.uuid5(_NS, f'machine|{a.name}')}",
        "fqdn": f"{a.name}.example.local",
        "version": a.version,
        "lastHeartbeatUtc": iso(_heartbeat(e, a)),
        "health": health,
        "healthErrors": errs,
    }


def _items_on(e: Engine, a: Appliance, phases: set[Phase]) -> int:
    return sum(
        1 for v in e.estate.vms if v.provider == "modernized" and v.appliance == a.name and v.phase in phases
    )


_FORWARD = {Phase.replicating_to_azure, Phase.reprotected_to_azure}
_REVERSE = {Phase.reprotected_to_onprem, Phase.failback_in_progress, Phase.failed_back}


def appliance_components(e: Engine, a: Appliance) -> dict[str, dict]:
    """Each component of ``a`` keyed as ``InMageRcmFabricSpecificDetails`` lists them."""
    status = (
        "Healthy" if a.connected and a.health == "Normal" else ("Critical" if not a.connected else "Warning")
    )
    health, _ = appliance_health(e, a)
    ps = {
        **_component(e, a, "processServers", a.name),
        "ipAddresses": [a.ip] if a.ip else [],
        "totalMemoryInBytes": 32 * _GB,
        "availableMemoryInBytes": 20 * _GB,
        "usedMemoryInBytes": 12 * _GB,
        "memoryUsagePercentage": 37.5,
        "totalSpaceInBytes": 1024 * _GB,
        "availableSpaceInBytes": 700 * _GB,
        "usedSpaceInBytes": 324 * _GB,
        "freeSpacePercentage": 68.4,
        "throughputUploadPendingDataInBytes": 0,
        "throughputInBytes": 12 << 20,
        "processorUsagePercentage": 21.0,
        "throughputStatus": status,
        "systemLoad": 1,
        "systemLoadStatus": status,
        "diskUsageStatus": status,
        "memoryUsageStatus": status,
        "processorUsageStatus": status,
        "protectedItemCount": _items_on(e, a, _FORWARD | _REVERSE),
        "historicHealth": health,
    }
    agent = {
        **_component(e, a, "reprotectAgents", a.name),
        "protectedItemCount": _items_on(e, a, _REVERSE),
        "accessibleDatastores": list(a.datastores),
        "vcenterId": e.rcm_vcenter_id(),
        "lastDiscoveryInUtc": iso(_heartbeat(e, a)),
    }
    dra = {
        **{k: v for k, v in _component(e, a, "dras", a.name).items() if k not in ("fabricObjectId", "fqdn")},
        "forwardProtectedItemCount": _items_on(e, a, _FORWARD),
        "reverseProtectedItemCount": _items_on(e, a, _REVERSE),
    }
    return {
        "processServers": ps,
        "rcmProxies": {**_component(e, a, "rcmProxies", a.name), "clientAuthenticationType": "Certificate"},
        "pushInstallers": _component(e, a, "pushInstallers", a.name),
        "replicationAgents": _component(e, a, "replicationAgents", a.name),
        "reprotectAgents": agent,
        "marsAgents": _component(e, a, "marsAgents", a.name),
        "dras": dra,
    }


def fabric(e: Engine) -> dict:
    est, site = e.estate, e.estate.modernized
    comps = [appliance_components(e, a) for a in est.appliances]
    errors = [err for a in est.appliances for err in appliance_health(e, a)[1]]
    agents = [
        {
            "agentId": str(uuid.uuid5(_NS, f"agent|{v.name}")),
            "machineId": str(uuid.uuid5(_NS, f"machine|{v.name}")),
            "biosId": str(uuid.uuid5(_NS, f"bios|{v.name}")),
            "fqdn": f"{v.vcenter_vm.lower()}.example.local",
            "disks": [
                {
                    "diskId": str(uuid.uuid5(_NS, f"disk|{v.name}|{d}")),
                    "diskName": f"{v.vcenter_vm}_disk{d}",
                    "isOSDisk": "true" if d == 0 else "false",
                    "capacityInBytes": v.disks_gb * _GB,
                    "lunId": d,
                }
                for d in range(v.disks)
            ],
        }
        for v in est.vms
        if v.provider == "modernized"
    ]
    return clean(
        {
            "id": e.rcm_fabric_id,
            "name": site.fabric,
            "type": T_FABRIC,
            "location": est.vault.location,
            "properties": {
                "friendlyName": site.vmware_site,
                "internalIdentifier": str(uuid.uuid5(_NS, f"fabric|{site.fabric}")),
                "bcdrState": "Valid",
                "health": "Normal" if not errors else "Warning",
                "healthErrorDetails": errors,
                "customDetails": {
                    "instanceType": "InMageRcm",
                    "vmwareSiteId": e.vmware_site_id,
                    "physicalSiteId": e.vmware_site_id.replace("/VMwareSites/", "/ServerSites/"),
                    "serviceEndpoint": f"https://{est.vault.location}-rcm.example.net",
                    "serviceResourceId": str(uuid.uuid5(_NS, f"service|{site.fabric}")),
                    "serviceContainerId": str(uuid.uuid5(_NS, f"container|{site.fabric}")),
                    "dataPlaneUri": f"https://{est.vault.location}-rcm-dp.example.net",
                    "controlPlaneUri": f"https://{est.vault.location}-rcm-cp.example.net",
                    "sourceAgentIdentityDetails": {
                        "tenantId": str(uuid.uuid5(_NS, "tenant")),
                        "applicationId": str(uuid.uuid5(_NS, "application")),
                        "objectId": str(uuid.uuid5(_NS, "object")),
                        "audience": "https://rcm.example.net",
                        "aadAuthority": "https://login.microsoftonline.com",
                    },
                    **{k: [c[k] for c in comps] for k in ("processServers", "rcmProxies", "pushInstallers")},
                    **{
                        k: [c[k] for c in comps]
                        for k in ("replicationAgents", "reprotectAgents", "marsAgents")
                    },
                    "dras": [c["dras"] for c in comps],
                    "agentDetails": agents,
                },
            },
        }
    )


def appliances(e: Engine) -> list[dict]:
    """``ReplicationAppliances_List``: one entry per appliance (``InMageRcmApplianceSpecificDetails``)."""
    out = []
    for a in e.estate.appliances:
        c = appliance_components(e, a)
        one = {
            "id": str(uuid.uuid5(_NS, f"appliance|{a.name}")),
            "name": a.name,
            "fabricArmId": e.rcm_fabric_id,
            "processServer": c["processServers"],
            "rcmProxy": c["rcmProxies"],
            "pushInstaller": c["pushInstallers"],
            "replicationAgent": c["replicationAgents"],
            "reprotectAgent": c["reprotectAgents"],
            "marsAgent": c["marsAgents"],
            "dra": c["dras"],
            "switchProviderBlockingErrorDetails": [],
        }
        out.append(
            clean(
                {
                    "properties": {
                        "providerSpecificDetails": {"instanceType": "InMageRcm", "appliances": [one]}
                    }
                }
            )
        )
    return out


def container(e: Engine) -> dict:
    site = e.estate.modernized
    return {
        "id": e.rcm_container_id,
        "name": site.container,
        "type": T_CONTAINER,
        "location": e.estate.vault.location,
        "properties": {
            "fabricFriendlyName": site.vmware_site,
            "friendlyName": site.container,
            "fabricType": "InMageRcm",
            "protectedItemCount": sum(1 for v in e.estate.vms if v.provider == "modernized"),
            "pairingStatus": "Paired",
            "role": "Primary",
        },
    }


def vcenter(e: Engine) -> dict:
    """The vCenter the appliances discovered (under the InMageRcm fabric)."""
    est = e.estate
    first, accounts = (est.appliances[0].name if est.appliances else None), est.modernized.run_as_accounts
    return vcenter_body(
        est.vcenter,
        now=e.clock.now(),
        fabric_id=e.rcm_fabric_id,
        fabric=est.modernized.fabric,
        location=est.vault.location,
        process_server_id=e.component_id(first, "processServers") if first else None,
        run_as_account_id=e.run_as_id(accounts[0]) if accounts else None,
        seen_by="The replication appliances",
    )


def providers(e: Engine) -> list[dict]:
    """Each appliance's DRA as a recovery services provider of the InMageRcm fabric."""
    est = e.estate
    out = []
    for a in est.appliances:
        out.append(
            {
                "id": f"{e.rcm_fabric_id}/replicationRecoveryServicesProviders/{a.name}",
                "name": a.name,
                "type": T_PROVIDER,
                "location": est.vault.location,
                "properties": {
                    "fabricType": "InMageRcm",
                    "friendlyName": a.name,
                    "providerVersion": a.version,
                    "serverVersion": a.version,
                    "providerVersionState": "Latest",
                    "fabricFriendlyName": est.modernized.vmware_site,
                    "lastHeartBeat": iso(_heartbeat(e, a)),
                    "connectionStatus": "Connected" if a.connected else "NotConnected",
                    "protectedItemCount": _items_on(e, a, _FORWARD | _REVERSE),
                    "allowedScenarios": [],
                    "healthErrorDetails": appliance_health(e, a)[1],
                    "draIdentifier": e.component_id(a.name, "dras"),
                    "machineName": a.name,
                    "biosId": str(uuid.uuid5(_NS, f"bios|{a.name}")),
                },
            }
        )
    return out


# -- policies ---------------------------------------------------------------------------------------------
def policies(e: Engine, *, classic: bool, modernized: bool) -> list[dict]:
    gen, site = e.estate.recovery_points, e.estate.modernized
    crash, app, history = int(gen.crash_every // 60), int(gen.app_every // 60), int(gen.retention // 60)
    details: list[tuple[str, dict]] = []
    if classic:
        details += [
            (
                "policy-failback",
                {
                    "instanceType": "InMage",
                    "recoveryPointThresholdInMinutes": 15,
                    "recoveryPointHistory": history,
                    "appConsistentFrequencyInMinutes": app,
                    "multiVmSyncStatus": "Enabled",
                },
            ),
            (
                "policy-to-azure",
                {
                    "instanceType": "InMageAzureV2",
                    "crashConsistentFrequencyInMinutes": crash,
                    "recoveryPointThresholdInMinutes": 15,
                    "recoveryPointHistory": history,
                    "appConsistentFrequencyInMinutes": app,
                    "multiVmSyncStatus": "Enabled",
                },
            ),
        ]
    if modernized:
        details += [
            (
                site.policy_to_azure,
                {
                    "instanceType": "InMageRcm",
                    "recoveryPointHistoryInMinutes": history,
                    "appConsistentFrequencyInMinutes": app,
                    "crashConsistentFrequencyInMinutes": crash,
                    "enableMultiVmSync": "True",
                },
            ),
            (
                site.policy_failback,
                {
                    "instanceType": "InMageRcmFailback",
                    "appConsistentFrequencyInMinutes": app,
                    "crashConsistentFrequencyInMinutes": crash,
                },
            ),
        ]
    return [
        {
            "id": e.policy_id(name),
            "name": name,
            "type": T_POLICY,
            "location": e.estate.vault.location,
            "properties": {"friendlyName": name, "providerSpecificDetails": d},
        }
        for name, d in details
    ]


# -- protected items -----------------------------------------------------------------------------------------
def replication_progress(e: Engine, it: Item) -> tuple[int, bool]:
    """(percent, running) of the reprotect's initial replication / resync the item shows."""
    job = e.jobs.get(it.reprotect_job) if it.reprotect_job else None
    if job is None or not job.running:
        return 100, False
    begin = job.start + timedelta(seconds=job.duration * 0.2)
    end = job.start + timedelta(seconds=job.duration)
    frac = (e.clock.now() - begin) / (end - begin) if end > begin else 1.0
    return max(0, min(99, int(frac * 100))), True


def _discovered(e: Engine, it: Item) -> dict:
    vm = e.vm_of(it)
    state = e.site.read_state([vm.vcenter_vm]).vms.get(vm.vcenter_vm) if e.estate.vcenter.connected else None
    now = e.clock.now()
    present = bool(state and state.present)
    return {
        "vCenterId": e.rcm_vcenter_id(),
        "vCenterFqdn": e.estate.vcenter.host,
        "datastores": [it.datastore or vm.datastore],
        "ipAddresses": [state.guest_ip] if state and state.guest_ip else [],
        "vmwareToolsStatus": "OK"
        if state and state.tools_running_status == "guestToolsRunning"
        else "NotRunning",
        "powerStatus": ("ON" if state.power_state == "poweredOn" else "OFF")
        if present and state
        else "Unknown",
        "vmFqdn": f"{vm.vcenter_vm.lower()}.example.local",
        "osName": vm.os_version,
        "createdTimestamp": iso(e.clock.start - timedelta(days=30)),
        "updatedTimestamp": iso(now),
        "isDeleted": not present,
        "lastDiscoveryTimeInUtc": iso(now),
    }


def _agent_heartbeat(e: Engine, it: Item) -> datetime | None:
    """The mobility agent replicating the item: on the Azure VM while it exists, else on the on-prem VM."""
    hb = e.agent_heartbeat(it)
    if hb is not None:
        return hb
    vm = e.vm_of(it)
    on_at = e.site.powered_on_at(vm.vcenter_vm) if e.site.exists(vm.vcenter_vm) else None
    return e.clock.now() - timedelta(seconds=60) if on_at else None


def _agent(e: Engine, it: Item) -> dict:
    return {
        "version": AGENT_VERSION,
        "latestVersion": AGENT_VERSION,
        "driverVersion": AGENT_VERSION,
        "latestUpgradableVersionWithoutReboot": AGENT_VERSION,
        "agentVersionExpiryDate": iso(e.clock.start + timedelta(days=365)),
        "driverVersionExpiryDate": iso(e.clock.start + timedelta(days=365)),
        "lastHeartbeatUtc": iso(_agent_heartbeat(e, it)),
        "reasonsBlockingUpgrade": ["AlreadyOnLatestVersion"],
        "isUpgradeable": "False",
    }


def failback_details(e: Engine, it: Item) -> dict:
    """``InMageRcmFailbackReplicationDetails``: the item while it replicates (and fails) back to on-prem."""
    vm = e.vm_of(it)
    pct, running = replication_progress(e, it)
    size = vm.disks_gb * _GB
    done = size * pct // 100
    health = "InProgress" if running else "None"
    sync = {
        "progressHealth": health,
        "transferredBytes": done,
        "last15MinutesTransferredBytes": min(done, 4 * _GB),
        "lastDataTransferTimeUtc": iso(e.clock.now()),
        "processedBytes": done,
        "startTime": iso(e.jobs[it.reprotect_job].start) if it.reprotect_job in e.jobs else None,
        "lastRefreshTime": iso(e.clock.now()),
        "progressPercentage": pct,
    }
    disks = [
        {
            "diskId": str(uuid.uuid5(_NS, f"disk|{vm.name}|{d}")),
            "diskName": f"{vm.vcenter_vm}_disk{d}",
            "isOSDisk": "True" if d == 0 else "False",
            "capacityInBytes": size,
            "diskUuid": str(uuid.uuid5(_NS, f"diskuuid|{vm.name}|{d}")),
            "dataPendingInLogDataStoreInMB": 0.0,
            "dataPendingAtSourceAgentInMB": 0.0,
            "isInitialReplicationComplete": "False" if running else "True",
            ("irDetails" if it.alternate else "resyncDetails"): sync,
            "lastSyncTime": iso(e.clock.now()),
        }
        for d in range(vm.disks)
    ]
    progress = (
        {
            "initialReplicationProgressPercentage": pct,
            "initialReplicationProcessedBytes": done,
            "initialReplicationTransferredBytes": done,
            "initialReplicationProgressHealth": health,
        }
        if it.alternate
        else {
            "resyncProgressPercentage": pct,
            "resyncProcessedBytes": done,
            "resyncTransferredBytes": done,
            "resyncProgressHealth": health,
            "resyncState": "StartedResynchronization" if running else "None",
        }
    )
    policy = it.policy or e.estate.modernized.policy_failback
    return {
        "instanceType": "InMageRcmFailback",
        "internalIdentifier": it.name,
        "azureVirtualMachineId": e.azure_vm_id(vm.name) if it.azure_vm in ("running", "stopped") else None,
        "multiVmGroupName": vm.replication_group,
        "reprotectAgentId": e.component_id(vm.appliance, "reprotectAgents") if vm.appliance else None,
        "reprotectAgentName": vm.appliance,
        "osType": "Windows" if vm.os == "windows" else "Linux",
        "logStorageAccountId": e.log_storage_id,
        "targetvCenterId": e.rcm_vcenter_id(),
        "targetDataStoreName": it.datastore or vm.datastore,
        "targetVmName": vm.vcenter_vm,
        **progress,
        "resyncRequired": "false",
        "protectedDisks": disks,
        "mobilityAgentDetails": _agent(e, it),
        "vmNics": [
            {
                "macAddress": _mac(vm.name),
                "networkName": "VM Network",
                "adapterType": "Vmxnet3",
                "sourceIpAddress": vm.ip,
            }
        ],
        "lastPlannedFailoverStartTime": iso(it.planned_failover_start),
        "lastPlannedFailoverStatus": it.planned_failover_status,
        "discoveredVmDetails": _discovered(e, it),
        "lastUsedPolicyId": e.policy_id(policy),
        "lastUsedPolicyFriendlyName": policy,
        "isAgentRegistrationSuccessfulAfterFailover": vm.agent_registered_after_failover,
    }


def forward_details(e: Engine, it: Item, newest: SimPoint | None) -> dict:
    """``InMageRcmReplicationDetails``: the item replicating (or failed over) on-prem -> Azure."""
    est, now = e.estate, e.clock.now()
    vm = e.vm_of(it)
    rg = e.azure_vm_id("x").rsplit("/providers/", 1)[0]
    failed_over = vm.phase == Phase.failed_over_to_azure
    disks = [
        {
            "diskId": str(uuid.uuid5(_NS, f"disk|{vm.name}|{d}")),
            "diskName": f"{vm.vcenter_vm}_disk{d}",
            "isOSDisk": "True" if d == 0 else "False",
            "capacityInBytes": vm.disks_gb * _GB,
            "diskState": "Protected",
            "logStorageAccountId": e.log_storage_id,
            "seedManagedDiskId": f"{rg}/providers/Microsoft.Compute/disks/{vm.name}-seed-{d}",
            "targetManagedDiskId": f"{rg}/providers/Microsoft.Compute/disks/{vm.name}-disk{d}",
            "diskType": "Premium_LRS",
            "dataPendingInLogDataStoreInMB": 0.0,
            "dataPendingAtSourceAgentInMB": 0.0,
            "isInitialReplicationComplete": "True",
        }
        for d in range(vm.disks)
    ]
    return {
        "instanceType": "InMageRcm",
        "internalIdentifier": it.name,
        "fabricDiscoveryMachineId": f"{e.vmware_site_id}/machines/{uuid.uuid5(_NS, f'machine|{vm.name}')}",
        "multiVmGroupName": vm.replication_group,
        "discoveryType": "Physical" if vm.machine_type == "physical" else "vCenter",
        "processServerId": e.component_id(vm.appliance, "processServers") if vm.appliance else None,
        "processorCoreCount": 2,
        "allocatedMemoryInMB": 8192.0,
        "processServerName": vm.appliance,
        "runAsAccountId": e.run_as_id(est.modernized.run_as_accounts[0])
        if est.modernized.run_as_accounts
        else None,
        "osType": "Windows" if vm.os == "windows" else "Linux",
        "firmwareType": "BIOS",
        "primaryNicIpAddress": vm.ip,
        "targetGeneration": "1",
        "licenseType": "NoLicenseType",
        "storageAccountId": e.log_storage_id,
        "targetVmName": vm.name,
        "targetVmSize": "Standard_D2s_v3",
        "targetResourceGroupId": rg,
        "targetLocation": est.vault.location,
        "targetNetworkId": f"{rg}/providers/Microsoft.Network/virtualNetworks/vnet-dr",
        "testNetworkId": it.test_network,
        "failoverRecoveryPointId": e.point_id(it, it.failover_point) if it.failover_point else None,
        "lastRecoveryPointReceived": iso(newest.time) if newest else None,
        "lastRpoInSeconds": int((now - newest.time).total_seconds()) if newest else None,
        "lastRpoCalculatedTime": iso(now),
        "lastRecoveryPointId": e.point_id(it, newest.name) if newest else None,
        "initialReplicationProgressPercentage": 100,
        "initialReplicationProgressHealth": "None",
        "resyncRequired": "false",
        "resyncState": "None",
        "agentUpgradeState": "None",
        "protectedDisks": disks,
        "unprotectedDisks": [],
        "isLastUpgradeSuccessful": "True",
        "isAgentRegistrationSuccessfulAfterFailover": vm.agent_registered_after_failover
        if failed_over
        else None,
        "mobilityAgentDetails": {
            **_agent(e, it),
            "osFamilyName": "Windows" if vm.os == "windows" else "Linux",
            "isAgentUpgradeable": False,
            "isAgentReinstallRequired": False,
        },
        "vmNics": [
            {
                "nicId": _mac(vm.name),
                "isPrimaryNic": "true",
                "isSelectedForFailover": "true",
                "sourceIPAddress": vm.ip,
                "sourceIPAddressType": "Static" if vm.ip_config == "static" else "Dynamic",
                "sourceNetworkId": "VM Network",
                "targetIPAddressType": "Dynamic",
                "targetSubnetName": "default",
                "testSubnetName": "default",
            }
        ],
        "discoveredVmDetails": _discovered(e, it),
        "osName": vm.os_version,
    }


def _mac(name: str) -> str:
    h = uuid.uuid5(_NS, f"mac|{name}").bytes
    return "00:50:56:" + ":".join(f"{b:02x}" for b in h[:3])


def item_health_errors(e: Engine, it: Item) -> list[dict]:
    """Health errors only the modernized stack raises on an item: its mobility agent after the failover (not
    registered, or a stale heartbeat) and the appliance replicating it."""
    vm, now = e.vm_of(it), e.clock.now()
    out = []
    if it.azure_vm in ("running", "stopped"):
        if not vm.agent_registered_after_failover:
            out.append(
                health_error(
                    "AgentNotRegisteredAfterFailover",
                    "The mobility agent did not register after the failover",
                    f"The mobility agent on the Azure VM of '{vm.name}' did not register with the appliance "
                    "after the failover; reprotect to on-premises will fail",
                    now,
                    it.name,
                    source="ReplicationProtectedItem",
                    action="Keep the Azure VM running with the mobility service up and the required URLs "
                    "reachable.",
                )
            )
        hb = e.agent_heartbeat(it)
        if hb is not None and now - hb > timedelta(seconds=STALE_HEARTBEAT):
            out.append(
                health_error(
                    "MobilityAgentHeartbeatStale",
                    "No heartbeat from the mobility agent",
                    f"The mobility agent on the Azure VM of '{vm.name}' last sent a heartbeat at {iso(hb)}",
                    now,
                    it.name,
                    source="ReplicationProtectedItem",
                )
            )
    if vm.appliance:
        out += appliance_health(e, e.estate.appliance(vm.appliance))[1]
    return out
