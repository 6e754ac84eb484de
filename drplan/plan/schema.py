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

_DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")


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
            f"invalid duration {value!r}: use a number with h, m or s, like '90s', '30m' or '1h30m'"
        )
    raise ValueError("a duration must be like '90s', '30m' or '1h30m'")


def format_duration(seconds: float) -> str:
    """Inverse of :func:`parse_duration` for display: ``5400`` -> ``1h30m``."""
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return out or "0s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
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

    subscription_id: str = Field(min_length=1)
    resource_group: str = Field(min_length=1)
    vault: str = Field(min_length=1)
    failback_direction: Literal["PrimaryToRecovery", "RecoveryToPrimary"] = Field(
        "PrimaryToRecovery",
        description=(
            "failoverDirection sent for an item-level InMage failback (PowerShell sends PrimaryToRecovery)"
        ),
    )


class VCenterTarget(_Model):
    """The on-prem vCenter. The password is a reference, never a literal."""

    host: str = Field(min_length=1)
    port: int = Field(443, ge=1, le=65535)
    username: str = Field(min_length=1)
    password: SecretRef
    ca_file: str | None = Field(None, description="CA bundle used to verify vCenter's certificate")
    insecure: bool = Field(False, description="skip TLS verification (logged as a warning)")


class MasterTarget(_Model):
    name: Name
    os: OsFamily


class Durations(_Model):
    """Estimated durations per operation, used for the estimated RTO and the critical path."""

    failback: Duration | None = None
    boot: Duration | None = None
    verify: Duration | None = None
    commit: Duration | None = None
    reprotect: Duration | None = None


DEFAULT_DURATIONS = {"failback": 600.0, "boot": 180.0, "verify": 60.0, "commit": 120.0, "reprotect": 900.0}


class BootVerification(_Model):
    """What 'came up' means for a VM after failback."""

    powered_on: bool = True
    tools_running: bool = True
    guest_ip: bool = True
    timeout: Duration | None = Field(None, description="defaults to defaults.boot_timeout")


class Vm(_Model):
    name: Name = Field(description="the VM's friendly name in ASR")
    vcenter_name: str | None = Field(None, description="the VM's name in vCenter, when it differs")
    os: OsFamily
    master_target: Name
    recovery_point: RecoveryPointPolicy | None = None
    max_data_loss: Duration | None = None
    depends_on: tuple[Name, ...] = ()
    verify: BootVerification = BootVerification()
    durations: Durations = Durations()


class ReplicationGroup(_Model):
    """A multi-VM consistency group: its members fail back together, as one unit."""

    name: Name
    members: tuple[Name, ...] = Field(min_length=1)
    recovery_point: RecoveryPointPolicy | None = None
    max_data_loss: Duration | None = None
    depends_on: tuple[Name, ...] = ()
    failback_mode: GroupFailbackMode | None = None


class _HookBase(_Model):
    name: Name
    depends_on: tuple[Name, ...] = ()
    runs_in: tuple[Literal["failback", "drill"], ...] = ("failback", "drill")
    after_cleanup: bool = Field(False, description="drills only: run after test-failover cleanup")


class ShellHook(_HookBase):
    kind: Literal["shell"]
    command: str = Field(min_length=1)
    timeout: Duration = 300.0


class ApprovalHook(_HookBase):
    kind: Literal["approval"]
    prompt: str = "Approve to continue"
    in_drills: bool = Field(False, description="also stop unattended drills for this approval")


class WaitHook(_HookBase):
    kind: Literal["wait"]
    duration: Duration


Hook = Annotated[ShellHook | ApprovalHook | WaitHook, Field(discriminator="kind")]


class ReprotectToAzure(_Model):
    enabled: bool = True
    process_server: str | None = None
    policy: str | None = None
    agent_registration_window: Duration = Field(
        1200.0, description="how long to retry 'agent isn't installed'"
    )


class FailbackOptions(_Model):
    commit: CommitPolicy = CommitPolicy.after_verification
    reprotect_to_azure: ReprotectToAzure = ReprotectToAzure()
    group_failback_mode: GroupFailbackMode = GroupFailbackMode.per_item


class ReprotectToOnPrem(_Model):
    """Inputs of the Azure -> on-prem reprotect (InMageReprotectInput)."""

    process_server: str | None = None
    retention_drive: str | None = None
    datastore: str | None = None
    policy: str | None = None


class DrillTargets(_Model):
    rto: Duration | None = None
    rpo: Duration | None = None


class DrillOptions(_Model):
    test_network: str | None = None
    cleanup: Literal["always"] = "always"
    stop_for_approvals: bool = Field(False, description="let approval gates stop unattended drills")
    targets: DrillTargets = DrillTargets()


class Defaults(_Model):
    recovery_point: RecoveryPointPolicy = RecoveryPointPolicy.latest
    group_recovery_point: RecoveryPointPolicy = RecoveryPointPolicy.common_app_consistent
    max_data_loss: Duration | None = None
    boot_timeout: Duration = 600.0
    durations: Durations = Durations()


class Plan(_Model):
    """A recovery plan: what fails back, in which order, to which point, and what runs around it."""

    name: Name
    description: str = ""
    azure: AzureTarget
    vcenter: VCenterTarget
    master_targets: tuple[MasterTarget, ...] = ()
    defaults: Defaults = Defaults()
    vms: tuple[Vm, ...] = ()
    replication_groups: tuple[ReplicationGroup, ...] = ()
    hooks: tuple[Hook, ...] = ()
    failback: FailbackOptions = FailbackOptions()
    reprotect: ReprotectToOnPrem = ReprotectToOnPrem()
    drill: DrillOptions = DrillOptions()


def plan_json_schema() -> dict:
    """The plan's JSON Schema (draft 2020-12), as committed in ``plans/plan.schema.json``."""
    schema = Plan.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
