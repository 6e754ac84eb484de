"""The recovery-plan schema: pydantic v2 models, strict (``extra="forbid"``) and frozen.

Field names read like a runbook. Cross-reference rules (unknown names, cycles, group
membership, master-target OS) live in :mod:`drplan.plan.validate`; YAML loading with
file:line:col positions lives in :mod:`drplan.plan.loader`.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

# spaces only after a unit: ``\s*`` next to each other would backtrack for minutes on a long blank value
_DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h\s*)?(?:(\d+(?:\.\d+)?)m\s*)?(?:(\d+(?:\.\d+)?)s\s*)?$")


def parse_duration(value: object) -> float:
    """Parse ``90s``, ``30m``, ``1h30m`` or a plain number of seconds into seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration must be like '90s', '30m' or '1h30m'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if value.strip() and m and any(m.groups()):
            h, mi, s = (float(g) if g else 0.0 for g in m.groups())
            return h * 3600 + mi * 60 + s
        raise ValueError(
            f"invalid duration {value[:40]!r}{'...' if len(value) > 40 else ''}: "
            "use a number with h, m or s, like '90s', '30m' or '1h30m'"
        )
    raise ValueError("a duration must be like '90s', '30m' or '1h30m'")


def format_duration(seconds: float) -> str:
    """Inverse of :func:`parse_duration` for display: ``5400`` -> ``1h30m``."""
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return out or "0s"


def _dump_duration(seconds: float) -> str:
    """How a duration is written back (plans, estate files): ``1h30m``, or ``0.25s`` when not whole seconds
    (rounding would change what an estate simulates: a 0.2 s boot written as ``0s``)."""
    if float(seconds).is_integer():
        return format_duration(seconds)
    return f"{round(float(seconds), 3)}s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(_dump_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^(\d+(\.\d+)?h)?(\d+(\.\d+)?m)?(\d+(\.\d+)?s)?$"},
                {"type": "number", "minimum": 0},
            ],
            "description": "seconds, or a duration like '90s', '30m', '1h30m'",
        }
    ),
]

Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class OsFamily(StrEnum):
    windows = "windows"
    linux = "linux"


class RecoveryPointPolicy(StrEnum):
    """How a unit's recovery point is chosen (see :mod:`drplan.recovery.points`)."""

    latest = "latest"  # each VM its own newest point (crash-consistent)
    latest_app_consistent = "latest-app-consistent"  # each VM its own newest app-consistent point
    common_app_consistent = "common-app-consistent"  # a group's newest shared multi-VM app-consistent point


class CommitPolicy(StrEnum):
    after_verification = "after-verification"
    approval = "approval"
    never = "never"


class GroupFailbackMode(StrEnum):
    """How a replication group is failed back: item by item to the common point, or by an ASR recovery
    plan."""

    per_item = "per-item"
    recovery_plan = "recovery-plan"


class SecretRef(_Model):
    """Where a secret comes from at run time. Exactly one of ``env`` or ``prefect_secret``."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    env: str | None = Field(None, description="environment variable holding the secret")
    prefect_secret: str | None = Field(None, description="name of a Prefect Secret block holding the secret")


class AzureTarget(_Model):
    """The Recovery Services vault. Fabrics and containers are discovered automatically."""

    subscription_id: str = Field(
        min_length=1, description="Azure subscription ID of the Recovery Services vault"
    )
    resource_group: str = Field(min_length=1, description="resource group of the Recovery Services vault")
    vault: str = Field(min_length=1, description="name of the Recovery Services vault that protects the VMs")
    failback_direction: Literal["PrimaryToRecovery", "RecoveryToPrimary"] = Field(
        "PrimaryToRecovery",
        description=(
            "failoverDirection sent for an item-level InMage failback (PowerShell sends PrimaryToRecovery)"
        ),
    )


class VCenterTarget(_Model):
    """The on-prem vCenter. The password is a reference, never a literal."""

    host: str = Field(min_length=1, description="vCenter host name or address")
    port: int = Field(443, ge=1, le=65535, description="vCenter HTTPS port")
    username: str = Field(min_length=1, description="vCenter user, e.g. drplan@vsphere.local")
    password: SecretRef = Field(
        description="the vCenter password as a reference: {env: VAR} or {prefect_secret: BLOCK}"
    )
    ca_file: str | None = Field(None, description="CA bundle used to verify vCenter's certificate")
    insecure: bool = Field(False, description="skip TLS verification (logged as a warning)")


class MasterTarget(_Model):
    """An on-prem master target server that receives failed-back VMs."""

    name: Name = Field(description="the master target's name as registered in ASR")
    os: OsFamily = Field(description="its OS family; it serves VMs of the same family")


class Durations(_Model):
    """Estimated durations per operation, used for the estimated RTO and the critical path."""

    failback: Duration | None = Field(None, description="the failback job (default 10m)")
    boot: Duration | None = Field(None, description="booting on-prem until verified up (default 3m)")
    verify: Duration | None = Field(None, description="the verification checks (default 1m)")
    commit: Duration | None = Field(None, description="the commit job (default 2m)")
    reprotect: Duration | None = Field(None, description="reprotecting back to Azure (default 15m)")


DEFAULT_DURATIONS = {"failback": 600.0, "boot": 180.0, "verify": 60.0, "commit": 120.0, "reprotect": 900.0}


class BootVerification(_Model):
    """What 'came up' means for a VM after failback."""

    powered_on: bool = Field(True, description="the VM must be powered on")
    tools_running: bool = Field(True, description="VMware Tools must be running in the guest")
    guest_ip: bool = Field(True, description="the guest must report an IP address")
    timeout: Duration | None = Field(None, description="defaults to defaults.boot_timeout")


class Vm(_Model):
    name: Name = Field(description="the VM's friendly name in ASR")
    vcenter_name: str | None = Field(None, description="the VM's name in vCenter, when it differs")
    os: OsFamily = Field(description="the VM's OS family (must match its master target's)")
    master_target: Name = Field(description="the master target (under master_targets) that receives the VM")
    recovery_point: RecoveryPointPolicy | None = Field(
        None, description="recovery point policy of a standalone VM (default: defaults.recovery_point)"
    )
    max_data_loss: Duration | None = Field(
        None, description="refuse a recovery point older than this (default: defaults.max_data_loss)"
    )
    depends_on: tuple[Name, ...] = Field(
        (), description="VMs, groups or hooks that must be done before this VM"
    )
    verify: BootVerification = Field(BootVerification(), description="what 'came up' means after failback")
    durations: Durations = Field(Durations(), description="estimated durations (default: defaults.durations)")


class ReplicationGroup(_Model):
    """A multi-VM consistency group: its members fail back together, as one unit."""

    name: Name = Field(description="the replication group's name in ASR")
    members: tuple[Name, ...] = Field(min_length=1, description="its VMs (names under vms), at most 16")
    recovery_point: RecoveryPointPolicy | None = Field(
        None, description="recovery point policy of the group (default: defaults.group_recovery_point)"
    )
    max_data_loss: Duration | None = Field(
        None, description="refuse a recovery point older than this (default: defaults.max_data_loss)"
    )
    depends_on: tuple[Name, ...] = Field(
        (), description="VMs, groups or hooks that must be done before the group"
    )
    failback_mode: GroupFailbackMode | None = Field(
        None, description="per-item or recovery-plan (default: failback.group_failback_mode)"
    )


class _HookBase(_Model):
    name: Name = Field(description="the hook's name; VMs, groups and hooks can depend on it")
    depends_on: tuple[Name, ...] = Field(
        (), description="VMs, groups or hooks that must be done before the hook"
    )
    runs_in: tuple[Literal["failback", "drill"], ...] = Field(
        ("failback", "drill"), description="the runs the hook takes part in"
    )
    after_cleanup: bool = Field(False, description="drills only: run after test-failover cleanup")


class ShellHook(_HookBase):
    kind: Literal["shell"] = Field(description="shell: run a command")
    command: str = Field(min_length=1, description="the shell command; a non-zero exit fails the hook")
    timeout: Duration = Field(300.0, description="stop the command and fail the hook after this long")
    in_simulation: bool = Field(
        False, description="also run the command under --simulate (by default a simulation does not run it)"
    )
    env: tuple[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], ...] = Field(
        (),
        description="environment variables passed to the command by name; it gets only PATH, HOME, LANG, "
        "DRPLAN_PLAN, DRPLAN_HOOK, DRPLAN_MODE and these",
    )


class ApprovalHook(_HookBase):
    kind: Literal["approval"] = Field(description="approval: wait for a person to approve")
    prompt: str = Field("Approve to continue", description="what the person is asked")
    in_drills: bool = Field(False, description="also stop unattended drills for this approval")


class WaitHook(_HookBase):
    kind: Literal["wait"] = Field(description="wait: pause for a fixed time")
    duration: Duration = Field(description="how long to wait")


Hook = Annotated[ShellHook | ApprovalHook | WaitHook, Field(discriminator="kind")]


class ReprotectToAzure(_Model):
    """Reprotecting the failed-back VMs to Azure again, after commit."""

    enabled: bool = Field(True, description="reprotect each committed VM back to Azure")
    process_server: str | None = Field(None, description="on-prem process server to replicate through")
    policy: str | None = Field(None, description="replication policy to reprotect with (unset: not sent)")
    agent_registration_window: Duration = Field(
        1200.0, description="how long to retry 'agent isn't installed'"
    )


class FailbackOptions(_Model):
    """How a failback ends: commit and reprotect back to Azure."""

    commit: CommitPolicy = Field(
        CommitPolicy.after_verification,
        description="when to commit: after a unit is verified, after an approval, or never",
    )
    reprotect_to_azure: ReprotectToAzure = Field(ReprotectToAzure(), description="reprotect back to Azure")
    group_failback_mode: GroupFailbackMode = Field(
        GroupFailbackMode.per_item,
        description="how replication groups fail back unless a group says otherwise",
    )


class ReprotectToOnPrem(_Model):
    """Inputs of the Azure -> on-prem reprotect (InMageReprotectInput)."""

    process_server: str | None = Field(None, description="Azure process server to replicate through")
    retention_drive: str | None = Field(None, description="retention drive on the master target")
    datastore: str | None = Field(None, description="vCenter datastore that receives the replicas")
    policy: str | None = Field(None, description="replication policy for Azure -> on-prem")


class ModernizedReprotect(_Model):
    """Inputs of the modernized providers' reprotects (InMageRcm forward, InMageRcmFailback back), by the
    names a DR engineer knows; drplan resolves them to the ids the vault's InMageRcm fabric lists."""

    appliance: str | None = Field(
        None,
        description="replication appliance whose reprotect agent replicates the VMs back to on-prem "
        "(InMageRcmReprotectInput.reprotectAgentId); default: the appliance that replicated each VM to Azure",
    )
    datastore: str | None = Field(
        None,
        description="vCenter datastore, reachable from the appliance, that receives the replicas "
        "(InMageRcmReprotectInput.datastoreName); default: the first datastore the appliance reaches",
    )
    log_storage_account: str | None = Field(
        None,
        description="storage account for replication logs: a name in the vault's resource group or an ARM "
        "id (InMageRcmReprotectInput.logStorageAccountId); required for a reprotect to on-prem",
    )
    failback_policy: str | None = Field(
        None,
        description="InMageRcmFailback replication policy (name or id) for Azure -> on-prem; default: the "
        "vault's only one",
    )
    location: Literal["auto", "original", "alternate"] = Field(
        "auto",
        description="where the VMs come back: original (the on-prem VM must still exist: changes only), "
        "alternate (a new VM, full replication) or auto (whichever ASR finds)",
    )
    process_server: str | None = Field(
        None,
        description="appliance (process server) that replicates the failed-back VMs to Azure again "
        "(InMageRcmFailbackReprotectInput.processServerId); default: the appliance that replicated them back",
    )
    policy_to_azure: str | None = Field(
        None,
        description="InMageRcm replication policy (name or id) for on-prem -> Azure; default: the vault's "
        "only one",
    )
    run_as_account: str | None = Field(
        None,
        description="run-as account (ARM id) of the vCenter discovery for the reprotect to Azure; default: "
        "the one the discovered vCenter uses",
    )
    agent_ready_timeout: Duration = Field(
        1200.0,
        description="how long the reprotect to Azure waits for the mobility agent to register after the "
        "failover and send heartbeats",
    )


class DrillTargets(_Model):
    """What a drill report measures against."""

    rto: Duration | None = Field(None, description="recovery time objective")
    rpo: Duration | None = Field(None, description="recovery point objective")


class DrillOptions(_Model):
    """DR drills: test failover to an isolated network, verification, cleanup."""

    test_network: str | None = Field(
        None,
        description="isolated test network; required: a vCenter port group (classic VMs), an Azure virtual "
        "network name or ARM id (modernized VMs: the drill is a test failover into Azure)",
    )
    cleanup: Literal["always"] = Field("always", description="test failovers are always cleaned up")
    stop_for_approvals: bool = Field(False, description="let approval gates stop unattended drills")
    targets: DrillTargets = Field(DrillTargets(), description="RTO and RPO targets for the drill report")


class Defaults(_Model):
    """Settings that apply unless a VM or a group says otherwise."""

    recovery_point: RecoveryPointPolicy = Field(
        RecoveryPointPolicy.latest, description="recovery point policy of standalone VMs"
    )
    group_recovery_point: RecoveryPointPolicy = Field(
        RecoveryPointPolicy.common_app_consistent, description="recovery point policy of replication groups"
    )
    max_data_loss: Duration | None = Field(None, description="refuse a recovery point older than this")
    boot_timeout: Duration = Field(600.0, description="how long a VM may take to come up after failback")
    durations: Durations = Field(Durations(), description="estimated durations of each operation")


class Plan(_Model):
    """A recovery plan: what fails back, in which order, to which point, and what runs around it."""

    name: Name = Field(description="the plan's name (runs and reports carry it)")
    description: str = Field("", description="what the plan recovers, for people")
    azure: AzureTarget = Field(description="the Recovery Services vault")
    vcenter: VCenterTarget = Field(description="the on-prem vCenter the VMs fail back to")
    master_targets: tuple[MasterTarget, ...] = Field((), description="on-prem master target servers")
    defaults: Defaults = Field(
        Defaults(), description="settings for every VM and group unless they override them"
    )
    vms: tuple[Vm, ...] = Field((), description="the VMs to fail back")
    replication_groups: tuple[ReplicationGroup, ...] = Field(
        (), description="multi-VM consistency groups: their members fail back together"
    )
    hooks: tuple[Hook, ...] = Field((), description="shell commands, approval gates and waits in the graph")
    failback: FailbackOptions = Field(FailbackOptions(), description="commit and reprotect after failback")
    reprotect: ReprotectToOnPrem = Field(
        ReprotectToOnPrem(), description="inputs of the Azure -> on-prem reprotect"
    )
    drill: DrillOptions = Field(DrillOptions(), description="DR drill settings")
    modernized: ModernizedReprotect = Field(
        ModernizedReprotect(),
        description="inputs of the reprotects of VMs on the modernized providers (InMageRcm / "
        "InMageRcmFailback); VMs on the classic providers use reprotect and master_targets",
    )


def plan_json_schema() -> dict[str, object]:
    """The plan's JSON Schema (draft 2020-12), as committed in ``plans/plan.schema.json``."""
    schema = Plan.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
