"""Plain value types shared by the adapters, the policy and the flows (no SDK, no Prefect)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class RecoveryPoint:
    """One recovery point of one VM."""

    id: str  # the ASR recovery point name (used as Custom recoveryPointId: the full ARM id)
    time: datetime  # timezone-aware UTC
    app_consistent: bool
    multi_vm_sync: bool = False


@dataclass(frozen=True, slots=True)
class ItemRef:
    """Where a VM lives in the vault: fabric, protection container and protected item names."""

    vm: str  # friendly name, as in the plan
    fabric: str
    container: str
    item: str  # replicationProtectedItems/{item}
    id: str = ""  # full ARM id of the protected item


class Phase(StrEnum):
    """Where a protected item is in the failback lifecycle (Microsoft's failback doc)."""

    replicating_to_azure = "replicating-to-azure"
    failed_over_to_azure = "failed-over-to-azure"
    reprotected_to_onprem = "reprotected-to-onprem"  # ready to fail back
    failback_in_progress = "failback-in-progress"
    failed_back = "failed-back"  # commit pending
    committed = "committed"
    reprotected_to_azure = "reprotected-to-azure"
    unknown = "unknown"


@dataclass(frozen=True, slots=True)
class ItemState:
    """What drplan needs to know about a protected item, read in one GET."""

    ref: ItemRef
    friendly_name: str
    protection_state: str
    replication_health: str
    allowed_operations: tuple[str, ...]
    active_location: str | None
    provider: str  # "InMageAzureV2" (VMware->Azure) or "InMage" (Azure->VMware)
    current_job: str | None  # name of the running job (currentScenario.jobId), if any
    current_scenario: str | None
    failover_recovery_point_id: str | None = None
    last_successful_failover_time: datetime | None = None
    multi_vm_group: str | None = None
    os_type: str | None = None
    os_version: str | None = None  # providerSpecificDetails.osVersion, e.g. "Windows Server 2008 R2 SP1"
    discovery_type: str | None = None  # providerSpecificDetails.discoveryType: "vCenter" | "Physical"
    master_target_id: str | None = None  # providerSpecificDetails.masterTargetId (InMage)
    health_errors: tuple[str, ...] = ()  # the item's healthErrors as "ErrorCode: message"

    @property
    def health_codes(self) -> tuple[str, ...]:
        """The error codes of :attr:`health_errors`."""
        return tuple(e.split(":", 1)[0].strip() for e in self.health_errors)


@dataclass(frozen=True, slots=True)
class ConfigurationServerInfo:
    """The classic configuration server as the vault shows it (its VMware fabric and provider)."""

    name: str
    fabric: str  # ARM name of the VMware fabric
    connection_status: str = ""  # replicationRecoveryServicesProviders[].connectionStatus
    service_status: str = ""  # customDetails.csServiceStatus
    last_heartbeat: datetime | None = None  # customDetails.lastHeartbeat (the newest of CS and provider)

    @property
    def connected(self) -> bool:
        return self.connection_status.lower() == "connected" and self.service_status.lower() in (
            "",
            "running",
        )


@dataclass(frozen=True, slots=True)
class MasterTargetInfo:
    """A master target server registered with a configuration server."""

    name: str
    id: str  # the id ASR lists (and expects in InMageReprotectInput.masterTargetId)
    os_type: str | None = None  # "Windows" | "Linux"
    os_version: str | None = None
    fabric: str = ""
    retention_volumes: tuple[str, ...] = ()
    datastores: tuple[str, ...] = ()
    last_heartbeat: datetime | None = None


@dataclass(frozen=True, slots=True)
class ProcessServerInfo:
    """A process server registered with a configuration server."""

    name: str
    id: str  # the id ASR lists (and expects in processServerId)
    fabric: str = ""
    os_type: str | None = None
    last_heartbeat: datetime | None = None


@dataclass(frozen=True, slots=True)
class Infrastructure:
    """Configuration servers, master targets and process servers of the vault's VMware fabrics."""

    configuration_servers: tuple[ConfigurationServerInfo, ...] = ()
    master_targets: tuple[MasterTargetInfo, ...] = ()
    process_servers: tuple[ProcessServerInfo, ...] = ()
    read_at: datetime | None = None  # the reader's clock when the read started (heartbeat ages count from it)

    def master_target(self, name_or_id: str) -> MasterTargetInfo | None:
        """The master target with this name, or with this id (ids compare case-insensitively)."""
        return _lookup(self.master_targets, name_or_id)

    def process_server(self, name_or_id: str) -> ProcessServerInfo | None:
        """The process server with this name, or with this id (ids compare case-insensitively)."""
        return _lookup(self.process_servers, name_or_id)


def _lookup(servers, key: str):
    if not key:
        return None
    by_name = [s for s in servers if s.name == key]
    if by_name:
        return by_name[0]
    return next((s for s in servers if s.id and s.id.lower() == key.lower()), None)


class JobStatus(StrEnum):
    not_started = "NotStarted"
    in_progress = "InProgress"
    succeeded = "Succeeded"
    failed = "Failed"
    cancelled = "Cancelled"
    suspended = "Suspended"
    other = "Other"


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    scenario: str
    state: JobStatus
    target: str | None = None  # targetObjectName: the VM or plan
    start: datetime | None = None
    end: datetime | None = None
    errors: tuple[str, ...] = ()
    reused: bool = (
        False  # True when drplan did not start this job now: it was already running, or already done
    )

    @property
    def done(self) -> bool:
        return self.state in (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A named precondition check, so preflight can list every failure at once."""

    name: str  # e.g. "vcenter-connected", "master-target mt-win-01 has no snapshots"
    ok: bool
    message: str = ""
    subject: str = ""  # the VM, group or host the check is about
    rule: str = ""  # the failback doc rule, when the check comes from one


@dataclass(frozen=True, slots=True)
class VmState:
    """The on-prem view of one VM (or master target), as read from vCenter or the simulated estate."""

    name: str
    present: bool
    power_state: str = "unknown"  # poweredOn | poweredOff | suspended | unknown
    tools_running_status: str = "guestToolsNotRunning"
    tools_version_status: str = ""
    heartbeat: str = ""  # green | yellow | red | gray
    guest_ip: str | None = None
    instance_uuid: str | None = None
    has_snapshots: bool = False

    @property
    def booted(self) -> bool:
        return self.power_state == "poweredOn" and self.tools_running_status == "guestToolsRunning"


@dataclass(frozen=True, slots=True)
class SiteState:
    """One batched read of the on-prem site."""

    connected: bool
    vms: dict[str, VmState] = field(default_factory=dict)
    port_groups: frozenset[str] = frozenset()
    datastore_free_bytes: dict[str, int] = field(default_factory=dict)
