"""The ASR-side runtime of one protected item (what the vault knows beyond the estate's VM)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from drplan.observed import Phase
from drplan.sim.recovery_points import SimPoint


@dataclass
class Item:
    """ASR-side runtime of one protected item."""

    vm: str  # friendly name
    name: str  # ARM name (GUID)
    current_job: str | None = None
    last_failover_time: datetime | None = None
    last_test_failover_time: datetime | None = None
    failover_point: str | None = None
    test_state: str | None = None
    test_job: str | None = None
    test_vm: str | None = None
    stopped_at: datetime | None = None
    azure_vm: str = "none"  # none | running | stopped | deleted
    commit_pending: bool = False  # a failover to Azure not yet committed
    prev_phase: Phase | None = None
    # -- modernized (InMageRcm / InMageRcmFailback) --------------------------------------------------------
    produced_points: list[SimPoint] = field(default_factory=list)  # points a planned failover produced
    planned_failover_start: datetime | None = None
    planned_failover_status: str | None = None  # Succeeded | Failed | Cancelled
    alternate: bool = False  # failing back to a new on-prem VM (the original is gone)
    datastore: str | None = None  # target datastore of the reprotect to on-prem
    policy: str | None = None  # policy the last reprotect used
    reprotect_job: str | None = None  # the reprotect whose replication progress the item shows
    test_network: str | None = None  # the isolated network of a drill's test VM in Azure
