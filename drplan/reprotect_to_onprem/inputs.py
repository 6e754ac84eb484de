"""What a reprotect to on-prem sends per VM (``InMageReprotectInput``): from the plan's ``reprotect``
section, gaps filled from the simulated estate in simulate mode."""

from __future__ import annotations

from dataclasses import dataclass

from drplan.observed import Phase
from drplan.recovery import preconditions
from drplan.recovery.phase import phase_of
from drplan.run.context import RunContext

FLOW_KIND = "reprotect"
#: phases from which there is nothing left to reprotect toward on-prem
DONE = (
    Phase.reprotected_to_onprem,
    Phase.failback_in_progress,
    Phase.failed_back,
    Phase.committed,
    Phase.reprotected_to_azure,
)


@dataclass(frozen=True)
class Inputs:
    """One VM's ``InMageReprotectInput`` values (names or ARM ids, as the vault knows them)."""

    master_target: str
    process_server: str | None
    retention_drive: str | None
    datastore: str | None
    policy: str | None
    source: str = "plan"  # plan | simulated estate defaults


_os = preconditions.os_family


def _phase(ctx: RunContext, vm: str):

    state = ctx.asr.item_state(ctx.state.refs[vm])
    return state, phase_of(state)


def _sim_master_target(ctx: RunContext, name: str):
    estate = getattr(ctx.onprem, "estate", None)
    if estate is None or ctx.mode != "simulate":
        return None
    try:
        return estate.master_target(name)
    except KeyError:
        return None


def inputs_for(ctx: RunContext, vm) -> Inputs:
    """The plan's ``reprotect`` section; in simulate mode, gaps come from the simulated estate."""
    opts = ctx.plan.reprotect
    values = {
        "process_server": opts.process_server,
        "retention_drive": opts.retention_drive,
        "datastore": opts.datastore,
        "policy": opts.policy,
    }
    source = "plan"
    mt = _sim_master_target(ctx, vm.master_target)
    if mt is not None and None in (values["process_server"], values["retention_drive"], values["policy"]):
        estate = getattr(ctx.onprem, "estate")  # noqa: B009 - the simulated site's estate
        azure_ps = next((p.name for p in estate.process_servers if p.site == "azure"), None)
        values["process_server"] = values["process_server"] or azure_ps
        values["retention_drive"] = values["retention_drive"] or mt.retention_drive
        values["datastore"] = values["datastore"] or (mt.datastores[0] if mt.datastores else None)
        values["policy"] = values["policy"] or "failback-policy"
        source = "simulated estate defaults"
    return Inputs(master_target=vm.master_target, source=source, **values)
