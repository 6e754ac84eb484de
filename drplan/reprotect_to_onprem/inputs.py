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
    """One VM's reprotect values (names or ARM ids, as the vault knows them): ``InMageReprotectInput``
    (classic: master target, process server, retention drive, datastore, policy) or, with ``provider``
    ``modernized``, ``InMageRcmReprotectInput`` (appliance, datastore, log storage account, policy)."""

    master_target: str
    process_server: str | None
    retention_drive: str | None
    datastore: str | None
    policy: str | None
    source: str = "plan"  # plan | simulated estate defaults
    provider: str = "classic"  # classic | modernized
    appliance: str | None = None  # modernized: the replication appliance (its reprotect agent)
    log_storage_account: str | None = None  # modernized: name or ARM id

    def describe(self) -> str:
        """The inputs for people (the report and dry-run lines)."""
        if self.provider == "modernized":
            return (
                f"appliance {self.appliance}, datastore {self.datastore or '-'}, log storage account "
                f"{self.log_storage_account}, policy {self.policy or '(the only InMageRcmFailback one)'} "
                f"({self.source})"
            )
        return (
            f"master target {self.master_target}, process server {self.process_server}, retention "
            f"{self.retention_drive}, datastore {self.datastore or '-'}, policy {self.policy} ({self.source})"
        )


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
    return Inputs(
        master_target=vm.master_target,
        process_server=values["process_server"],
        retention_drive=values["retention_drive"],
        datastore=values["datastore"],
        policy=values["policy"],
        source=source,
    )


def modernized_inputs_for(ctx: RunContext, vm, state, appliance_datastores: tuple[str, ...] = ()) -> Inputs:
    """``InMageRcmReprotectInput`` values of a modernized VM: the plan's ``modernized`` section; the appliance
    that replicated the VM to Azure and the first datastore it reaches when the plan names none; in simulate
    mode, the simulated vault's log storage account when the plan names none."""
    opts = ctx.plan.modernized
    source = "plan"
    log_sa = opts.log_storage_account
    estate = getattr(ctx.onprem, "estate", None)
    if log_sa is None and estate is not None and ctx.mode == "simulate":
        log_sa, source = estate.modernized.log_storage_account, "simulated estate defaults"
    datastore = opts.datastore or (appliance_datastores[0] if appliance_datastores else None)
    return Inputs(
        master_target="",
        process_server=None,
        retention_drive=None,
        datastore=datastore,
        policy=opts.failback_policy,
        source=source,
        provider="modernized",
        appliance=opts.appliance or state.appliance_name or state.appliance_id,
        log_storage_account=log_sa,
    )
