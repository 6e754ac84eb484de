"""The ASR-side runtime of one protected item (what the vault knows beyond the estate's VM)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from drplan.observed import Phase


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
