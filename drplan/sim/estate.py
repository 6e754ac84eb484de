"""The simulated estate: vault, configuration server, vCenter, master targets, VMs, recovery points,
operation durations and faults. Loaded from YAML (see ``docs/estate.md``) or generated from a plan.

The model is mutable on purpose: the running simulator reads it live, so tests can flip
``sim.estate.vcenter.connected`` or ``sim.estate.vm("app-01").migrated`` between calls.
"""

from __future__ import annotations

import io
import random
from collections import Counter
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML

from drplan.errors import PlanError
from drplan.observed import Phase
from drplan.plan.schema import Duration
from drplan.plan.yamldoc import YamlProblem, read_document

if TYPE_CHECKING:
    from drplan.plan.schema import Plan


class EstateError(PlanError):
    """The estate file is invalid; ``problems`` lists every problem."""


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


class OsFamily(StrEnum):
    windows = "windows"
    linux = "linux"


class Vault(_M):
    subscription_id: str = "00000000-0000-0000-0000-000000000000"
    resource_group: str = "rg-drplan-sim"
    name: str = "vault-sim"
    location: str = "westeurope"


class ConfigurationServer(_M):
    """The classic configuration server; ASR registers it as the VMware fabric."""

    name: str = "cs-01"
    ip: str = "10.0.0.10"
    connected: bool = True
    heartbeat_age: Duration = Field(60.0, description="how long ago its last heartbeat was, at start")
    fabric: str = Field("vmware-fabric", description="ARM name of the VMware fabric")
    container: str = Field("vmware-container", description="ARM name of the protection container")


class VCenter(_M):
    name: str = "vcenter-01"
    host: str = "vcenter.example.local"
    port: int = 443
    connected: bool = True
    port_groups: list[str] = Field(default_factory=lambda: ["VM Network", "drill-network"])
    datastore_free_gb: int = 2048


class MasterTarget(_M):
    name: str
    os: OsFamily
    ip: str = ""
    snapshots: int = Field(0, ge=0, description="snapshots on the master target VM (must be 0 for reprotect)")
    retention_drive: str = ""
    datastores: list[str] = Field(default_factory=lambda: ["datastore1"])

    @model_validator(mode="after")
    def _defaults(self) -> MasterTarget:
        if not self.retention_drive:
            object.__setattr__(
                self, "retention_drive", "F:" if self.os == OsFamily.windows else "/mnt/retention"
            )
        return self


class ProcessServer(_M):
    name: str
    ip: str = ""
    site: Literal["azure", "onprem"] = Field(
        "azure", description="azure: used for failback; onprem: to Azure"
    )


#: replicated disks one ASR replication appliance holds (modernized)
DISKS_PER_APPLIANCE = 60
#: what a generated estate puts on one appliance: headroom below the limit (a full appliance reports
#: ApplianceDiskLimitReached, which a failback preflight refuses)
GENERATED_DISKS_PER_APPLIANCE = 48
#: how old a heartbeat (appliance component or mobility agent) may be before ASR treats it as stale
STALE_HEARTBEAT = 900.0


class Appliance(_M):
    """An ASR replication appliance (modernized): one VM running a process server, a reprotect agent, an RCM
    proxy, a replication agent, a MARS agent and a DRA, each listed by the InMageRcm fabric. It holds at most
    :data:`DISKS_PER_APPLIANCE` replicated disks and reaches the vCenter datastores in ``datastores``."""

    name: str
    ip: str = ""
    health: Literal["Normal", "Warning", "Critical"] = "Normal"
    connected: bool = True
    heartbeat_age: Duration = Field(60.0, description="how long ago its components last sent a heartbeat")
    datastores: list[str] = Field(
        default_factory=lambda: ["datastore1"], description="datastores of the vCenter it can reach"
    )
    version: str = "9.63.7187.1"


class ModernizedSite(_M):
    """Vault-side names of the modernized site: fabric, log storage account, run-as accounts, policies."""

    fabric: str = Field("rcm-fabric", description="ARM name of the InMageRcm fabric")
    container: str = Field("rcm-container", description="ARM name of its protection container")
    vmware_site: str = Field("vmware-site-01", description="the Azure Migrate VMware site of the discovery")
    log_storage_account: str = Field("drplanlogsa", description="storage account (name) for replication logs")
    run_as_accounts: list[str] = Field(
        default_factory=lambda: ["vcenter-runas"], description="accounts the appliance's discovery uses"
    )
    policy_to_azure: str = Field("rcm-policy", description="InMageRcm replication policy (on-prem to Azure)")
    policy_failback: str = Field(
        "rcm-failback-policy", description="InMageRcmFailback replication policy (Azure to on-prem)"
    )


class PointKind(StrEnum):
    app = "app"
    crash = "crash"


class ExplicitPoint(_M):
    """One recovery point: an absolute ``time`` or ``ago`` (before the clock start)."""

    time: datetime | None = None
    ago: Duration | None = None
    kind: PointKind = PointKind.crash
    multi_vm_sync: bool = False

    @model_validator(mode="after")
    def _one_time(self) -> ExplicitPoint:
        if (self.time is None) == (self.ago is None):
            raise ValueError("give exactly one of 'time' or 'ago'")
        if self.time is not None and self.time.tzinfo is None:
            object.__setattr__(self, "time", self.time.replace(tzinfo=UTC))
        return self


class PointGenerator(_M):
    """Points made continuously while a VM replicates: crash every N, app-consistent every M."""

    crash_every: Duration = 300.0
    app_every: Duration = 3600.0
    retention: Duration = 86400.0
    jitter: bool = Field(True, description="standalone VMs get a per-VM offset; group members never do")


class Durations(_M):
    """Simulated durations of ASR jobs and on-prem events."""

    failback: Duration = 600.0
    commit: Duration = 120.0
    reprotect: Duration = 900.0
    reprotect_to_azure: Duration = 900.0
    test_failover: Duration = 600.0
    test_failover_cleanup: Duration = 180.0
    failover_cancel: Duration = 300.0
    failover: Duration = 600.0
    boot: Duration = Field(120.0, description="power-on to VMware Tools running and guest IP")
    agent_registration: Duration = Field(900.0, description="on-prem start to agent registered with the CS")
    reprotect_alternate: Duration = Field(
        3600.0, description="modernized reprotect to a new on-prem VM (alternate location: full replication)"
    )


class VmDurations(_M):
    """Per-VM overrides of :class:`Durations` (unset: the estate's); a multi-VM job takes its slowest."""

    failback: Duration | None = None
    commit: Duration | None = None
    reprotect: Duration | None = None
    reprotect_to_azure: Duration | None = None
    test_failover: Duration | None = None
    test_failover_cleanup: Duration | None = None
    failover_cancel: Duration | None = None
    failover: Duration | None = None
    boot: Duration | None = None
    reprotect_alternate: Duration | None = None


class OperationFault(_M):
    """Make ``operation`` fail for ``vm`` (or every VM when omitted), ``once`` or ``always``."""

    operation: str = Field(
        description="unplannedFailover, plannedFailover, failoverCommit, reProtect, testFailover, ..."
    )
    vm: str | None = None
    mode: Literal["once", "always"] = "once"
    stage: Literal["job", "request"] = Field("job", description="fail the job, or refuse the request")
    code: str = "SimulatedFailure"
    message: str = "simulated failure injected by the estate's faults"
    status: int = Field(500, description="HTTP status when stage is 'request'")
    fired: int = Field(0, description="times this fault has fired (runtime)")


class Faults(_M):
    """Runtime-adjustable fault injection (``sim.faults``)."""

    seed: int = 0
    rate_429: float = Field(0.0, ge=0, le=1)
    rate_500: float = Field(0.0, ge=0, le=1)
    rate_503: float = Field(0.0, ge=0, le=1)
    retry_after: int = Field(1, ge=0, description="Retry-After seconds sent with a 429")
    latency: float = Field(0.0, ge=0, description="real seconds added to every response")
    operations: list[OperationFault] = Field(default_factory=list)


class TokenBucket(_M):
    """One of ARM's per-subscription token buckets: ``burst`` tokens, refilled at ``per_second``."""

    burst: int = Field(ge=1, description="tokens when full")
    per_second: float = Field(gt=0, description="tokens added per simulated second")


class Throttling(_M):
    """ARM's per-subscription request limits (``drplan.sim.throttle``); off unless ``enabled``."""

    enabled: bool = False
    reads: TokenBucket = Field(default_factory=lambda: TokenBucket(burst=250, per_second=25))
    writes: TokenBucket = Field(default_factory=lambda: TokenBucket(burst=200, per_second=10))
    deletes: TokenBucket = Field(default_factory=lambda: TokenBucket(burst=200, per_second=10))


class Settings(_M):
    enforce_group_failover: bool = Field(
        False, description="refuse single-item unplanned failover of a member of a multi-VM replication group"
    )
    page_size: int | None = Field(None, ge=1, description="list page size (start_simulator's page_size wins)")


class Vm(_M):
    name: str = Field(description="friendly name in ASR (the plan's VM name)")
    vcenter_name: str | None = None
    os: OsFamily = OsFamily.linux
    os_version: str = ""
    machine_type: Literal["vmware", "physical"] = "vmware"
    phase: Phase = Phase.reprotected_to_onprem
    replication_health: Literal["Normal", "Warning", "Critical"] = "Normal"
    replication_group: str | None = None
    master_target: str | None = None
    process_server: str | None = None
    ip: str | None = Field(None, description="guest IP on-prem once booted")
    migrated: bool = False
    moved_resource_group: bool = False
    azure_vm_deleted: bool = False
    protection_disabled: bool = False
    in_configuration_server: bool = True
    failback_host: Literal["vmware", "hyperv"] = Field(
        "vmware", description="hyperv: its failback target is a Hyper-V host (unsupported for VMware VMs)"
    )
    recovery_points: list[ExplicitPoint] | None = Field(None, description="explicit points; None = generator")
    generator: PointGenerator | None = Field(None, description="per-VM generator override")
    replicating_since: datetime | None = Field(None, description="start of the current replication (points)")
    disks_gb: int = 64
    durations: VmDurations | None = Field(None, description="per-VM overrides of the estate's durations")
    # -- modernized (InMageRcm / InMageRcmFailback) ----------------------------------------------------------
    provider: Literal["modernized", "classic"] = Field(
        "classic", description="modernized: InMageRcm -> InMageRcmFailback; classic: InMageAzureV2 -> InMage"
    )
    appliance: str | None = Field(None, description="the replication appliance replicating it (modernized)")
    disks: int = Field(1, ge=1, le=64, description="replicated disks (each counts against its appliance)")
    datastore: str = Field("datastore1", description="datastore of its on-prem VM")
    onprem_vm_deleted: bool = Field(False, description="the original on-prem VM is gone: alternate location")
    agent_registered_after_failover: bool = Field(
        True, description="the mobility agent of its Azure VM registered after the failover"
    )
    agent_heartbeat_age: Duration = Field(60.0, description="age of the Azure VM's mobility agent heartbeat")
    ip_config: Literal["static", "dhcp"] = Field(
        "static", description="static: a modernized failback does not keep the guest's IP"
    )

    @property
    def vcenter_vm(self) -> str:
        return self.vcenter_name or self.name

    @field_validator("replicating_since")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v

    @model_validator(mode="after")
    def _defaults(self) -> Vm:
        if not self.os_version:
            v = "Windows Server 2019" if self.os == OsFamily.windows else "Ubuntu 22.04"
            object.__setattr__(self, "os_version", v)
        return self


class Estate(_M):
    """Everything the simulator serves. See ``docs/estate.md``."""

    vault: Vault = Field(default_factory=Vault)
    start_time: datetime | None = Field(None, description="simulated time at start (default: now)")
    configuration_server: ConfigurationServer = Field(default_factory=ConfigurationServer)
    vcenter: VCenter = Field(default_factory=VCenter)
    master_targets: list[MasterTarget] = Field(default_factory=list)
    process_servers: list[ProcessServer] = Field(default_factory=list)
    appliances: list[Appliance] = Field(default_factory=list)
    modernized: ModernizedSite = Field(default_factory=ModernizedSite)
    vms: list[Vm] = Field(default_factory=list)
    recovery_points: PointGenerator = Field(default_factory=PointGenerator)
    durations: Durations = Field(default_factory=Durations)
    faults: Faults = Field(default_factory=Faults)
    throttling: Throttling = Field(default_factory=Throttling)
    settings: Settings = Field(default_factory=Settings)
    _index: dict[str, Vm] = PrivateAttr(default_factory=dict)  # name or vCenter name -> VM (see vm())
    _index_key: tuple[int, int] | None = PrivateAttr(default=None)

    @field_validator("start_time")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        return v.replace(tzinfo=UTC) if v is not None and v.tzinfo is None else v

    @model_validator(mode="after")
    def _cross_refs(self) -> Estate:
        problems = []
        counts = Counter(v.name for v in self.vms)
        dup = sorted(n for n, c in counts.items() if c > 1)
        if dup:
            problems.append(f"duplicate VM names: {', '.join(dup)}")
        mts = {m.name for m in self.master_targets}
        pss = {p.name for p in self.process_servers}
        apps = {a.name for a in self.appliances}
        for v in self.vms:
            if v.master_target and v.master_target not in mts:
                problems.append(f"VM {v.name}: unknown master target {v.master_target!r}")
            if v.process_server and v.process_server not in pss:
                problems.append(f"VM {v.name}: unknown process server {v.process_server!r}")
            if v.appliance and v.appliance not in apps:
                problems.append(f"VM {v.name}: unknown appliance {v.appliance!r}")
            if v.provider == "modernized" and not v.appliance:
                problems.append(f"VM {v.name}: a modernized VM needs an appliance")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- lookups -------------------------------------------------------------------------------------------
    def vm(self, name: str) -> Vm:
        key = (id(self.vms), len(self.vms))
        if self._index_key != key:  # the VM list was replaced or grew/shrank: index it again
            self._index = {}
            for v in reversed(self.vms):
                self._index[v.vcenter_vm] = v
            for v in reversed(self.vms):
                self._index[v.name] = v
            self._index_key = key
        hit = self._index.get(name)
        if hit is not None and (hit.name == name or hit.vcenter_vm == name):
            return hit
        for v in self.vms:  # renamed since indexed
            if v.name == name or v.vcenter_vm == name:
                return v
        raise KeyError(f"no VM named {name!r} in the estate")

    def master_target(self, name: str) -> MasterTarget:
        for m in self.master_targets:
            if m.name == name:
                return m
        raise KeyError(f"no master target named {name!r} in the estate")

    def appliance(self, name: str) -> Appliance:
        for a in self.appliances:
            if a.name == name:
                return a
        raise KeyError(f"no appliance named {name!r} in the estate")

    def group_members(self, group: str) -> list[Vm]:
        return [v for v in self.vms if v.replication_group == group]

    # -- YAML ----------------------------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | Path) -> Estate:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise EstateError([f"{path}: cannot read estate file: {exc.strerror or exc}"]) from None
        return cls.from_yaml_text(text, source=str(path))

    @classmethod
    def from_yaml_text(cls, text: str, *, source: str = "<estate>") -> Estate:
        try:  # libyaml through drplan's plan reader: YAML 1.2 scalars, ~20x faster than ruamel's safe loader
            data = read_document(text)
        except YamlProblem as exc:
            raise EstateError([f"{source}:{exc.line}:{exc.col}: {exc.message}"]) from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise EstateError([f"{source}: an estate must be a mapping"])
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"]) or "(top)"
                problems.append(f"{source}: {loc}: {err['msg']}")
            raise EstateError(problems) from None

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude_none=True)
        for fault in data.get("faults", {}).get("operations", []):
            fault.pop("fired", None)
        buf = io.StringIO()
        y = YAML()
        y.default_flow_style = False
        y.dump(data, buf)
        return buf.getvalue()

    # -- from a plan -----------------------------------------------------------------------------------------
    @classmethod
    def from_plan(
        cls,
        plan: Plan,
        *,
        seed: int = 0,
        phase: Phase = Phase.reprotected_to_onprem,
        phases: dict[str, Phase] | None = None,
        start_time: datetime | None = None,
        enforce_group_failover: bool = False,
        provider: Literal["modernized", "classic"] = "classic",
    ) -> Estate:
        """An estate holding every VM and group of ``plan``, all in ``phase`` (default: reprotected to
        on-prem, ready to fail back); ``phases`` overrides it per VM name. ``provider`` picks the ASR stack:
        classic (configuration server, the plan's master targets, a process server in Azure) or modernized
        (replication appliances of at most 60 disks each, filled in plan order)."""
        rng = random.Random(seed)
        phases = dict(phases or {})
        groups = {m: g.name for g in plan.replication_groups for m in g.members}
        modern = provider == "modernized"
        mts, pss = ([], []) if modern else _classic_servers(plan)
        ps_name = pss[0].name if pss else None
        vms = []
        for i, v in enumerate(plan.vms):
            vms.append(
                Vm(
                    name=v.name,
                    vcenter_name=v.vcenter_name,
                    os=OsFamily(v.os.value),
                    phase=phases.pop(v.name, phase),
                    replication_group=groups.get(v.name),
                    master_target=None if modern else v.master_target,
                    process_server=ps_name,
                    ip=f"10.20.{i // 250}.{10 + i % 250}",
                    disks_gb=rng.choice([32, 64, 128, 256]),
                    provider=provider,
                    disks=rng.choice([1, 1, 2, 3]) if modern else 1,
                )
            )
        if phases:
            raise ValueError(f"phases given for VMs not in the plan: {', '.join(sorted(phases))}")
        return cls(
            vault=Vault(
                subscription_id=plan.azure.subscription_id,
                resource_group=plan.azure.resource_group,
                name=plan.azure.vault,
            ),
            start_time=start_time,
            vcenter=_vcenter_for(plan),
            master_targets=mts,
            process_servers=pss,
            appliances=_fill_appliances(vms, plan) if modern else [],
            modernized=_modernized_site(plan),
            vms=vms,
            faults=Faults(seed=seed),
            settings=Settings(enforce_group_failover=enforce_group_failover),
        )


def _classic_servers(plan: Plan) -> tuple[list[MasterTarget], list[ProcessServer]]:
    """The plan's master targets, its process server in Azure and (when another) the one to Azure."""
    mts = [
        MasterTarget(name=m.name, os=OsFamily(m.os.value), ip=f"10.0.1.{10 + i}")
        for i, m in enumerate(plan.master_targets)
    ]
    ps_name = plan.reprotect.process_server or "ps-azure-01"
    pss = [ProcessServer(name=ps_name, ip="10.1.0.4", site="azure")]
    to_azure = plan.failback.reprotect_to_azure.process_server or "cs-01"
    if to_azure != ps_name:
        pss.append(ProcessServer(name=to_azure, ip="10.0.0.10", site="onprem"))
    return mts, pss


def _modernized_site(plan: Plan) -> ModernizedSite:
    """The vault-side names the plan's ``modernized`` section uses (names, not ARM ids), else the defaults."""
    opts, site = plan.modernized, ModernizedSite()

    def name(value: str | None, default: str) -> str:
        return value.rstrip("/").rsplit("/", 1)[-1] if value else default

    return site.model_copy(
        update={
            "log_storage_account": name(opts.log_storage_account, site.log_storage_account),
            "policy_to_azure": name(opts.policy_to_azure, site.policy_to_azure),
            "policy_failback": name(opts.failback_policy, site.policy_failback),
        }
    )


def _fill_appliances(vms: list[Vm], plan: Plan | None = None) -> list[Appliance]:
    """Appliances for ``vms`` in plan order, each filled up to :data:`GENERATED_DISKS_PER_APPLIANCE` disks;
    they reach the datastore the plan's ``modernized`` section names (besides datastore1/datastore2)."""
    wanted = plan.modernized.datastore if plan is not None else None
    appliances: list[Appliance] = []
    used = GENERATED_DISKS_PER_APPLIANCE
    for v in vms:
        if not appliances or used + v.disks > GENERATED_DISKS_PER_APPLIANCE:
            n = len(appliances)
            appliances.append(
                Appliance(name=f"appliance-{n + 1:02d}", ip=f"10.0.{2 + n // 200}.{10 + n % 200}")
            )
            used = 0
        used += v.disks
        v.appliance = appliances[-1].name
    appliances = appliances or [Appliance(name="appliance-01", ip="10.0.2.10")]
    named = plan.modernized.appliance if plan is not None else None
    for a in appliances:
        if wanted and wanted not in a.datastores:
            a.datastores = [*a.datastores, wanted]
    if named and all(a.name != named for a in appliances):
        appliances[0].name = named
        for v in vms:
            if v.appliance == "appliance-01":
                v.appliance = named
    return appliances


def _vcenter_for(plan: Plan) -> VCenter:
    """The plan's vCenter, with the drill's test network among its port groups."""
    vc = VCenter(host=plan.vcenter.host, port=plan.vcenter.port)
    net = plan.drill.test_network
    if net and net not in vc.port_groups:
        vc.port_groups = [*vc.port_groups, net]
    return vc
