"""ASR recovery plans: one per replication group that fails back server-side, holding exactly its members.

ASR applies one recovery-point type to a whole plan and takes no point ids at plan level (``InMage``:
``LatestTime``, ``LatestTag``); drplan uses a plan only to fail a group over *together*, and keeps its own
dependency graph between units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from azure.core.exceptions import AzureError
from azure.mgmt.recoveryservicessiterecovery import models as m

from drplan.asr import convert
from drplan.asr.base import AsrBase, Started, log
from drplan.asr.errors import map_error
from drplan.errors import NotFoundError, PreconditionError
from drplan.observed import ItemRef, Job, JobStatus, Phase
from drplan.recovery.phase import (
    CLEANUP_SCENARIOS,
    COMMIT_SCENARIOS,
    FAILBACK_SCENARIOS,
    REPROTECT_SCENARIOS,
    TEST_SCENARIOS,
    normalise,
    phase_of,
)

MAX_PLAN_SIZE = 100  # "Number of servers per recovery plan | 100" (site-recovery-limits)


@dataclass(frozen=True, slots=True)
class RecoveryPlanInfo:
    """What drplan reads from an ASR recovery plan."""

    name: str
    items: frozenset[str]  # protected item names (lower case)
    allowed_operations: tuple[str, ...]
    current_job: str | None
    current_scenario: str | None
    current_scenario_status: str | None


def _plan_info(model) -> RecoveryPlanInfo:
    p = model.properties
    items = set()
    for group in p.groups or ():
        for rpi in group.replication_protected_items or ():
            name = convert.last_segment(rpi.id) or rpi.virtual_machine_id
            if name:
                items.add(name.lower())
    scenario = p.current_scenario
    scenario_name = scenario.scenario_name if scenario else None
    job = convert.last_segment(scenario.job_id) if scenario else None
    idle = not scenario_name or scenario_name.lower() == "none"
    return RecoveryPlanInfo(
        name=model.name,
        items=frozenset(items),
        allowed_operations=tuple(p.allowed_operations or ()),
        current_job=None if idle else job,
        current_scenario=None if idle else scenario_name,
        current_scenario_status=p.current_scenario_status,
    )


def _label(name: str, refs: Sequence[ItemRef]) -> str:
    return f"{', '.join(r.vm for r in refs)} (recovery plan {name})"


class RecoveryPlanMixin(AsrBase):
    max_plan_size: int = MAX_PLAN_SIZE

    def recovery_plan(self, name: str, *, vm: str = "") -> RecoveryPlanInfo:
        model = self._call(vm or name, "read recovery plan", self._sdk.replication_recovery_plans.get, name)
        return _plan_info(model)

    def _fabric_id(self, ref: ItemRef) -> str:
        marker = f"/replicationFabrics/{ref.fabric}"
        i = ref.id.lower().find(marker.lower())
        if i >= 0:
            return ref.id[: i + len(marker)]
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers/"
            f"Microsoft.RecoveryServices/vaults/{self.vault}{marker}"
        )

    def ensure_recovery_plan(self, name: str, refs: Sequence[ItemRef]) -> RecoveryPlanInfo:
        """Create the recovery plan ``name`` holding exactly ``refs``, or reuse it if it already does.

        A plan of that name with other members is never changed: that is refused with the difference.
        """
        label = _label(name, refs)
        if len(refs) > self.max_plan_size:
            raise PreconditionError(
                f"create recovery plan of VM {label} refused: {len(refs)} VMs, "
                f"ASR allows {self.max_plan_size}",
                vm=label,
                operation="create recovery plan",
                rule="at most 100 VMs per ASR recovery plan",
            )
        wanted = frozenset(r.item.lower() for r in refs)
        try:
            info = self.recovery_plan(name, vm=label)
        except NotFoundError:
            info = None
        if info is not None:
            if info.items != wanted:
                extra, lacking = sorted(info.items - wanted), sorted(wanted - info.items)
                raise PreconditionError(
                    f"create recovery plan of VM {label} refused: ASR recovery plan {name} already exists "
                    f"with other members (not in the group: {', '.join(extra) or '-'}; missing: "
                    f"{', '.join(lacking) or '-'}); delete it in the vault or rename the group",
                    vm=label,
                    operation="create recovery plan",
                    rule="a group's recovery plan holds just its members",
                )
            log.info("reusing ASR recovery plan %s for %s", name, label)
            return info
        body = m.CreateRecoveryPlanInput(
            properties=m.CreateRecoveryPlanInputProperties(
                primary_fabric_id=self._fabric_id(refs[0]),
                recovery_fabric_id="Microsoft Azure",
                failover_deployment_model="ResourceManager",
                groups=[
                    m.RecoveryPlanGroup(
                        group_type="Boot",
                        replication_protected_items=[
                            m.RecoveryPlanProtectedItem(id=r.id or None, virtual_machine_id=r.item)
                            for r in refs
                        ],
                        start_group_actions=[],
                        end_group_actions=[],
                    )
                ],
            )
        )
        try:
            poller = self._sdk.replication_recovery_plans.begin_create(
                self.resource_group, self.vault, name, body, polling=self._polling()
            )
            model = poller.result()
        except AzureError as exc:
            raise map_error(exc, vm=label, operation="create recovery plan") from None
        log.info("created ASR recovery plan %s for %s", name, label)
        return _plan_info(model)

    # -- the idempotent runner, plan level ------------------------------------------------------------------
    def _run_plan(
        self,
        name: str,
        refs: Sequence[ItemRef],
        operation: str,
        scenario: str,
        scenarios: frozenset[str],
        *,
        ready: Callable[[RecoveryPlanInfo, dict[str, Phase]], bool],
        done: Callable[[RecoveryPlanInfo, dict[str, Phase]], bool],
        rule: str,
        send: Callable[[], Started],
        wait: bool,
        timeout: float | None,
        accept_suspended: bool = False,
    ) -> Job:
        label = _label(name, refs)

        def decide() -> Job | None:
            info = self.recovery_plan(name, vm=label)
            running = self._running(info.current_job, vm=label, operation=operation)
            if running is not None:
                if normalise(running.scenario) in scenarios:
                    return replace(running, reused=True)
                raise PreconditionError(
                    f"{operation} of VM {label} refused: job {running.name} ({running.scenario}) "
                    "is still running",
                    vm=label,
                    operation=operation,
                    rule="one ASR job at a time per recovery plan",
                )
            phases = {vm: phase_of(s) for vm, s in self.item_states(refs).items()}
            if done(info, phases):
                log.info("%s of %s: already done, not issued again", operation, label)
                return Job(name="", scenario=scenario, state=JobStatus.succeeded, target=name, reused=True)
            if not ready(info, phases):
                listing = ", ".join(f"{vm}: {p}" for vm, p in phases.items())
                raise PreconditionError(
                    f"{operation} of VM {label} refused: members are not all ready ({listing}) "
                    f"(failback doc rule: {rule})",
                    vm=label,
                    operation=operation,
                    rule=rule,
                )
            return None

        result: Started | Job | None = decide()
        if result is None:
            result = self._issue(label, operation, send, recheck=decide)
        return self._settle(
            result,
            vm=label,
            target=name,
            operation=operation,
            scenario=scenario,
            wait=wait,
            timeout=timeout,
            accept_suspended=accept_suspended,
        )

    def _plan_sender(self, name: str, refs, operation: str, begin, *body) -> Callable[[], Started]:
        return lambda: self._start(_label(name, refs), operation, begin, name, *body)

    # -- plan-level actions ----------------------------------------------------------------------------------
    def plan_failback(
        self,
        name: str,
        refs: Sequence[ItemRef],
        *,
        point_type: str = "LatestTag",
        direction: str | None = None,
        shutdown_azure_vms: bool = True,
        wait: bool = True,
        timeout: float | None = None,
    ) -> Job:
        """Fail every member back together (plan-level unplanned failover, InMage provider input).

        ``point_type``: ``LatestTag`` (latest app-consistent, the default for groups) or ``LatestTime``.
        ``direction`` defaults to the client's plan direction (PowerShell's ``RecoveryToPrimary``).
        """
        body = m.RecoveryPlanUnplannedFailoverInput(
            properties=m.RecoveryPlanUnplannedFailoverInputProperties(
                failover_direction=direction or self.plan_direction,
                source_site_operations="Required" if shutdown_azure_vms else "NotRequired",
                provider_specific_details=[m.RecoveryPlanInMageFailoverInput(recovery_point_type=point_type)],
            )
        )
        op = "failback"
        return self._run_plan(
            name,
            refs,
            op,
            "UnplannedFailover",
            FAILBACK_SCENARIOS,
            ready=lambda info, ph: all(p is Phase.reprotected_to_onprem for p in ph.values()),
            done=lambda info, ph: all(
                p in (Phase.failed_back, Phase.committed, Phase.reprotected_to_azure) for p in ph.values()
            ),
            rule="reprotect finished: protected, replication health OK",
            send=self._plan_sender(
                name, refs, op, self._sdk.replication_recovery_plans.begin_unplanned_failover, body
            ),
            wait=wait,
            timeout=timeout,
        )

    def plan_planned_failback(
        self,
        name: str,
        refs: Sequence[ItemRef],
        *,
        point_type: str = "ApplicationConsistent",
        use_multi_vm_sync_point: bool = True,
        direction: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> Job:
        """Fail every modernized member back together: plan-level ``plannedFailover`` with
        ``RecoveryPlanInMageRcmFailbackFailoverInput{recoveryPointType, useMultiVmSyncPoint}``.

        ``ApplicationConsistent`` + multi-VM sync: each replication group to its common app-consistent point;
        ``CrashConsistent``: the points ASR makes when it shuts the Azure VMs down. ``direction`` defaults to
        the client's plan direction (``RecoveryToPrimary``)."""
        body = m.RecoveryPlanPlannedFailoverInput(
            properties=m.RecoveryPlanPlannedFailoverInputProperties(
                failover_direction=direction or self.plan_direction,
                provider_specific_details=[
                    m.RecoveryPlanInMageRcmFailbackFailoverInput(
                        recovery_point_type=point_type,
                        use_multi_vm_sync_point="Enable" if use_multi_vm_sync_point else "Disable",
                    )
                ],
            )
        )
        op = "failback (planned failover)"
        return self._run_plan(
            name,
            refs,
            op,
            "PlannedFailover",
            FAILBACK_SCENARIOS,
            ready=lambda info, ph: all(p is Phase.reprotected_to_onprem for p in ph.values()),
            done=lambda info, ph: all(
                p in (Phase.failed_back, Phase.committed, Phase.reprotected_to_azure) for p in ph.values()
            ),
            rule="reprotect finished: protected, replication health OK",
            send=self._plan_sender(
                name, refs, op, self._sdk.replication_recovery_plans.begin_planned_failover, body
            ),
            wait=wait,
            timeout=timeout,
        )

    def plan_cancel(
        self, name: str, refs: Sequence[ItemRef], *, wait: bool = True, timeout: float | None = None
    ) -> Job:
        """Roll a plan-level failback back (``failoverCancel``) while its members are failed back."""
        op = "cancel failback"
        return self._run_plan(
            name,
            refs,
            op,
            "CancelFailover",
            frozenset({"cancelfailover", "failovercancel"}),
            ready=lambda info, ph: any(p is Phase.failed_back for p in ph.values()),
            done=lambda info, ph: all(p is Phase.reprotected_to_onprem for p in ph.values()),
            rule="cancel only a failback that is not committed",
            send=self._plan_sender(
                name, refs, op, self._sdk.replication_recovery_plans.begin_failover_cancel
            ),
            wait=wait,
            timeout=timeout,
        )

    def plan_commit(
        self, name: str, refs: Sequence[ItemRef], *, wait: bool = True, timeout: float | None = None
    ):
        """Commit the failback of every member (after each on-prem VM is verified)."""
        op = "commit"
        return self._run_plan(
            name,
            refs,
            op,
            "CommitFailover",
            COMMIT_SCENARIOS,
            ready=lambda info, ph: all(p is Phase.failed_back for p in ph.values()),
            done=lambda info, ph: all(
                p in (Phase.committed, Phase.reprotected_to_azure) for p in ph.values()
            ),
            rule="commit only after failback, once the on-prem VMs are verified",
            send=self._plan_sender(
                name, refs, op, self._sdk.replication_recovery_plans.begin_failover_commit
            ),
            wait=wait,
            timeout=timeout,
        )

    def plan_reprotect(
        self,
        name: str,
        refs: Sequence[ItemRef],
        *,
        toward: str = "azure",
        wait: bool = True,
        timeout: float | None = None,
    ) -> Job:
        """Plan-level reprotect ``toward`` "azure" or "onprem" (no input: ASR uses each item's settings)."""
        if toward not in ("azure", "onprem"):
            raise ValueError("toward must be 'azure' or 'onprem'")
        op = f"reprotect to {'Azure' if toward == 'azure' else 'on-prem'}"
        before, after = (
            (Phase.committed, {Phase.reprotected_to_azure})
            if toward == "azure"
            else (
                Phase.failed_over_to_azure,
                {Phase.reprotected_to_onprem, Phase.failed_back, Phase.committed, Phase.reprotected_to_azure},
            )
        )
        return self._run_plan(
            name,
            refs,
            op,
            "ReverseReplication",
            REPROTECT_SCENARIOS,
            ready=lambda info, ph: all(p is before for p in ph.values()),
            done=lambda info, ph: all(p in after for p in ph.values()),
            rule="reprotect after the "
            + ("failback is committed" if toward == "azure" else "failover to Azure"),
            send=self._plan_sender(name, refs, op, self._sdk.replication_recovery_plans.begin_reprotect),
            wait=wait,
            timeout=timeout,
        )

    def plan_test_failover(
        self,
        name: str,
        refs: Sequence[ItemRef],
        *,
        point_type: str = "LatestTag",
        network_id: str | None = None,
        network_type: str | None = None,
        direction: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> Job:
        """Plan-level test failover (a group drill). One awaiting cleanup is not issued again."""
        body = m.RecoveryPlanTestFailoverInput(
            properties=m.RecoveryPlanTestFailoverInputProperties(
                failover_direction=direction or self.plan_direction,
                network_type=network_type or ("VmNetworkAsInput" if network_id else "NoNetworkAttachAsInput"),
                network_id=network_id,
                provider_specific_details=[m.RecoveryPlanInMageFailoverInput(recovery_point_type=point_type)],
            )
        )
        op = "test failover"
        return self._run_plan(
            name,
            refs,
            op,
            "TestFailover",
            TEST_SCENARIOS,
            ready=lambda info, ph: all(p is Phase.reprotected_to_onprem for p in ph.values()),
            done=lambda info, ph: "testfailovercleanup" in {normalise(a) for a in info.allowed_operations},
            rule="reprotect finished: protected, replication health OK",
            send=self._plan_sender(
                name, refs, op, self._sdk.replication_recovery_plans.begin_test_failover, body
            ),
            wait=wait,
            timeout=timeout,
            accept_suspended=True,
        )

    def plan_test_failover_cleanup(
        self,
        name: str,
        refs: Sequence[ItemRef],
        *,
        comments: str = "drplan drill cleanup",
        wait: bool = True,
        timeout: float | None = None,
    ) -> Job:
        """Clean up a plan-level test failover; nothing pending → nothing issued."""
        body = m.RecoveryPlanTestFailoverCleanupInput(
            properties=m.RecoveryPlanTestFailoverCleanupInputProperties(comments=comments)
        )
        op = "test failover cleanup"
        pending = lambda info: "testfailovercleanup" in {normalise(a) for a in info.allowed_operations}  # noqa: E731
        return self._run_plan(
            name,
            refs,
            op,
            "TestFailoverCleanup",
            CLEANUP_SCENARIOS,
            ready=lambda info, ph: pending(info),
            done=lambda info, ph: not pending(info),
            rule="clean up only a test failover that is waiting for it",
            send=self._plan_sender(
                name, refs, op, self._sdk.replication_recovery_plans.begin_test_failover_cleanup, body
            ),
            wait=wait,
            timeout=timeout,
        )
