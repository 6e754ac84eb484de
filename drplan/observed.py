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
    # -- modernized providers (InMageRcm forward, InMageRcmFailback back); None on classic items -------------
    #: providerSpecificDetails.lastRecoveryPointReceived (InMageRcm): the newest point ASR holds
    last_point_received: datetime | None = None
    #: isAgentRegistrationSuccessfulAfterFailover: the mobility agent registered after the failover
    agent_registered_after_failover: bool | None = None
    #: mobilityAgentDetails.lastHeartbeatUtc: the agent replicating the item (the Azure VM's while it exists)
    agent_heartbeat: datetime | None = None
    #: the replication's progress in percent: initial replication (a new VM) or resync (changes only)
    initial_replication_progress: int | None = None
    resync_progress: int | None = None
    #: every protected disk reports isInitialReplicationComplete (None: not reported)
    initial_replication_complete: bool | None = None
    #: the appliance component replicating the item: processServerId/Name (InMageRcm) or
    #: reprotectAgentId/Name (InMageRcmFailback)
    appliance_id: str | None = None
    appliance_name: str | None = None
    disk_count: int | None = None  # protectedDisks
    target_datastore: str | None = None  # targetDataStoreName (InMageRcmFailback)
    target_vm_name: str | None = None  # the on-prem VM (InMageRcmFailback) or the Azure VM (InMageRcm)
    azure_vm_id: str | None = None  # azureVirtualMachineId (InMageRcmFailback, while the Azure VM exists)
    azure_resource_group: str | None = None  # where its Azure VM lives (targetResourceGroupId / the VM's id)
    last_planned_failover_status: str | None = None  # Succeeded | Failed | Cancelled | Unknown
    last_planned_failover_start: datetime | None = None
    policy_id: str | None = None  # lastUsedPolicyId (InMageRcmFailback)

    @property
    def health_codes(self) -> tuple[str, ...]:
        """The error codes of :attr:`health_errors`."""
        return tuple(e.split(":", 1)[0].strip() for e in self.health_errors)

    @property
    def family(self) -> str:
        """``"modernized"`` (InMageRcm / InMageRcmFailback), ``"classic"`` (InMage / InMageAzureV2) or
        ``"unknown"``, from ``providerSpecificDetails.instanceType``."""
        return provider_family(self.provider)


MODERNIZED_PROVIDERS = frozenset({"inmagercm", "inmagercmfailback"})
CLASSIC_PROVIDERS = frozenset({"inmage", "inmageazurev2"})


def provider_family(instance_type: str | None) -> str:
    """The provider family of an item's ``providerSpecificDetails.instanceType``."""
    key = (instance_type or "").lower()
    if key in MODERNIZED_PROVIDERS:
        return "modernized"
    if key in CLASSIC_PROVIDERS:
        return "classic"
    return "unknown"


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


@dataclass(frozen=True, slots=True)
class ApplianceInfo:
    """An ASR replication appliance (modernized) as the InMageRcm fabric lists it: one entry per appliance,
    with the ids of the components a request names (``processServerId``, ``reprotectAgentId``)."""

    name: str
    process_server_id: str = ""  # customDetails.processServers[].id (InMageRcmFailbackReprotectInput)
    reprotect_agent_id: str = ""  # customDetails.reprotectAgents[].id (InMageRcmReprotectInput)
    fabric: str = ""
    health: str = ""  # the worst health of its components: Normal | Warning | Critical
    health_errors: tuple[str, ...] = ()  # "ErrorCode: message"
    connection_status: str = ""  # its DRA as a recovery services provider: Connected | NotConnected
    last_heartbeat: datetime | None = None  # the oldest of its components' lastHeartbeatUtc
    datastores: tuple[str, ...] = ()  # reprotectAgents[].accessibleDatastores
    vcenter_id: str = ""  # reprotectAgents[].vcenterId: the vCenter it discovered
    version: str = ""

    @property
    def connected(self) -> bool:
        return self.connection_status.lower() in ("", "connected")

    @property
    def healthy(self) -> bool:
        return self.health.lower() in ("", "normal")


@dataclass(frozen=True, slots=True)
class DiscoveredVCenter:
    """A vCenter the appliances discovered (``replicationvCenters`` under the InMageRcm fabric)."""

    name: str
    id: str = ""
    fabric: str = ""
    friendly_name: str = ""
    ip_address: str = ""
    port: str = ""
    run_as_account_id: str = ""
    process_server_id: str = ""
    discovery_status: str = ""
    last_heartbeat: datetime | None = None
    health_errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """A replication policy: name, ARM id and provider (``InMageRcm``, ``InMageRcmFailback``, ...)."""

    name: str
    id: str
    provider: str = ""


@dataclass(frozen=True, slots=True)
class ModernizedInfrastructure:
    """The vault's modernized side: appliances (InMageRcm fabrics), discovered vCenters, policies."""

    appliances: tuple[ApplianceInfo, ...] = ()
    vcenters: tuple[DiscoveredVCenter, ...] = ()
    policies: tuple[PolicyInfo, ...] = ()
    vmware_site_id: str = ""  # customDetails.vmwareSiteId (run-as accounts live under it)
    fabrics: tuple[str, ...] = ()  # ARM names of the InMageRcm fabrics
    read_at: datetime | None = None

    def appliance(self, name_or_id: str) -> ApplianceInfo | None:
        """The appliance with this name, or one of whose components has this id (case-insensitive)."""
        if not name_or_id:
            return None
        key = name_or_id.lower()
        for a in self.appliances:
            if a.name.lower() == key or key in (a.process_server_id.lower(), a.reprotect_agent_id.lower()):
                return a
        return None

    def policy(self, name_or_id: str, provider: str | None = None) -> PolicyInfo | None:
        """The policy with this name or id (of ``provider`` when given)."""
        key = (name_or_id or "").lower()
        return next(
            (
                p
                for p in self.policies
                if key in (p.name.lower(), p.id.lower())
                and (provider is None or p.provider.lower() == provider.lower())
            ),
            None,
        )

    def run_as_account_ids(self) -> tuple[str, ...]:
        """Every run-as account id the discovered vCenters name."""
        return tuple(dict.fromkeys(v.run_as_account_id for v in self.vcenters if v.run_as_account_id))


@dataclass(frozen=True, slots=True)
class AzureVmState:
    """An Azure VM read through the compute API with its instance view (a drill's test VM, say)."""

    name: str
    exists: bool
    power_state: str = "unknown"  # running | deallocated | stopped | starting | ... ("PowerState/<x>")
    provisioning_state: str = ""
    agent_status: str = ""  # the VM agent's displayStatus: "Ready" | "Not Ready" | ""
    agent_version: str = ""
    computer_name: str = ""
    id: str = ""

    @property
    def running(self) -> bool:
        return self.exists and self.power_state == "running"

    @property
    def agent_ready(self) -> bool:
        return self.agent_status.lower() == "ready"


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
    poll_after: float | None = None  # a job just started: the Retry-After ASR gave for its first poll
    #: the item as read when it showed this job's work done (a job awaited on its item): no need to read again
    item: ItemState | None = None

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
