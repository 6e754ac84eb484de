"""SDK models → drplan value types. Nothing outside :mod:`drplan.asr` ever sees an SDK model."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, overload

from drplan.observed import (
    ApplianceInfo,
    AzureVmState,
    ConfigurationServerInfo,
    DiscoveredVCenter,
    Infrastructure,
    ItemRef,
    ItemState,
    Job,
    JobStatus,
    MasterTargetInfo,
    ModernizedInfrastructure,
    PolicyInfo,
    ProcessServerInfo,
    RecoveryPoint,
)

_FABRIC = re.compile(r"/replicationFabrics/([^/]+)", re.I)
_CONTAINER = re.compile(r"/replicationProtectionContainers/([^/]+)", re.I)
_JOB_FROM_LOCATION = re.compile(
    r"/(?:operationresults|replicationOperationStatus|replicationJobs)/([^/?#]+)", re.I
)


def last_segment(arm_id: str | None) -> str | None:
    """``…/replicationJobs/abc`` → ``abc``; ``None`` for empty ids and ASR's idle ``…/None``."""
    if not arm_id:
        return None
    name = arm_id.rstrip("/").rsplit("/", 1)[-1]
    return None if name.lower() in ("", "none") else name


def job_name_from_location(url: str | None) -> str | None:
    """The job name in a 202's ``Location`` (``…/operationresults/{job}?…``), as PowerShell reads it."""
    if not url:
        return None
    m = _JOB_FROM_LOCATION.search(url)
    return m.group(1) if m else None


def fabric_and_container(arm_id: str) -> tuple[str, str]:
    f, c = _FABRIC.search(arm_id or ""), _CONTAINER.search(arm_id or "")
    return (f.group(1) if f else ""), (c.group(1) if c else "")


def _get(obj: Any, attr: str, wire: str | None = None) -> Any:
    """Attribute of an SDK model, or its raw wire key (models are MutableMappings) when the class lacks it."""
    if obj is None:
        return None
    value = getattr(obj, attr, None)
    if value is None and wire is not None and hasattr(obj, "get"):
        value = obj.get(wire)
    return value


@overload
def _utc(t: datetime) -> datetime: ...
@overload
def _utc(t: None) -> None: ...
def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def item_ref(item: Any) -> ItemRef:
    fabric, container = fabric_and_container(item.id or "")
    return ItemRef(
        vm=item.properties.friendly_name, fabric=fabric, container=container, item=item.name, id=item.id
    )


def item_state(item: Any, ref: ItemRef | None = None) -> ItemState:
    p = item.properties
    details = p.provider_specific_details
    provider = _get(details, "instance_type", "instanceType") or ""
    scenario = p.current_scenario
    scenario_name = _get(scenario, "scenario_name", "scenarioName")
    job = last_segment(_get(scenario, "job_id", "jobId"))
    if scenario_name and scenario_name.lower() == "none":
        scenario_name = None
    os_type = _get(details, "os_type", "osType")
    if os_type is None:
        os_type = _get(_get(details, "os_details", "osDetails"), "os_type", "osType")
    return ItemState(
        ref=ref or item_ref(item),
        friendly_name=p.friendly_name or "",
        protection_state=p.protection_state or "",
        replication_health=p.replication_health or "",
        allowed_operations=tuple(p.allowed_operations or ()),
        active_location=p.active_location,
        provider=provider,
        current_job=job if scenario_name else None,
        current_scenario=scenario_name if job else None,
        failover_recovery_point_id=p.failover_recovery_point_id,
        last_successful_failover_time=_utc(p.last_successful_failover_time),
        multi_vm_group=_get(details, "multi_vm_group_name", "multiVmGroupName"),
        os_type=os_type,
        os_version=_get(details, "os_version", "osVersion"),
        discovery_type=_get(details, "discovery_type", "discoveryType"),
        master_target_id=_get(details, "master_target_id", "masterTargetId"),
        health_errors=health_errors(p.health_errors),
        **_modernized(details, provider),
    )


def _percent(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _bool(value: Any) -> bool | None:
    if value is None:
        return None
    return _truthy(value)


def _modernized(details: Any, provider: str) -> dict[str, Any]:
    """Fields of :class:`ItemState` only the modernized providers report (InMageRcm, InMageRcmFailback)."""
    kind = provider.lower()
    if kind not in ("inmagercm", "inmagercmfailback"):
        return {}
    back = kind == "inmagercmfailback"
    agent = _get(details, "mobility_agent_details", "mobilityAgentDetails")
    disks = _get(details, "protected_disks", "protectedDisks")
    complete = [
        _get(d, "is_initial_replication_complete", "isInitialReplicationComplete") for d in disks or ()
    ]
    return {
        "last_point_received": _utc(
            _get(details, "last_recovery_point_received", "lastRecoveryPointReceived")
        ),
        "agent_registered_after_failover": _bool(
            _get(
                details,
                "is_agent_registration_successful_after_failover",
                "isAgentRegistrationSuccessfulAfterFailover",
            )
        ),
        "agent_heartbeat": _utc(_get(agent, "last_heartbeat_utc", "lastHeartbeatUtc")),
        "initial_replication_progress": _percent(
            _get(details, "initial_replication_progress_percentage", "initialReplicationProgressPercentage")
        ),
        "resync_progress": _percent(_get(details, "resync_progress_percentage", "resyncProgressPercentage")),
        "initial_replication_complete": all(_truthy(c) for c in complete)
        if complete and all(c is not None for c in complete)
        else None,
        "appliance_id": _get(details, "reprotect_agent_id", "reprotectAgentId")
        if back
        else _get(details, "process_server_id", "processServerId"),
        "appliance_name": _get(details, "reprotect_agent_name", "reprotectAgentName")
        if back
        else _get(details, "process_server_name", "processServerName"),
        "disk_count": len(disks) if disks is not None else None,
        "target_datastore": _get(details, "target_data_store_name", "targetDataStoreName") if back else None,
        "target_vm_name": _get(details, "target_vm_name", "targetVmName"),
        "azure_vm_id": _get(details, "azure_virtual_machine_id", "azureVirtualMachineId") if back else None,
        "last_planned_failover_status": _get(
            details, "last_planned_failover_status", "lastPlannedFailoverStatus"
        ),
        "last_planned_failover_start": _utc(
            _get(details, "last_planned_failover_start_time", "lastPlannedFailoverStartTime")
        ),
        "policy_id": _get(details, "last_used_policy_id", "lastUsedPolicyId"),
        "azure_resource_group": _resource_group(
            _get(details, "azure_virtual_machine_id", "azureVirtualMachineId")
            if back
            else _get(details, "target_resource_group_id", "targetResourceGroupId")
        ),
    }


_RG = re.compile(r"/resourceGroups/([^/]+)", re.I)


def _resource_group(arm_id: str | None) -> str | None:
    m = _RG.search(arm_id or "")
    return m.group(1) if m else None


def health_errors(errors: Any) -> tuple[str, ...]:
    """``HealthError`` models as ``"ErrorCode: message"`` strings."""
    out = []
    for e in errors or ():
        code = _get(e, "error_code", "errorCode") or "HealthError"
        text = _get(e, "error_message", "errorMessage") or _get(e, "summary_message", "summaryMessage") or ""
        out.append(f"{code}: {text}".strip())
    return tuple(out)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def recovery_point(model: Any) -> RecoveryPoint:
    p = model.properties
    details = p.provider_specific_details
    kind = (p.recovery_point_type or "").lower()
    return RecoveryPoint(
        id=model.id or model.name,
        time=_utc(p.recovery_point_time),
        app_consistent=kind.startswith("app"),
        multi_vm_sync=_truthy(_get(details, "is_multi_vm_sync_point", "isMultiVmSyncPoint")),
    )


def _status(state: str | None) -> JobStatus:
    try:
        return JobStatus(state or "Other")
    except ValueError:
        return JobStatus.other


def job_errors(props: Any) -> tuple[str, ...]:
    out = []
    for err in props.errors or ():
        service = _get(err, "service_error_details", "serviceErrorDetails")
        provider = _get(err, "provider_error_details", "providerErrorDetails")
        if service is not None and (service.code or service.message):
            out.append(f"{service.code or 'Error'}: {service.message or ''}".strip())
        if provider is not None and (provider.error_message or provider.error_code):
            out.append(f"{provider.error_code or 'ProviderError'}: {provider.error_message or ''}".strip())
    return tuple(out)


def job(model: Any) -> Job:
    p = model.properties
    return Job(
        name=model.name,
        scenario=p.scenario_name or "",
        state=_status(p.state),
        target=p.target_object_name,
        start=_utc(p.start_time),
        end=_utc(p.end_time),
        errors=job_errors(p),
    )


# -- infrastructure (VMware fabrics: configuration server, master targets, process servers) ------------------
def _fabric_of(arm_id: str | None) -> str:
    m = _FABRIC.search(arm_id or "")
    return m.group(1).lower() if m else ""


def _newest(*times: datetime | None) -> datetime | None:
    known = [_utc(t) for t in times if t is not None]
    return max(known) if known else None


def _configuration_server(fabric: Any, details: Any, providers: list[Any]) -> ConfigurationServerInfo:
    mine = [p for p in providers if _fabric_of(p.id) == (fabric.name or "").lower()]
    statuses = [(p.properties.connection_status or "") for p in mine if p.properties is not None]
    connection = (
        "Connected" if "connected" in {s.lower() for s in statuses} else (statuses or ["NoProvider"])[0]
    )
    heartbeat = _get(details, "last_heartbeat", "lastHeartbeat") or _newest(
        *(p.properties.last_heart_beat for p in mine if p.properties is not None)
    )
    return ConfigurationServerInfo(
        name=fabric.properties.friendly_name or _get(details, "host_name", "hostName") or fabric.name,
        fabric=fabric.name,
        connection_status=connection,
        service_status=_get(details, "cs_service_status", "csServiceStatus") or "",
        last_heartbeat=_utc(heartbeat),
    )


def _master_target(model: Any, fabric: str) -> MasterTargetInfo:
    return MasterTargetInfo(
        name=model.name or "",
        id=model.id or "",
        os_type=model.os_type,
        os_version=model.os_version,
        fabric=fabric,
        retention_volumes=tuple(v.volume_name for v in model.retention_volumes or () if v.volume_name),
        datastores=tuple(d.symbolic_name for d in model.data_stores or () if d.symbolic_name),
        last_heartbeat=_utc(model.last_heartbeat),
    )


def _process_server(model: Any, fabric: str) -> ProcessServerInfo:
    return ProcessServerInfo(
        name=model.friendly_name or "",
        id=model.id or "",
        fabric=fabric,
        os_type=model.os_type,
        last_heartbeat=_utc(model.last_heartbeat),
    )


def infrastructure(
    fabrics: list[Any], providers: list[Any], read_at: datetime | None = None
) -> Infrastructure:
    """The VMware fabrics' configuration servers, master targets and process servers."""
    servers, mts, pss = [], [], []
    for fabric in fabrics:
        details = fabric.properties.custom_details if fabric.properties is not None else None
        if details is None or (_get(details, "instance_type", "instanceType") or "").lower() != "vmware":
            continue
        servers.append(_configuration_server(fabric, details, providers))
        mts += [_master_target(x, fabric.name) for x in details.master_target_servers or ()]
        pss += [_process_server(x, fabric.name) for x in details.process_servers or ()]
    return Infrastructure(tuple(servers), tuple(mts), tuple(pss), read_at=_utc(read_at))


# -- the modernized side (InMageRcm fabrics: replication appliances and their components) --------------------
_HEALTH_ORDER = {"normal": 0, "none": 0, "": 0, "warning": 1, "critical": 2}


def _worst(*healths: str | None) -> str:
    known = [h for h in healths if h]
    return max(known, key=lambda h: _HEALTH_ORDER.get(h.lower(), 1)) if known else ""


def _appliances(fabric: Any, details: Any, providers: list[Any]) -> list[ApplianceInfo]:
    """One :class:`ApplianceInfo` per appliance of an InMageRcm fabric: its components share its name."""
    groups = (
        "process_servers",
        "rcm_proxies",
        "push_installers",
        "replication_agents",
        "reprotect_agents",
        "mars_agents",
        "dras",
    )
    by_name: dict[str, dict[str, Any]] = {}
    for group in groups:
        for comp in _get(details, group) or ():
            by_name.setdefault(comp.name or "", {})[group] = comp
    status = {
        (p.properties.friendly_name or p.name or "").lower(): p.properties.connection_status or ""
        for p in providers
        if p.properties is not None and _fabric_of(p.id) == (fabric.name or "").lower()
    }
    out = []
    for name, comps in by_name.items():
        ps, agent = comps.get("process_servers"), comps.get("reprotect_agents")
        beats = [_utc(c.last_heartbeat_utc) for c in comps.values() if c.last_heartbeat_utc is not None]
        errors: list[str] = []
        for c in comps.values():
            for e in health_errors(c.health_errors):
                if e not in errors:
                    errors.append(e)
        out.append(
            ApplianceInfo(
                name=name,
                process_server_id=(ps.id if ps is not None else "") or "",
                reprotect_agent_id=(agent.id if agent is not None else "") or "",
                fabric=fabric.name or "",
                health=_worst(*(c.health for c in comps.values())),
                health_errors=tuple(errors),
                connection_status=status.get(name.lower(), ""),
                last_heartbeat=min(beats) if beats else None,
                datastores=tuple(agent.accessible_datastores or ()) if agent is not None else (),
                vcenter_id=(agent.vcenter_id if agent is not None else "") or "",
                version=(ps.version if ps is not None else "") or "",
            )
        )
    return out


def discovered_vcenter(model: Any) -> DiscoveredVCenter:
    p = model.properties
    return DiscoveredVCenter(
        name=model.name or "",
        id=model.id or "",
        fabric=fabric_and_container(model.id or "")[0],
        friendly_name=p.friendly_name or "",
        ip_address=p.ip_address or "",
        port=str(p.port or ""),
        run_as_account_id=p.run_as_account_id or "",
        process_server_id=p.process_server_id or "",
        discovery_status=p.discovery_status or "",
        last_heartbeat=_utc(p.last_heartbeat),
        health_errors=health_errors(p.health_errors),
    )


def policy(model: Any) -> PolicyInfo:
    details = model.properties.provider_specific_details if model.properties is not None else None
    return PolicyInfo(
        name=model.name or "",
        id=model.id or "",
        provider=_get(details, "instance_type", "instanceType") or "",
    )


def is_rcm_fabric(fabric: Any) -> bool:
    details = fabric.properties.custom_details if fabric.properties is not None else None
    return (_get(details, "instance_type", "instanceType") or "").lower() == "inmagercm"


def modernized_infrastructure(
    fabrics: list[Any],
    providers: list[Any],
    vcenters: list[Any],
    policies: list[Any],
    read_at: datetime | None = None,
) -> ModernizedInfrastructure:
    """Appliances of the vault's InMageRcm fabrics, the vCenters they discovered and the policies."""
    appliances: list[ApplianceInfo] = []
    site, names = "", []
    for fabric in fabrics:
        if not is_rcm_fabric(fabric):
            continue
        details = fabric.properties.custom_details
        names.append(fabric.name or "")
        site = site or _get(details, "vmware_site_id", "vmwareSiteId") or ""
        appliances += _appliances(fabric, details, providers)
    return ModernizedInfrastructure(
        appliances=tuple(appliances),
        vcenters=tuple(discovered_vcenter(v) for v in vcenters),
        policies=tuple(policy(p) for p in policies),
        vmware_site_id=site,
        fabrics=tuple(names),
        read_at=_utc(read_at),
    )


def azure_vm(name: str, model: Any) -> AzureVmState:
    """A compute ``VirtualMachine`` (with its instance view) as :class:`AzureVmState`."""
    view = _get(model, "instance_view") or _get(_get(model, "properties"), "instance_view")
    power, provisioning = "unknown", ""
    for st in _get(view, "statuses") or ():
        code = st.code or ""
        if code.startswith("PowerState/"):
            power = code.split("/", 1)[1]
        elif code.startswith("ProvisioningState/"):
            provisioning = code.split("/", 1)[1]
    agent = _get(view, "vm_agent")
    agent_statuses = _get(agent, "statuses") or ()
    return AzureVmState(
        name=name,
        exists=True,
        power_state=power,
        provisioning_state=provisioning or (_get(model, "provisioning_state") or ""),
        agent_status=(agent_statuses[0].display_status or "") if agent_statuses else "",
        agent_version=_get(agent, "vm_agent_version") or "",
        computer_name=_get(view, "computer_name") or "",
        id=_get(model, "id") or "",
    )
