"""The failback doc's preconditions as pure checks over what ASR reports. No I/O.

Each function turns values read from the vault (:class:`~drplan.observed.ItemState`,
:class:`~drplan.observed.Infrastructure`) into named :class:`~drplan.observed.CheckResult` s that name the VM
(or server) and the rule, so a preflight can list every broken precondition before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from drplan.observed import AzureVmState, CheckResult, Infrastructure, ItemState, ModernizedInfrastructure

#: a configuration server whose last heartbeat is older than this is treated as not running
HEARTBEAT_MAX_AGE = 15 * 60.0
#: a mobility agent (modernized) whose last heartbeat is older than this is stale (ASR refuses reprotect)
AGENT_HEARTBEAT_MAX_AGE = 15 * 60.0
RULE_AGENT = "the mobility agent registered after the failover and sends heartbeats"
_W2008R2SP1 = re.compile(r"2008\s*R2.*SP\s*1", re.IGNORECASE)
RULE_CS = "configuration server running and connected"
RULE_MT_OS = "Windows VMs need a Windows master target, Linux VMs a Linux one"
RULE_MT = "the master target is registered with the configuration server"
RULE_PS = "the process server is registered with the configuration server"


@dataclass(frozen=True)
class HealthRule:
    """What an item health error code means for failback: check name prefix, failback-doc rule, problem."""

    prefix: str
    rule: str
    problem: str  # "{vm}" is replaced by the VM name


#: ASR item health-error codes (lower case) → the failback-doc rule they break (see docs/estate.md)
HEALTH_RULES: dict[str, HealthRule] = {
    "vmmigrated": HealthRule("vm-migrated", "the VM was not migrated", "VM {vm} was migrated"),
    "vmmovedtoanotherresourcegroup": HealthRule(
        "vm-moved",
        "the VM was not moved to another resource group",
        "VM {vm} was moved to another resource group",
    ),
    "azurevmdeleted": HealthRule(
        "azure-vm-deleted", "its Azure VM was not deleted", "the Azure VM of VM {vm} was deleted"
    ),
    "protectiondisabled": HealthRule(
        "protection-disabled", "protection was not disabled", "protection of VM {vm} is disabled"
    ),
    "vmnotfoundinconfigurationserver": HealthRule(
        "configuration-server-vm",
        "VM present in the configuration server",
        "VM {vm} is not registered with the configuration server",
    ),
    "unsupportedphysicalserver": HealthRule(
        "physical-w2008r2",
        "not a physical Windows Server 2008 R2 SP1 server",
        "VM {vm} is a physical Windows Server 2008 R2 SP1 server, which cannot fail back to VMware",
    ),
    "failbacktohypervnotsupported": HealthRule(
        "hyper-v-target",
        "not failing back VMware VMs to a Hyper-V host",
        "VM {vm} is a VMware VM whose failback target is a Hyper-V host",
    ),
}


def os_family(text: str | None) -> str | None:
    """``"windows"`` / ``"linux"`` from an OS type or version string; ``None`` when unknown."""
    t = (text or "").lower()
    return "windows" if "windows" in t else "linux" if t and t != "unknown" else None


def _fail(name: str, message: str, subject: str, rule: str) -> CheckResult:
    return CheckResult(name, False, f"{message} (failback doc rule: {rule})", subject, rule)


# -- per item ------------------------------------------------------------------------------------------------
def health_checks(vm: str, state: ItemState, *, skip: frozenset[str] = frozenset()) -> list[CheckResult]:
    """One failed check per item health error that breaks a failback-doc rule (codes in ``skip`` left out)."""
    out: list[CheckResult] = []
    for entry in state.health_errors:
        code, _, text = entry.partition(":")
        rule = HEALTH_RULES.get(code.strip().lower())
        if rule is None or code.strip().lower() in skip:
            continue
        problem = rule.problem.format(vm=vm)
        out.append(
            _fail(f"{rule.prefix} {vm}", f"{problem} (ASR: {code.strip()}: {text.strip()})", vm, rule.rule)
        )
    return out


def physical_w2008r2_check(vm: str, state: ItemState) -> list[CheckResult]:
    """A physical Windows Server 2008 R2 SP1 server cannot fail back, judged by the item's OS details."""
    physical = (state.discovery_type or "").lower() == "physical"
    if not (physical and _W2008R2SP1.search(state.os_version or "")):
        return []
    rule = HEALTH_RULES["unsupportedphysicalserver"]
    return [_fail(f"{rule.prefix} {vm}", f"{rule.problem.format(vm=vm)} ({state.os_version})", vm, rule.rule)]


def item_condition_checks(
    vm: str, state: ItemState, *, skip: frozenset[str] = frozenset()
) -> list[CheckResult]:
    """Every per-item precondition ASR exposes: health errors plus OS details, one check per rule."""
    out = health_checks(vm, state, skip=skip)
    seen = {c.rule for c in out}
    return out + [c for c in physical_w2008r2_check(vm, state) if c.rule not in seen]


# -- configuration server ----------------------------------------------------------------------------------
def configuration_server_checks(
    infra: Infrastructure, now: datetime | None = None, *, max_age: float = HEARTBEAT_MAX_AGE
) -> list[CheckResult]:
    """Each configuration server connected (provider and service) and heard from within ``max_age`` seconds
    before ``now`` (default: when ``infra`` was read, so a slow read never ages a heartbeat)."""
    now = now or infra.read_at
    if now is None:
        raise ValueError("configuration_server_checks needs the time of the read")
    if not infra.configuration_servers:
        return [
            _fail(
                "configuration-server",
                "the vault has no VMware fabric: no configuration server is registered",
                "",
                RULE_CS,
            )
        ]
    out: list[CheckResult] = []
    for cs in infra.configuration_servers:
        out.append(_connected(cs))
        out.append(_heartbeat(cs, now, max_age))
    return out


def _connected(cs) -> CheckResult:
    name = f"configuration-server {cs.name}"
    if cs.connected:
        return CheckResult(name, True, "connected", cs.name, RULE_CS)
    status = cs.connection_status or "unknown"
    service = f", service {cs.service_status}" if cs.service_status else ""
    return _fail(
        name,
        f"configuration server {cs.name} is not connected to the vault ({status}{service})",
        cs.name,
        RULE_CS,
    )


def _heartbeat(cs, now: datetime, max_age: float) -> CheckResult:
    name = f"configuration-server-heartbeat {cs.name}"
    if cs.last_heartbeat is None:
        return _fail(name, f"configuration server {cs.name} reports no heartbeat", cs.name, RULE_CS)
    age = (now - cs.last_heartbeat).total_seconds()
    if age > max_age:
        return _fail(
            name,
            f"configuration server {cs.name} last sent a heartbeat {round(age / 60)} minutes ago "
            f"({cs.last_heartbeat:%Y-%m-%d %H:%M:%S}Z); it is not running",
            cs.name,
            RULE_CS,
        )
    return CheckResult(name, True, f"heartbeat {int(age)}s ago", cs.name, RULE_CS)


# -- master targets and process servers ----------------------------------------------------------------------
def master_target_registered(name: str, infra: Infrastructure) -> CheckResult:
    """The plan's master target is one the configuration server lists."""
    check = f"master-target-registered {name}"
    if infra.master_target(name) is not None:
        return CheckResult(check, True, "registered", name, RULE_MT)
    known = ", ".join(sorted(m.name for m in infra.master_targets)) or "none"
    return _fail(
        check,
        f"master target {name} is not registered with the configuration server (registered: {known})",
        name,
        RULE_MT,
    )


def process_server_registered(name: str, infra: Infrastructure, purpose: str) -> CheckResult:
    """A process server the plan names (``purpose``: which setting) is one the configuration server lists."""
    check = f"process-server-registered {name}"
    if infra.process_server(name) is not None:
        return CheckResult(check, True, "registered", name, RULE_PS)
    known = ", ".join(sorted(p.name for p in infra.process_servers)) or "none"
    return _fail(
        check,
        f"process server {name} ({purpose}) is not registered with the configuration server "
        f"(registered: {known})",
        name,
        RULE_PS,
    )


def master_target_os_check(vm: str, vm_os: str, mt_name: str, infra: Infrastructure) -> list[CheckResult]:
    """The VM's OS family (``windows``/``linux``) matches its master target's, as ASR reports the latter."""
    mt = infra.master_target(mt_name)
    mt_os = os_family(mt.os_type) if mt is not None else None
    if mt_os is None or mt_os == vm_os:
        return []
    return [
        _fail(
            f"master-target-os {vm}",
            f"a {vm_os} VM needs a {vm_os} master target; VM {vm} is mapped to {mt_name}, which runs "
            f"{mt_os} according to ASR",
            vm,
            RULE_MT_OS,
        )
    ]


def master_target_in_use_check(
    vm: str, mt_name: str, state: ItemState, infra: Infrastructure
) -> list[CheckResult]:
    """ASR replicates the VM through the master target the plan names (whose snapshots were checked)."""
    used = infra.master_target(state.master_target_id or "")
    if used is None or used.name == mt_name:
        return []
    return [
        _fail(
            f"master-target {vm}",
            f"VM {vm} replicates through master target {used.name} in ASR, but the plan maps it to "
            f"{mt_name}: fix vms[].master_target",
            vm,
            "the plan's master target is the one ASR replicates the VM to",
        )
    ]


# -- modernized: the mobility agent after the failover -------------------------------------------------------
def agent_ready_check(
    vm: str, state: ItemState, now: datetime, *, max_age: float = AGENT_HEARTBEAT_MAX_AGE
) -> CheckResult:
    """The item's mobility agent registered after the failover
    (``isAgentRegistrationSuccessfulAfterFailover``) and sent a heartbeat within ``max_age`` seconds before
    ``now``: what a modernized reprotect needs."""
    name = f"agent-registered {vm}"
    if state.agent_registered_after_failover is False:
        return _fail(
            name,
            f"the mobility agent of VM {vm} did not register after the failover "
            "(isAgentRegistrationSuccessfulAfterFailover false): keep the VM running with the mobility "
            "service up and the required URLs reachable",
            vm,
            RULE_AGENT,
        )
    if state.agent_heartbeat is None:
        return _fail(name, f"the mobility agent of VM {vm} reports no heartbeat", vm, RULE_AGENT)
    age = (now - state.agent_heartbeat).total_seconds()
    if age > max_age:
        return _fail(
            name,
            f"the mobility agent of VM {vm} last sent a heartbeat {round(age / 60)} minutes ago "
            f"({state.agent_heartbeat:%Y-%m-%d %H:%M:%S}Z)",
            vm,
            RULE_AGENT,
        )
    return CheckResult(name, True, f"registered, heartbeat {int(max(age, 0))}s ago", vm, RULE_AGENT)


# -- modernized: appliances, disks, datastores, vCenter, the Azure VM, the item ------------------------------
#: one replication appliance holds at most this many replicated disks (Microsoft's modernized limits)
DISKS_PER_APPLIANCE = 60
RULE_APPLIANCE = "a replication appliance registered to the vault, healthy and connected"
RULE_DISKS = f"at most {DISKS_PER_APPLIANCE} disks per replication appliance"
RULE_DATASTORE = "the appliance reaches the target datastore"
RULE_VCENTER = "the appliances discovered the vCenter"
RULE_AZURE_VM = "the Azure VM stays running with the mobility service up"
RULE_ALLOWED = "PlannedFailover is an allowed operation of the item"
RULE_HEALTH = "replication health OK"
RULE_SNAPSHOTS = "no snapshots on the on-prem target VM"
RULE_IR = "initial replication (or resync) to on-prem complete"
RULE_POLICY = "the plan's recovery-point promise is one the modernized API can keep"


def appliance_checks(
    names: list[str],
    infra: ModernizedInfrastructure,
    now: datetime | None = None,
    *,
    max_age: float = 15 * 60.0,
) -> list[CheckResult]:
    """Each named appliance registered to the vault, healthy, connected, heard from within ``max_age``."""
    now = now or infra.read_at
    out: list[CheckResult] = []
    for name in names:
        check = f"appliance {name}"
        a = infra.appliance(name)
        if a is None:
            known = ", ".join(sorted(x.name for x in infra.appliances)) or "none"
            out.append(
                _fail(
                    check,
                    f"replication appliance {name} is not registered to the vault (registered: {known})",
                    name,
                    RULE_APPLIANCE,
                )
            )
            continue
        problems = []
        if not a.connected:
            problems.append(f"not connected ({a.connection_status})")
        if not a.healthy:
            errors = "; ".join(a.health_errors)
            problems.append(f"health {a.health}" + (f": {errors}" if errors else ""))
        if a.last_heartbeat is not None and now is not None:
            age = (now - a.last_heartbeat).total_seconds()
            if age > max_age:
                problems.append(f"last heartbeat {round(age / 60)} minutes ago")
        if problems:
            out.append(
                _fail(
                    check, f"replication appliance {a.name} is " + ", ".join(problems), a.name, RULE_APPLIANCE
                )
            )
        else:
            out.append(CheckResult(check, True, "registered, healthy, connected", a.name, RULE_APPLIANCE))
    return out


def appliance_disk_checks(states: Mapping[str, ItemState]) -> list[CheckResult]:
    """The plan's modernized VMs replicate at most :data:`DISKS_PER_APPLIANCE` disks per appliance."""
    per: dict[str, list[tuple[str, int]]] = {}
    for vm, s in states.items():
        if s.family == "modernized" and s.appliance_name:
            per.setdefault(s.appliance_name, []).append((vm, s.disk_count or 1))
    out = []
    for appliance, vms in sorted(per.items()):
        total = sum(n for _, n in vms)
        check = f"appliance-disks {appliance}"
        if total > DISKS_PER_APPLIANCE:
            listing = ", ".join(f"{vm}: {n}" for vm, n in vms)
            out.append(
                _fail(
                    check,
                    f"appliance {appliance} would replicate {total} disks of this plan "
                    f"({listing}), more than {DISKS_PER_APPLIANCE}: use a separate failback "
                    "appliance for some VMs",
                    appliance,
                    RULE_DISKS,
                )
            )
        else:
            out.append(
                CheckResult(check, True, f"{total} of {DISKS_PER_APPLIANCE} disks", appliance, RULE_DISKS)
            )
    return out


def datastore_check(
    vm: str, datastore: str | None, appliance: str | None, infra: ModernizedInfrastructure
) -> list[CheckResult]:
    """The VM's target datastore is one its appliance reaches (``accessibleDatastores``)."""
    a = infra.appliance(appliance or "")
    if not datastore or a is None:
        return []
    check = f"datastore {vm}"
    if datastore in a.datastores:
        return [CheckResult(check, True, f"{datastore} reachable from {a.name}", vm, RULE_DATASTORE)]
    reach = ", ".join(a.datastores) or "none"
    return [
        _fail(
            check,
            f"datastore {datastore} of VM {vm} is not reachable from appliance {a.name} (it reaches {reach})",
            vm,
            RULE_DATASTORE,
        )
    ]


def vcenter_discovered_check(host: str, infra: ModernizedInfrastructure) -> CheckResult:
    """The plan's vCenter is one the appliances discovered (by address or name)."""
    check = f"vcenter-discovered {host}"
    key = host.lower()
    for vc in infra.vcenters:
        if key in {vc.ip_address.lower(), vc.friendly_name.lower(), vc.name.lower()}:
            return CheckResult(check, True, f"discovered as {vc.name}", host, RULE_VCENTER)
    known = ", ".join(f"{v.name} ({v.ip_address})" for v in infra.vcenters) or "none"
    return _fail(
        check,
        f"vCenter {host} is not among the vCenters the appliances discovered ({known})",
        host,
        RULE_VCENTER,
    )


def azure_vm_check(vm: str, azure: AzureVmState) -> CheckResult:
    """The failed-over VM runs in Azure (a planned failover shuts it down and syncs its last changes)."""
    check = f"azure-vm-running {vm}"
    if not azure.exists:
        return _fail(check, f"the Azure VM {azure.name} of VM {vm} does not exist", vm, RULE_AZURE_VM)
    if not azure.running:
        return _fail(
            check,
            f"the Azure VM {azure.name} of VM {vm} is {azure.power_state}, not running: start it",
            vm,
            RULE_AZURE_VM,
        )
    return CheckResult(check, True, "running", vm, RULE_AZURE_VM)


def modernized_item_checks(vm: str, state: ItemState, now: datetime) -> list[CheckResult]:
    """A modernized VM about to fail back: PlannedFailover allowed, replication healthy, its replication to
    on-prem complete, its mobility agent registered after the failover with a recent heartbeat."""
    out = [agent_ready_check(vm, state, now)]
    allowed = [a for a in state.allowed_operations]
    if any(a.lower() == "plannedfailover" for a in allowed):
        out.append(CheckResult(f"planned-failover-allowed {vm}", True, "allowed", vm, RULE_ALLOWED))
    else:
        out.append(
            _fail(
                f"planned-failover-allowed {vm}",
                f"ASR does not allow a planned failover of VM {vm} "
                f"now (allowed: {', '.join(allowed) or 'none'})",
                vm,
                RULE_ALLOWED,
            )
        )
    if state.replication_health.lower() in ("normal", "", "none"):
        out.append(
            CheckResult(
                f"replication-health {vm}", True, state.replication_health or "Normal", vm, RULE_HEALTH
            )
        )
    else:
        out.append(
            _fail(
                f"replication-health {vm}",
                f"replication health of VM {vm} is {state.replication_health}, not Normal",
                vm,
                RULE_HEALTH,
            )
        )
    progress = [p for p in (state.initial_replication_progress, state.resync_progress) if p is not None]
    complete = state.initial_replication_complete
    if complete is False or (complete is None and progress and min(progress) < 100):
        shown = f"{min(progress)}%" if progress else "in progress"
        out.append(
            _fail(
                f"initial-replication {vm}",
                f"the replication of VM {vm} to on-prem is not complete "
                f"({shown}): wait for the reprotect to finish",
                vm,
                RULE_IR,
            )
        )
    else:
        out.append(CheckResult(f"initial-replication {vm}", True, "complete", vm, RULE_IR))
    return out


def snapshot_check(vm: str, target: str, has_snapshots: bool) -> CheckResult:
    """The on-prem VM the failback writes to carries no snapshots."""
    check = f"onprem-snapshots {vm}"
    if has_snapshots:
        return _fail(
            check,
            f"the on-prem VM {target} of VM {vm} has snapshots: remove them before failback",
            vm,
            RULE_SNAPSHOTS,
        )
    return CheckResult(check, True, "no snapshots", vm, RULE_SNAPSHOTS)


def modernized_policy_check(
    unit: str, kind: str, policy: str | None, group_failback_mode: str | None, point_override: bool = False
) -> list[CheckResult]:
    """A unit's recovery-point promise mapped onto the modernized API, or refused naming the setting that
    works. No point id exists at modernized failback: only a type (ApplicationConsistent, CrashConsistent),
    and a group's common point only through a recovery plan with multi-VM sync."""
    check = f"modernized-policy {unit}"
    if point_override:
        return [
            _fail(
                check,
                f"unit {unit}: a specific recovery point cannot be chosen at a modernized failback "
                "(ASR makes the point when the planned failover runs); drop the --recovery-point "
                "override or give it 'latest' or 'latest-app-consistent'",
                unit,
                RULE_POLICY,
            )
        ]
    if kind == "group" and policy == "common-app-consistent" and group_failback_mode == "per-item":
        return [
            _fail(
                check,
                f"replication group {unit}: failback_mode per-item cannot keep the common "
                "app-consistent point on the modernized API (no point id per item); set "
                f"replication_groups[{unit}].failback_mode: recovery-plan (one planned failover "
                "with multi-VM sync) or recovery_point: latest",
                unit,
                RULE_POLICY,
            )
        ]
    return [CheckResult(check, True, modernized_point_type(kind, policy), unit, RULE_POLICY)]


def modernized_point_type(kind: str, policy: str | None) -> str:
    """What a unit's policy asks of the modernized API, for people: type and, for groups, multi-VM sync."""
    what = "CrashConsistent" if policy in (None, "latest") else "ApplicationConsistent"
    if kind == "group" and policy == "common-app-consistent":
        what += " + multi-VM sync (recovery plan)"
    return what


# -- classic out of support ----------------------------------------------------------------------------------
def classic_support_warning(classic_vms: list[str] | tuple[str, ...]) -> str | None:
    """The warning a run gives once when any VM still replicates with a classic provider; ``None`` if none."""
    if not classic_vms:
        return None
    shown = ", ".join(sorted(classic_vms)[:10]) + (
        f" and {len(classic_vms) - 10} more" if len(classic_vms) > 10 else ""
    )
    return (
        f"{len(classic_vms)} VM(s) replicate with the classic providers (InMage / InMageAzureV2): {shown}. "
        "Classic VMware/physical disaster recovery is out of support since March 2026: no DR operations in "
        "the portal, any replication change needs the modernized experience. drplan still fails them back "
        "on the classic path. To migrate: the VMs must be replicating forward (on-prem → Azure, so after "
        "this failback and its reprotect to Azure), mobility agents and appliance components at 9.50 or "
        "later, at most 10 machines per migration run, and ASR recovery plans are not migrated: re-create "
        "them (drplan re-creates its own)."
    )
