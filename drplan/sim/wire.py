"""Wire helpers shared by the simulator's JSON bodies: times, None-free dicts, ARM and health errors."""

from __future__ import annotations

from datetime import datetime

from drplan.sim.estate import VCenter

T_FABRIC = "Microsoft.RecoveryServices/vaults/replicationFabrics"
T_CONTAINER = f"{T_FABRIC}/replicationProtectionContainers"
T_ITEM = f"{T_CONTAINER}/replicationProtectedItems"
T_POINT = f"{T_ITEM}/recoveryPoints"
T_VCENTER = f"{T_FABRIC}/replicationvCenters"
T_PROVIDER = f"{T_FABRIC}/replicationRecoveryServicesProviders"
T_JOB = "Microsoft.RecoveryServices/vaults/replicationJobs"
T_PLAN = "Microsoft.RecoveryServices/vaults/replicationRecoveryPlans"
AZURE = "Microsoft Azure"
IDLE_TIME = "1753-01-01T01:01:01Z"
T_POLICY = "Microsoft.RecoveryServices/vaults/replicationPolicies"


def iso(t: datetime | None) -> str | None:
    if t is None:
        return None
    return t.isoformat().replace("+00:00", "Z")


def clean(d):
    """Drop ``None`` values recursively (the SDK omits them too)."""
    if isinstance(d, dict):
        return {k: clean(v) for k, v in d.items() if v is not None}
    if isinstance(d, list):
        return [clean(v) for v in d]
    return d


def error(code: str, message: str, details: list[tuple[str, str]] | None = None) -> dict:
    body: dict = {"code": code, "message": message}
    if details and len(details) > 1:
        body["details"] = [{"code": c, "message": m} for c, m in details]
    return {"error": body}


def health_error(
    code: str,
    summary: str,
    message: str,
    now: datetime,
    entity: str,
    *,
    source: str = "ConfigurationServer",
    causes: str | None = None,
    action: str | None = None,
) -> dict:
    return clean(
        {
            "errorSource": source,
            "errorType": "Error",
            "errorLevel": "Error",
            "errorCategory": "Configuration",
            "errorCode": code,
            "summaryMessage": summary,
            "errorMessage": message,
            "possibleCauses": causes,
            "recommendedAction": action,
            "creationTimeUtc": iso(now),
            "entityId": entity,
            "innerHealthErrors": [],
        }
    )


def vcenter_body(
    vc: VCenter,
    *,
    now: datetime,
    fabric_id: str,
    fabric: str,
    location: str,
    process_server_id: str | None,
    run_as_account_id: str | None,
    seen_by: str,
) -> dict:
    """A ``VCenter`` resource of one fabric (the vCenter its process server discovered)."""
    errs = (
        []
        if vc.connected
        else [
            health_error(
                "VCenterNotConnected",
                "vCenter is not reachable",
                f"{seen_by} cannot reach vCenter {vc.host}",
                now,
                vc.name,
            )
        ]
    )
    return clean(
        {
            "id": f"{fabric_id}/replicationvCenters/{vc.name}",
            "name": vc.name,
            "type": T_VCENTER,
            "location": location,
            "properties": {
                "friendlyName": vc.name,
                "internalId": vc.name,
                "lastHeartbeat": iso(now),
                "discoveryStatus": "Completed" if vc.connected else "Failed",
                "processServerId": process_server_id,
                "ipAddress": vc.host,
                "infrastructureId": f"vcenter-{vc.name}",
                "port": str(vc.port),
                "runAsAccountId": run_as_account_id,
                "fabricArmResourceName": fabric,
                "healthErrors": errs,
            },
        }
    )
