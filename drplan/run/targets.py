"""Open the run's targets: the ASR client, the on-prem site and the clock, for one of three modes.

* ``simulate`` (or an ``estate`` file): the embedded simulator, started in this process;
* ``settings.sim_endpoint`` + ``settings.sim_ca_file`` + ``settings.sim_token`` (``DRPLAN_SIM_ENDPOINT`` /
  ``DRPLAN_SIM_CA_FILE`` / ``DRPLAN_SIM_TOKEN``: what ``drplan sim start`` prints): an external simulator,
  ASR over HTTPS and its on-prem side via :mod:`drplan.sim.remote`;
* otherwise the real vault (Azure credential chain) and the real vCenter.

Shared by the flows and by ``drplan plan --simulate``; Prefect-free (a Prefect Secret block is resolved by
the ``secret_loader`` the caller passes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from drplan.clock import REAL_CLOCK, Clock
from drplan.errors import VCenterError
from drplan.observed import Phase, SiteState, VmState
from drplan.plan.schema import Plan
from drplan.run.ports import OnPremSite, RecoveryService
from drplan.settings import Settings


@dataclass
class Targets:
    """What a run talks to, and how it was reached."""

    asr: RecoveryService
    onprem: OnPremSite
    clock: Clock
    mode: str  # "simulate" | "external-sim" | "real"
    sim: Any = None  # the embedded simulator (drplan.sim.Simulator), when mode == "simulate"


@contextlib.contextmanager
def open_targets(
    plan: Plan,
    *,
    simulate: bool = False,
    estate: str | None = None,
    speed: float = 600.0,
    settings: Settings | None = None,
    secret_loader: Callable[[str], str] | None = None,
    simulated_phases: Mapping[str, Phase] | None = None,
    simulated_provider: str = "modernized",
) -> Iterator[Targets]:
    """Connect to ASR and on-prem for ``plan``; everything opened is closed on exit.

    ``simulated_provider``: the ASR providers of a simulated estate generated from the plan (modernized, or
    classic — always classic for a plan with master targets and no ``modernized:`` section);
    ``simulated_phases``: where it starts, by provider (a reprotect starts with the VMs failed over to Azure,
    a modernized drill with them replicating to Azure; absent: ready to fail back)."""
    from drplan.asr import AsrClient, StaticTokenCredential

    settings = settings or Settings.model_construct()
    if "modernized" not in plan.model_fields_set and plan.master_targets:
        simulated_provider = "classic"  # a plan written for the classic providers only
    pool = max(64, settings.max_workers)  # one kept-alive HTTPS connection per concurrent step
    with contextlib.ExitStack() as stack:
        asr: Any
        onprem: Any
        if simulate or estate:
            from drplan.sim import Estate, start_simulator

            if estate:
                model = Estate.from_yaml(estate)
            else:
                phase = (simulated_phases or {}).get(simulated_provider)
                extra = {"phase": phase} if phase is not None else {}
                model = Estate.from_plan(plan, provider=simulated_provider, **extra)  # type: ignore[arg-type]
            sim = stack.enter_context(start_simulator(model, speed=speed))
            asr = AsrClient.for_vault(
                plan.azure,
                endpoint=sim.endpoint,
                ca_file=sim.ca_file,
                credential=StaticTokenCredential(sim.token),
                clock=sim.clock,
                pool_maxsize=pool,
            )
            targets = Targets(asr, sim.onprem, sim.clock, "simulate", sim)
        elif settings.sim_endpoint:
            from drplan.sim.remote import RemoteSite

            endpoint, ca_file = settings.sim_endpoint, settings.sim_ca_file
            token = settings.sim_token.get_secret_value() if settings.sim_token else ""
            onprem = RemoteSite(endpoint, ca_file=ca_file, token=token)
            asr = AsrClient.for_vault(
                plan.azure,
                endpoint=endpoint,
                ca_file=ca_file,
                credential=StaticTokenCredential(token),
                clock=onprem.clock,
                pool_maxsize=pool,
            )
            targets = Targets(asr, onprem, onprem.clock, "external-sim")
        else:
            from drplan.vcenter import VCenterSite

            asr = AsrClient.for_vault(plan.azure, pool_maxsize=pool)
            try:
                onprem = VCenterSite.from_plan(plan.vcenter, secret_loader=secret_loader)
            except VCenterError as exc:  # reported by preflight with every other failed check
                onprem = UnreachableSite(exc)
            targets = Targets(asr, onprem, REAL_CLOCK, "real")
        stack.callback(_close, targets.onprem)
        stack.callback(asr.close)
        yield targets


class UnreachableSite:
    """The on-prem site when connecting failed: every read raises that error (preflight lists it)."""

    def __init__(self, error: Exception):
        self.error = error

    def read_state(
        self, vms: Sequence[str], *, port_groups: Sequence[str] = (), datastores: Sequence[str] = ()
    ) -> SiteState:
        raise self.error

    def wait_for_boot(
        self, vm: str, *, timeout: float, require_tools: bool = True, require_ip: bool = True
    ) -> VmState:
        raise self.error

    def close(self) -> None:
        pass


def _close(site) -> None:
    with contextlib.suppress(Exception):
        site.close()
