"""SDK models → drplan value types. Nothing outside :mod:`drplan.asr` ever sees an SDK model."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from drplan.values import ItemRef, ItemState, Job, JobStatus, RecoveryPoint

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
    )


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
