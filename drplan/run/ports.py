"""The ports a run talks through, as ``Protocol``s: the recovery service (ASR), the on-prem site (vCenter),
the clock, the approver and the event sink. Adapters implement them; fakes implement them in tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from drplan.observed import SiteState, VmState


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
