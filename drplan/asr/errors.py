"""Map Azure SDK / ARM errors and failed ASR jobs onto :mod:`drplan.errors`.

Every message names the VM (or group) and the operation. Precondition failures name the failback doc rule
they come from (Microsoft's failback doc), so a DR engineer knows what to fix.
"""

from __future__ import annotations

import re
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from drplan.errors import (
    AgentNotInstalledError,
    AsrError,
    NotFoundError,
    OperationInProgressError,
    PermissionError_,
    PreconditionError,
    TransientError,
)

AGENT_NOT_INSTALLED = re.compile(
    r"agent\s+(isn't|is\s+not|not)\s+(installed|registered)|AgentNotInstalled|AgentNotRegistered", re.I
)

# ASR error codes (as the simulator and the failback doc name them) → the failback doc rule they break.
CODE_RULES: dict[str, str] = {
    "vmmigrated": "the VM was not migrated",
    "vmmovedtoanotherresourcegroup": "the VM was not moved to another resource group",
    "azurevmdeleted": "its Azure VM was not deleted",
    "protectiondisabled": "protection was not disabled",
    "unsupportedphysicalserver": "not a physical Windows Server 2008 R2 SP1 server",
    "failbacktohypervnotsupported": "not failing back VMware VMs to a Hyper-V host",
    "processservernotfound": "the process server is registered with the configuration server",
    "replicationunhealthy": "reprotect finished: protected, replication health OK",
    "vcenternotconnected": "vCenter connected",
    "configurationservernotconnected": "configuration server running and connected",
    "vmnotfoundinconfigurationserver": "VM present in the configuration server",
    "mastertargethassnapshots": "master target has no snapshots",
    "mastertargetosmismatch": "Windows VMs need a Windows master target, Linux VMs a Linux one",
    "replicationgroupmastertargetmismatch": "all members of a replication group use the same master target",
    "mastertargetnotfound": "the master target is registered with the configuration server",
    "norecoverypoint": "every VM has at least one recovery point",
    "recoverypointnotfound": "every VM has at least one recovery point",
    "replicationgroupfailoverrequired": "members of a multi-VM replication group fail over together",
}

# Fallback for other codes: (pattern over the message, rule); first match wins, most specific first.
DOC_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.I), rule)
    for p, rule in (
        (r"migrated", "the VM was not migrated"),
        (r"another resource ?group", "the VM was not moved to another resource group"),
        (r"azure.{0,20}\bwas deleted", "its Azure VM was not deleted"),
        (r"protection (is|was) disabled", "protection was not disabled"),
        (r"2008 ?R2", "not a physical Windows Server 2008 R2 SP1 server"),
        (r"hyper-?v", "not failing back VMware VMs to a Hyper-V host"),
        (r"snapshot", "master target has no snapshots"),
        (
            r"not (registered|present|found) (with|in) the configuration server",
            "VM present in the configuration server",
        ),
        (r"configuration server.{0,60}not connected", "configuration server running and connected"),
        (r"v ?center.{0,60}not connected", "vCenter connected"),
        (r"recovery point", "every VM has at least one recovery point"),
        (r"multi-?vm|replication group", "members of a multi-VM replication group fail over together"),
        (
            r"reprotect|not protected|replication health",
            "reprotect finished: protected, replication health OK",
        ),
    )
)


def doc_rule(code: str, message: str = "") -> str:
    """The failback doc rule an ASR error (code, message) points at, or ``""``."""
    if code and code.lower() in CODE_RULES:
        return CODE_RULES[code.lower()]
    for pattern, rule in DOC_RULES:
        if pattern.search(message):
            return rule
    return ""


def _arm_error(exc: AzureError) -> tuple[str, str]:
    """(code, message) from ARM's error envelope, falling back to the exception text."""
    envelope = getattr(exc, "error", None)
    code = getattr(envelope, "code", None) if envelope is not None else None
    message = getattr(envelope, "message", None) if envelope is not None else None
    if not message:
        message = getattr(exc, "message", None) or str(exc)
        message = message.splitlines()[0] if message else type(exc).__name__
    return code or "", message


def _retry_after(exc: AzureError) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def map_error(exc: BaseException, *, vm: str, operation: str) -> AsrError:
    """Turn an SDK exception into the matching :class:`AsrError` subclass."""
    if isinstance(exc, AsrError):
        return exc
    if not isinstance(exc, AzureError):
        return AsrError(f"{operation} of VM {vm} failed: {exc}", vm=vm, operation=operation)
    code, message = _arm_error(exc)
    status = getattr(exc, "status_code", None)
    detail = f"({code}) {message}" if code and f"({code})" not in message else message
    detail = detail.rstrip(". ")
    where = f"{operation} of VM {vm}"
    kw: dict[str, Any] = {"vm": vm, "operation": operation, "code": code}

    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return PermissionError_(
            f"{where} was refused: not authorised (HTTP {status}): {detail}. drplan does not retry this; "
            "check the credential and its role on the Recovery Services vault",
            **kw,
        )
    if AGENT_NOT_INSTALLED.search(f"{code} {message}"):
        return AgentNotInstalledError(
            f"{where} failed: the mobility agent isn't installed/registered with the configuration server "
            f"yet ({detail}); after the on-prem VM starts this lasts up to 15 minutes: retry within it",
            **kw,
        )
    if status == 429 or (status is not None and status >= 500):
        return TransientError(
            f"{where} hit a transient ASR error (HTTP {status}): {detail}",
            retry_after=_retry_after(exc),
            throttled=status == 429,
            **kw,
        )
    if status == 409 and "inprogress" in code.lower():
        return OperationInProgressError(f"{where} was refused while another ASR job runs: {detail}", **kw)
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        return NotFoundError(f"{where} failed: not found in the vault: {detail}", **kw)
    if isinstance(exc, ServiceRequestError | ServiceResponseError) or status is None:
        text = str(exc)
        if "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text:
            return AsrError(
                f"{where} failed: the ASR endpoint's TLS certificate was not trusted ({message}); "
                "pass the endpoint's CA file (TLS verification stays on)",
                **kw,
            )
        return TransientError(f"{where} could not reach ASR: {message}", **kw)
    if isinstance(exc, HttpResponseError) and 400 <= status < 500:
        rule = doc_rule(code, message)
        hint = f" (failback doc rule: {rule})" if rule else ""
        return PreconditionError(f"{where} was refused by ASR: {detail}{hint}", rule=rule, **kw)
    return AsrError(f"{where} failed: {detail}", **kw)


def job_failure(job_name: str, errors: tuple[str, ...], *, vm: str, operation: str, state: str) -> AsrError:
    """The error for an ASR job that ended Failed/Cancelled; ``errors`` are its "code: message" texts."""
    text = "; ".join(errors) or "no error details"
    where = f"{operation} of VM {vm}"
    kw: dict[str, Any] = {
        "vm": vm,
        "operation": operation,
        "code": errors[0].split(":", 1)[0] if errors else "",
    }
    if AGENT_NOT_INSTALLED.search(text):
        return AgentNotInstalledError(
            f"{where} failed (job {job_name}): the mobility agent isn't installed/registered with the "
            f"configuration server yet ({text}); retry within the agent registration window",
            **kw,
        )
    code, _, message = errors[0].partition(":") if errors else ("", "", "")
    rule = doc_rule(code.strip(), message.strip() or text)
    if rule:
        return PreconditionError(
            f"{where} failed (job {job_name} {state}): {text} (failback doc rule: {rule})", rule=rule, **kw
        )
    return AsrError(f"{where} failed (job {job_name} {state}): {text}", **kw)
