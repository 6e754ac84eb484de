"""The ports a run talks through, as ``Protocol``s: the recovery service (ASR), the on-prem site (vCenter),
the clock, the approver and the event sink. Adapters implement them; fakes implement them in tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from drplan.clock import Clock
from drplan.observed import (
    AzureVmState,
    Infrastructure,
    ItemRef,
    ItemState,
    Job,
    ModernizedInfrastructure,
    RecoveryPoint,
    SiteState,
    VmState,
)
from drplan.plan.schema import GroupFailbackMode

__all__ = [
    "Approval",
    "Approver",
    "Clock",
    "EventSink",
    "OnPremSite",
    "RecoveryService",
    "UnitEvent",
    "no_approver",
    "no_events",
]


class RecoveryService(Protocol):
    """What the runs call on Azure Site Recovery (:class:`drplan.asr.AsrClient` implements it).

    Every write reads the item's phase first: work already done is not issued again, a job already running
    is awaited. ``state``: the item as the caller just read it (saves a GET)."""

    def discover(self, vm_names: Sequence[str]) -> dict[str, ItemRef]: ...
    def list_items(self) -> list[ItemState]: ...
    def item_state(self, ref: ItemRef) -> ItemState: ...
    def item_states(self, refs: Sequence[ItemRef]) -> dict[str, ItemState]: ...
    def recovery_points(self, ref: ItemRef) -> list[RecoveryPoint]: ...
    def recovery_points_for(self, refs: Iterable[ItemRef]) -> dict[str, list[RecoveryPoint]]: ...
    def recovery_point(self, ref: ItemRef, point_id: str) -> RecoveryPoint: ...
    def infrastructure(self) -> Infrastructure: ...

    def failback(
        self,
        ref: ItemRef,
        point: RecoveryPoint | None = None,
        *,
        point_type: str | None = None,
        timeout: float | None = None,
        state: ItemState | None = None,
    ) -> Job: ...

    def failback_group(
        self,
        group: str,
        refs: Sequence[ItemRef],
        *,
        mode: GroupFailbackMode,
        points: Mapping[str, RecoveryPoint] | None = None,
        point_type: str = "LatestTag",
        timeout: float | None = None,
    ) -> dict[str, Job]: ...

    def commit(
        self, ref: ItemRef, *, timeout: float | None = None, state: ItemState | None = None
    ) -> Job: ...

    def commit_group(
        self, group: str, refs: Sequence[ItemRef], *, mode: GroupFailbackMode, timeout: float | None = None
    ) -> dict[str, Job]: ...

    def reprotect_to_azure(
        self,
        ref: ItemRef,
        *,
        process_server_id: str | None = None,
        policy_id: str | None = None,
        timeout: float | None = None,
        state: ItemState | None = None,
    ) -> Job: ...

    def reprotect_to_onprem(
        self,
        ref: ItemRef,
        *,
        master_target_id: str | None,
        process_server_id: str | None,
        retention_drive: str | None,
        profile_id: str | None,
        datastore_name: str | None = None,
        timeout: float | None = None,
    ) -> Job: ...

    def test_failover(
        self,
        ref: ItemRef,
        point: RecoveryPoint | None = None,
        *,
        network_id: str | None = None,
        timeout: float | None = None,
    ) -> Job: ...

    def test_failover_cleanup(
        self, ref: ItemRef, *, comments: str = ..., timeout: float | None = None
    ) -> Job: ...

    # -- modernized providers (InMageRcm -> InMageRcmFailback); see drplan/asr/rcm_operations.py -------------
    def modernized_infrastructure(self) -> ModernizedInfrastructure: ...

    def planned_failback(
        self,
        ref: ItemRef,
        point_type: str = "CrashConsistent",
        *,
        timeout: float | None = None,
        state: ItemState | None = None,
    ) -> Job: ...

    def cancel_failback(
        self, ref: ItemRef, *, timeout: float | None = None, state: ItemState | None = None
    ) -> Job: ...

    def reprotect_to_onprem_modernized(
        self,
        ref: ItemRef,
        *,
        appliance: str,
        datastore: str,
        log_storage_account: str,
        policy: str | None = None,
        timeout: float | None = None,
        state: ItemState | None = None,
    ) -> Job: ...

    def replication_progress(
        self, ref: ItemRef, *, state: ItemState | None = None
    ) -> tuple[int | None, str]: ...

    def wait_agent_ready(
        self, ref: ItemRef, *, timeout: float, poll: float = 60.0, state: ItemState | None = None
    ) -> ItemState: ...

    def reprotect_to_azure_modernized(
        self,
        ref: ItemRef,
        *,
        process_server: str | None = None,
        policy: str | None = None,
        run_as_account: str | None = None,
        readiness_timeout: float = 1200.0,
        agent_registration_window: float | None = None,
        timeout: float | None = None,
        state: ItemState | None = None,
    ) -> Job: ...

    def azure_vm(self, name: str, *, resource_group: str | None = None, vm: str = "") -> AzureVmState: ...

    def azure_vms(self) -> dict[tuple[str, str], AzureVmState]: ...

    def get_job(self, name: str, *, vm: str = "", operation: str = "get job") -> Job: ...

    def wait_job(
        self,
        name: str,
        deadline: float | None = None,
        *,
        timeout: float | None = None,
        vm: str = "",
        operation: str = "",
        accept_suspended: bool = False,
    ) -> Job: ...


@dataclass(frozen=True)
class Approval:
    """An approver's answer: not approved unless someone said so, and who."""

    approved: bool
    approver: str = ""
    comment: str = ""


class Approver(Protocol):
    """Asks someone to approve ``node`` (an approval hook or the commit gate) and waits for the answer."""

    def __call__(self, node: str, prompt: str) -> Approval: ...


@dataclass(frozen=True)
class UnitEvent:
    """One transition of one node (unit, hook or gate), for the event sinks."""

    node: str
    transition: str  # failback-started, failed-back, verified, committed, reprotected, failed, skipped, ...
    message: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)


class EventSink(Protocol):
    """Receives every :class:`UnitEvent` of a run (Prefect events, the progress artifact, the CLI display)."""

    def __call__(self, event: UnitEvent) -> None: ...


@runtime_checkable
class OnPremSite(Protocol):
    """What the flows need from vCenter. One instance per run; call :meth:`close` at the end."""

    def read_state(
        self, vms: Sequence[str], *, port_groups: Sequence[str] = (), datastores: Sequence[str] = ()
    ) -> SiteState:
        """Read every named VM (and master target) in one batched round trip.

        Unknown names come back with ``present=False``. A disconnected site returns ``connected=False``
        (it never raises for that), so preflight can report it as a check.
        """

    def wait_for_boot(
        self, vm: str, *, timeout: float, require_tools: bool = True, require_ip: bool = True
    ) -> VmState:
        """Wait until the VM is powered on (and tools running / guest IP when required).

        Raises :class:`drplan.errors.BootTimeout` naming what was missing when the timeout passes.
        The timeout is in the site's own clock (simulated seconds for the simulated estate).
        """

    def close(self) -> None:
        """Disconnect. Safe to call twice."""


def no_approver(node: str, prompt: str) -> Approval:
    """The approver of a run nobody can answer: every approval is declined, saying so."""
    return Approval(False, "", "nobody can approve in this run")


def no_events(event: UnitEvent) -> None:
    """The event sink of a run nobody watches."""
