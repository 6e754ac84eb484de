"""Open the run's targets: the ASR client, the on-prem site and the clock, for one of three modes.

* ``simulate`` (or an ``estate`` file): the embedded simulator, started in this process;
* env ``DRPLAN_SIM_ENDPOINT`` + ``DRPLAN_SIM_CA_FILE`` (what ``drplan sim start`` prints; ``DRPLAN_ASR_*``
  also accepted): an external simulator, ASR over HTTPS and its on-prem side via :mod:`drplan.sim.remote`;
* otherwise the real vault (Azure credential chain) and the real vCenter.

Shared by the flows and by ``drplan plan --simulate``; Prefect-free (a Prefect Secret block is resolved by
the ``secret_loader`` the caller passes).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from drplan.clock import REAL_CLOCK, Clock
from drplan.errors import VCenterError
from drplan.plan.schema import Plan


@dataclass
class Targets:
    asr: Any  # drplan.asr.AsrClient
    onprem: Any  # drplan.run.ports.OnPremSite
    clock: Clock
    mode: str  # "simulate" | "external-sim" | "real"
    sim: Any = None  # the embedded simulator, when mode == "simulate"


def external_simulator() -> tuple[str, str | None] | None:
    """The external simulator's endpoint and CA file from the environment, if one is configured."""
    endpoint = os.environ.get("DRPLAN_SIM_ENDPOINT") or os.environ.get("DRPLAN_ASR_ENDPOINT")
    if not endpoint:
        return None
    return endpoint, os.environ.get("DRPLAN_SIM_CA_FILE") or os.environ.get("DRPLAN_ASR_CA_FILE")


@contextlib.contextmanager
def open_targets(
    plan: Plan,
    *,
    simulate: bool = False,
    estate: str | None = None,
    speed: float = 600.0,
    secret_loader: Callable[[str], str] | None = None,
) -> Iterator[Targets]:
    """Connect to ASR and on-prem for ``plan``; everything opened is closed on exit."""
    from drplan.asr import AsrClient

    with contextlib.ExitStack() as stack:
        external = external_simulator()
        if simulate or estate:
            from drplan.sim import Estate, start_simulator

            model = Estate.from_yaml(estate) if estate else Estate.from_plan(plan)
            sim = stack.enter_context(start_simulator(model, speed=speed))
            asr = AsrClient.for_vault(plan.azure, endpoint=sim.endpoint, ca_file=sim.ca_file, clock=sim.clock)
            targets = Targets(asr, sim.onprem, sim.clock, "simulate", sim)
        elif external:
            from drplan.sim.remote import RemoteSite

            endpoint, ca_file = external
            onprem = RemoteSite(endpoint, ca_file=ca_file)
            asr = AsrClient.for_vault(plan.azure, endpoint=endpoint, ca_file=ca_file, clock=onprem.clock)
            targets = Targets(asr, onprem, onprem.clock, "external-sim")
        else:
            from drplan.vcenter import VCenterSite

            asr = AsrClient.for_vault(plan.azure)
            try:
                onprem = VCenterSite.from_plan(plan.vcenter, secret_loader=secret_loader)
            except VCenterError as exc:  # reported by preflight with every other failed check
                onprem = UnreachableSite(exc)
            targets = Targets(asr, onprem, REAL_CLOCK, "real")
        stack.callback(_close, targets.onprem)
        if hasattr(asr, "close"):
            stack.callback(asr.close)
        yield targets


class UnreachableSite:
    """The on-prem site when connecting failed: every read raises that error (preflight lists it)."""

    def __init__(self, error: Exception):
        self.error = error

    def read_state(self, vms, *, port_groups=(), datastores=()):
        raise self.error

    def wait_for_boot(self, vm, *, timeout, require_tools=True, require_ip=True):
        raise self.error

    def close(self) -> None:
        pass


def _close(site) -> None:
    with contextlib.suppress(Exception):
        site.close()
