"""Helpers for the ASR adapter tests: estates, clients on the simulator, audit queries."""

from __future__ import annotations

from drplan.asr import AsrClient, StaticTokenCredential
from drplan.observed import Phase
from drplan.plan.schema import AzureTarget
from drplan.sim import Estate
from drplan.sim.estate import MasterTarget, PointGenerator, ProcessServer, Vm

SPEED = 1.0  # simulated time barely moves by itself: the client's waits move it (SteppingClock)


def make_estate(
    names=("app-01",),
    *,
    phase: Phase = Phase.reprotected_to_onprem,
    groups: dict[str, list[str]] | None = None,
    **fields,
) -> Estate:
    """An estate with one Linux VM per name (all in ``phase``), optionally some in replication groups."""
    group_of = {vm: g for g, members in (groups or {}).items() for vm in members}
    vms = [
        Vm(
            name=n,
            phase=phase,
            master_target="mt-lnx-01",
            process_server="ps-azure-01",
            replication_group=group_of.get(n),
        )
        for n in names
    ]
    fields.setdefault("recovery_points", PointGenerator(retention=4 * 3600))  # fewer points: faster reads
    return Estate(
        master_targets=[
            MasterTarget(name="mt-lnx-01", os="linux"),
            MasterTarget(name="mt-win-01", os="windows"),
        ],
        process_servers=[
            ProcessServer(name="ps-azure-01", site="azure"),
            ProcessServer(name="cs-01", site="onprem"),
        ],
        vms=vms,
        **fields,
    )


class SteppingClock:
    """The simulator's clock, moved forward by every wait drplan asks for: deterministic, no wall sleep."""

    def __init__(self, sim_clock):
        self.sim_clock = sim_clock
        self.sleeps: list[float] = []

    def now(self):
        return self.sim_clock.now()

    def monotonic(self) -> float:
        return self.sim_clock.monotonic()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds > 0:
            self.sim_clock.advance(seconds)


def client_for(sim, **kwargs) -> AsrClient:
    """A client for the simulated vault: endpoint + CA file, waits stepping the simulated clock, polls at
    most every 60 simulated seconds (sooner when the simulator's Retry-After says so)."""
    azure = AzureTarget(
        subscription_id=sim.subscription_id, resource_group=sim.resource_group, vault=sim.vault
    )
    kwargs.setdefault("polling_interval", 60.0)
    kwargs.setdefault("clock", SteppingClock(sim.clock))
    kwargs.setdefault("credential", StaticTokenCredential(sim.token))
    return AsrClient.for_vault(azure, endpoint=sim.endpoint, ca_file=sim.ca_file, **kwargs)


def accepted(sim, operation: str | None = None, vm: str | None = None) -> list[dict]:
    """Writes the simulator accepted (from its audit log), optionally of one operation / VM."""
    return [r for r in sim.audit.requests(operation, outcome="accepted") if vm is None or r.get("vm") == vm]
