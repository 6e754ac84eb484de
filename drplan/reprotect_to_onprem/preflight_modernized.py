"""Reprotect preflight for VMs on the modernized providers (``InMageRcmReprotectInput``): read only.

Per VM: its conditions (health errors), failed over to Azure and committed (or already reprotected: nothing
is sent), its mobility agent registered after the failover with a recent heartbeat (ASR refuses otherwise),
the appliance registered, healthy and connected and reaching the datastore, the log storage account known,
the original VM present when the plan asks for the original location. Vault: the plan's vCenter discovered
by the appliances. Fills ``todo`` with each VM's inputs.
"""

from __future__ import annotations

from collections.abc import Mapping

from drplan.errors import DrplanError, TransientError
from drplan.observed import CheckResult, ItemState, ModernizedInfrastructure, Phase
from drplan.recovery import preconditions as pre
from drplan.recovery.phase import phase_of
from drplan.reprotect_to_onprem.inputs import DONE, Inputs, modernized_inputs_for
from drplan.run.context import RunContext

RULE_LOCATION = "the original on-prem VM exists for an original-location reprotect"


def modernized_checks(
    ctx: RunContext, states: Mapping[str, ItemState], todo: dict[str, Inputs]
) -> list[CheckResult]:
    try:
        infra = ctx.asr.modernized_infrastructure()
    except TransientError:
        raise
    except DrplanError as exc:
        return [CheckResult("replication-appliances", False, str(exc), "", pre.RULE_APPLIANCE)]
    now = infra.read_at or ctx.clock.now()
    by_name = {v.name: v for v in ctx.plan.vms}
    out: list[CheckResult] = [pre.vcenter_discovered_check(ctx.plan.vcenter.host, infra)]
    appliances: set[str] = set()
    for vm, state in states.items():
        phase = phase_of(state)
        name = f"asr-item {vm}"
        if phase in DONE:
            out.append(CheckResult(name, True, f"already {phase}: nothing to send", vm, "reprotect"))
            continue
        out += pre.item_condition_checks(vm, state)
        problem = _phase_problem(vm, state, phase)
        if problem is not None:
            out.append(problem)
            continue
        inputs = modernized_inputs_for(ctx, by_name[vm], state, _datastores(infra, state))
        out.append(pre.agent_ready_check(vm, state, now))
        out += _input_checks(vm, inputs, infra)
        appliances.add(inputs.appliance or "")
        todo[vm] = inputs
    out += pre.appliance_checks(sorted(appliances - {""}), infra, now)
    out += _location_checks(ctx, {vm: by_name[vm] for vm in todo})
    return out


def _datastores(infra: ModernizedInfrastructure, state: ItemState) -> tuple[str, ...]:
    a = infra.appliance(state.appliance_name or state.appliance_id or "")
    return a.datastores if a is not None else ()


def _phase_problem(vm: str, state: ItemState, phase: Phase) -> CheckResult | None:
    name = f"asr-item {vm}"
    if phase != Phase.failed_over_to_azure:
        return CheckResult(
            name,
            False,
            f"VM {vm} is {phase}: reprotect to on-prem needs it failed over to Azure and committed",
            vm,
            "failed over to Azure",
        )
    if any(a.lower() == "commit" for a in state.allowed_operations):
        return CheckResult(
            name,
            False,
            f"VM {vm}: its failover to Azure is not committed yet; commit it first",
            vm,
            "commit the failover to Azure before reprotect",
        )
    return None


def _input_checks(vm: str, inputs: Inputs, infra: ModernizedInfrastructure) -> list[CheckResult]:
    missing = [
        k
        for k, v in (
            ("modernized.appliance", inputs.appliance),
            ("modernized.datastore", inputs.datastore),
            ("modernized.log_storage_account", inputs.log_storage_account),
        )
        if not v
    ]
    if missing:
        return [
            CheckResult(
                f"reprotect-inputs {vm}",
                False,
                f"VM {vm}: set {', '.join(missing)} in the plan (InMageRcmReprotectInput needs them)",
                vm,
                "reprotect inputs",
            )
        ]
    if inputs.policy and infra.policy(inputs.policy, "InMageRcmFailback") is None:
        known = ", ".join(p.name for p in infra.policies if p.provider == "InMageRcmFailback") or "none"
        return [
            CheckResult(
                f"reprotect-inputs {vm}",
                False,
                f"VM {vm}: modernized.failback_policy {inputs.policy!r} is not an InMageRcmFailback policy "
                f"of the vault ({known})",
                vm,
                "reprotect inputs",
            )
        ]
    ok = CheckResult(f"reprotect-inputs {vm}", True, inputs.describe(), vm, "reprotect inputs")
    return [ok, *pre.datastore_check(vm, inputs.datastore, inputs.appliance, infra)]


def _location_checks(ctx: RunContext, vms: Mapping[str, object]) -> list[CheckResult]:
    """``modernized.location: original``: each VM's on-prem VM must still exist (ASR would otherwise create
    a new one and replicate it in full)."""
    if ctx.plan.modernized.location != "original" or not vms:
        return []
    targets = {vm: getattr(v, "vcenter_name", None) or vm for vm, v in vms.items()}
    try:
        site = ctx.onprem.read_state(sorted(set(targets.values())))
    except DrplanError as exc:
        return [CheckResult("onprem-original-vm", False, str(exc), ctx.plan.vcenter.host, RULE_LOCATION)]
    out = []
    for vm, target in targets.items():
        seen = site.vms.get(target)
        if seen is not None and seen.present:
            out.append(CheckResult(f"original-vm {vm}", True, f"{target} present", vm, RULE_LOCATION))
        else:
            out.append(
                CheckResult(
                    f"original-vm {vm}",
                    False,
                    f"VM {vm}: its on-prem VM {target} is gone, so ASR would reprotect to a new VM (full "
                    "replication); set modernized.location: alternate (or auto) to accept that",
                    vm,
                    RULE_LOCATION,
                )
            )
    return out
