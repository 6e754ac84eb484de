"""The failback doc's preconditions as pure checks over what ASR reports. No I/O.

Each function turns values read from the vault (:class:`~drplan.observed.ItemState`,
:class:`~drplan.observed.Infrastructure`) into named :class:`~drplan.observed.CheckResult` s that name the VM
(or server) and the rule, so a preflight can list every broken precondition before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from drplan.observed import CheckResult, Infrastructure, ItemState

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
