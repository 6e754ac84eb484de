"""Item-level ASR actions, each idempotent: read the item's phase, then skip, await, or issue exactly once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from azure.mgmt.recoveryservicessiterecovery import models as m

from drplan.asr.base import Started, log
from drplan.asr.infrastructure import InfrastructureMixin
from drplan.errors import AgentNotInstalledError, PreconditionError
from drplan.observed import ItemRef, ItemState, Job, JobStatus, Phase, RecoveryPoint
from drplan.recovery.phase import (
    CLEANUP_SCENARIOS,
    COMMIT_SCENARIOS,
    FAILBACK_SCENARIOS,
    REPROTECT_SCENARIOS,
    TEST_SCENARIOS,
    is_modernized,
    normalise,
    phase_of,
)

REPROTECT_RULE = "reprotect finished: protected, replication health OK"
POINT_TYPES = ("LatestTime", "LatestTag", "Custom")


def _done(scenario: str, vm: str) -> Job:
    """The stand-in for work that is already done and whose job ASR no longer reports as current."""
    return Job(name="", scenario=scenario, state=JobStatus.succeeded, target=vm, reused=True)


def _cleanup_pending(state: ItemState) -> bool:
    return "testfailovercleanup" in {normalise(a) for a in state.allowed_operations}


class ItemOperationsMixin(InfrastructureMixin):
    # -- the idempotent runner -----------------------------------------------------------------------------
    def _run(
        self,
        ref: ItemRef,
        operation: str,
        scenario: str,
        decide: Callable[[ItemState], Job | None],
        send: Callable[[], Started],
        *,
        wait: bool,
        timeout: float | None,
        accept_suspended: bool = False,
        state: ItemState | None = None,
    ) -> Job:
        """``decide`` reads a state, returns a job to reuse (running or done) or ``None``: send the write.

        ``state``: the item's state as the caller read it moments ago in the same step (saves a GET); the
        phase is still checked on it before the write, and a failed write re-reads before deciding again.
        """
        if state is None or state.ref.item.lower() != ref.item.lower():
            state = self.item_state(ref, operation=operation)
        result: Started | Job | None = decide(state)
        if isinstance(result, Job) and result.done and not result.name:
            log.info(
                "%s of %s: already done (phase %s), not issued again", operation, ref.vm, phase_of(state)
            )
        if result is None:
            result = self._issue(
                ref.vm, operation, send, recheck=lambda: decide(self.item_state(ref, operation=operation))
            )
        return self._settle(
            result,
            vm=ref.vm,
            target=ref.vm,
            operation=operation,
            scenario=scenario,
            wait=wait,
            timeout=timeout,
            accept_suspended=accept_suspended,
            note_reuse=True,
            item=(ref, decide),
        )

    def _decide(
        self,
        state: ItemState,
        operation: str,
        scenario: str,
        scenarios: frozenset[str],
        *,
        ready: set[Phase],
        done: set[Phase],
        rule: str,
        why: str,
    ) -> Job | None:
        vm = state.ref.vm
        state, running = self.current(state, operation=operation)
        phase = phase_of(state)
        if running is None and phase is Phase.failback_in_progress and scenarios is FAILBACK_SCENARIOS:
            running = self._listed_inflight(state.ref)  # ASR shows a failback running but names no job
            if running is None:  # it ended while we looked: decide on the item as it is now
                state = self.item_state(state.ref, operation=operation)
                phase = phase_of(state)
        if running is not None:
            if normalise(running.scenario) in scenarios:
                return replace(running, reused=True)
            raise PreconditionError(
                f"{operation} of VM {vm} refused: job {running.name} ({running.scenario}) is still running "
                "on it; wait for it to end, then run again",
                vm=vm,
                operation=operation,
                rule="one ASR job at a time per VM",
            )
        protection = normalise(state.protection_state)
        if "unprotected" in protection or "disabled" in protection:
            raise PreconditionError(
                f"{operation} of VM {vm} refused: protection is disabled (protection state "
                f"{state.protection_state!r}) (failback doc rule: protection was not disabled)",
                vm=vm,
                operation=operation,
                rule="protection was not disabled",
            )
        if phase in done:  # (logged by the caller: after a job of ours, it is that job's success)
            return _done(scenario, vm)
        if phase not in ready:
            raise PreconditionError(
                f"{operation} of VM {vm} refused: it is {phase} "
                f"(protection state {state.protection_state!r}, "
                f"provider {state.provider or 'unknown'}); {why} (failback doc rule: {rule})",
                vm=vm,
                operation=operation,
                rule=rule,
            )
        return None

    # -- failback --------------------------------------------------------------------------------------------
    def failback(
        self,
        ref: ItemRef,
        point: RecoveryPoint | None = None,
        *,
        point_type: str | None = None,
        direction: str | None = None,
        shutdown_azure_vm: bool = True,
        wait: bool = True,
        timeout: float | None = None,
        state: ItemState | None = None,
    ) -> Job:
        """Fail the VM back to on-prem: unplanned failover with the ``InMage`` input.

        ``point`` → ``Custom`` with its id; otherwise ``point_type`` ``LatestTime`` (default,
        crash-consistent) or ``LatestTag`` (latest app-consistent). Already failed back → not issued again; a
        failback job already running → awaited. ``direction`` defaults to the client's (PowerShell's
        ``PrimaryToRecovery``).
        """
        op = "failback"
        if point is not None:
            rp_type, rp_id = "Custom", point.id
        else:
            rp_type, rp_id = point_type or "LatestTime", None
        if rp_type not in POINT_TYPES or (rp_type == "Custom" and not rp_id):
            raise PreconditionError(
                f"failback of VM {ref.vm}: recovery point type must be LatestTime, LatestTag, or Custom "
                f"with a point (got {rp_type!r})",
                vm=ref.vm,
                operation=op,
            )

        def decide(state: ItemState) -> Job | None:
            if is_modernized(state):
                raise PreconditionError(
                    f"failback of VM {ref.vm} refused: it replicates with {state.provider} (modernized), "
                    "which fails back only by planned failover to a point type: use planned_failback()",
                    vm=ref.vm,
                    operation=op,
                    rule="each VM through its own provider's operations",
                )
            return self._decide_failback(state, op, "UnplannedFailover")

        body = m.UnplannedFailoverInput(
            properties=m.UnplannedFailoverInputProperties(
                failover_direction=direction or self.direction,
                source_site_operations="Required" if shutdown_azure_vm else "NotRequired",
                provider_specific_details=m.InMageUnplannedFailoverInput(
                    recovery_point_type=rp_type, recovery_point_id=rp_id
                ),
            )
        )
        send = self._sender(ref, op, self._sdk.replication_protected_items.begin_unplanned_failover, body)
        return self._run(ref, op, "UnplannedFailover", decide, send, wait=wait, timeout=timeout, state=state)

    # -- commit ----------------------------------------------------------------------------------------------
    def commit(
        self, ref: ItemRef, *, wait: bool = True, timeout: float | None = None, state: ItemState | None = None
    ) -> Job:
        """Commit the failback (deletes the failed-over VM in Azure), once the on-prem VM is verified.
        ``state``: the item as the caller just read it (the phase is checked on it; saves a GET)."""
        op = "commit"

        def decide(state: ItemState) -> Job | None:
            return self._decide(
                state,
                op,
                "CommitFailover",
                COMMIT_SCENARIOS,
                ready={Phase.failed_back},
                done={Phase.committed, Phase.reprotected_to_azure},
                rule="commit only after failback, once the on-prem VM is verified",
                why="only a failed-back VM (commit pending) can be committed",
            )

        send = self._sender(ref, op, self._sdk.replication_protected_items.begin_failover_commit)
        return self._run(ref, op, "CommitFailover", decide, send, wait=wait, timeout=timeout, state=state)

    # -- reprotect -------------------------------------------------------------------------------------------
    def reprotect_to_onprem(
        self,
        ref: ItemRef,
        *,
        master_target_id: str | None,
        process_server_id: str | None,
        retention_drive: str | None,
        profile_id: str | None,
        datastore_name: str | None = None,
        run_as_account_id: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> Job:
        """Reprotect Azure → on-prem (``InMageReprotectInput``) after the failover to Azure was committed.

        ``master_target_id`` / ``process_server_id``: the servers' names (as in the plan) or ids; the ids the
        configuration server lists for them are sent (unknown → :class:`PreconditionError`, nothing sent).
        """
        op = "reprotect to on-prem"
        needed = {
            "master target": master_target_id,
            "process server": process_server_id,
            "retention drive": retention_drive,
            "failback policy": profile_id,
        }
        absent = [k for k, v in needed.items() if not v]
        if absent:
            raise PreconditionError(
                f"{op} of VM {ref.vm} needs {', '.join(absent)}: set them in the plan "
                "(vms[].master_target, reprotect.process_server, reprotect.retention_drive, "
                "reprotect.policy)",
                vm=ref.vm,
                operation=op,
                rule="reprotect needs master target, process server, retention drive",
            )

        def decide(state: ItemState) -> Job | None:
            if is_modernized(state):
                raise PreconditionError(
                    f"{op} of VM {ref.vm} refused: it replicates with {state.provider} (modernized): use "
                    "reprotect_to_onprem_modernized() (an appliance, a datastore, a log storage account)",
                    vm=ref.vm,
                    operation=op,
                    rule="each VM through its own provider's operations",
                )
            return self._decide_reprotect_onprem(state, op)

        def body() -> m.ReverseReplicationInput:
            return m.ReverseReplicationInput(
                properties=m.ReverseReplicationInputProperties(
                    failover_direction="RecoveryToPrimary",
                    provider_specific_details=m.InMageReprotectInput(
                        master_target_id=_given(
                            self.server_id("master target", master_target_id, vm=ref.vm, operation=op)
                        ),
                        process_server_id=_given(
                            self.server_id("process server", process_server_id, vm=ref.vm, operation=op)
                        ),
                        retention_drive=_given(retention_drive),
                        profile_id=_given(profile_id),
                        datastore_name=datastore_name,
                        run_as_account_id=run_as_account_id,
                    ),
                )
            )

        send = self._lazy_sender(ref, op, self._sdk.replication_protected_items.begin_reprotect, body)
        return self._run(ref, op, "ReverseReplication", decide, send, wait=wait, timeout=timeout)

    def _decide_failback(self, state: ItemState, op: str, scenario: str) -> Job | None:
        """The phase rule of a failback (either provider): reprotected toward on-prem, replication healthy."""
        decision = self._decide(
            state,
            op,
            scenario,
            FAILBACK_SCENARIOS,
            ready={Phase.reprotected_to_onprem},
            done={Phase.failed_back, Phase.committed, Phase.reprotected_to_azure},
            rule=REPROTECT_RULE,
            why="it must be reprotected toward on-prem (and the reprotect finished) first",
        )
        if decision is None and state.replication_health not in ("Normal", "", "None"):
            raise PreconditionError(
                f"{op} of VM {state.ref.vm} refused: replication health is {state.replication_health}, "
                f"not Normal (failback doc rule: {REPROTECT_RULE})",
                vm=state.ref.vm,
                operation=op,
                rule=REPROTECT_RULE,
            )
        return decision

    def _decide_reprotect_onprem(self, state: ItemState, op: str) -> Job | None:
        """The phase rule of a reprotect Azure → on-prem (either provider): failed over and committed."""
        ref = state.ref
        decision = self._decide(
            state,
            op,
            "ReverseReplication",
            REPROTECT_SCENARIOS,
            ready={Phase.failed_over_to_azure},
            done={
                Phase.reprotected_to_onprem,
                Phase.failback_in_progress,
                Phase.failed_back,
                Phase.committed,
                Phase.reprotected_to_azure,
            },
            rule="reprotect Azure → on-prem after the failover to Azure",
            why="it must be failed over to Azure",
        )
        if decision is None and "commit" in {normalise(a) for a in state.allowed_operations}:
            raise PreconditionError(
                f"{op} of VM {ref.vm} refused: its failover to Azure is not committed yet",
                vm=ref.vm,
                operation=op,
                rule="commit the failover to Azure before reprotect",
            )
        return decision

    def reprotect_to_azure(
        self,
        ref: ItemRef,
        *,
        process_server_id: str | None = None,
        policy_id: str | None = None,
        master_target_id: str | None = None,
        storage_account_id: str | None = None,
        log_storage_account_id: str | None = None,
        run_as_account_id: str | None = None,
        agent_registration_window: float | None = None,
        retry_every: float = 120.0,
        wait: bool = True,
        timeout: float | None = None,
        state: ItemState | None = None,
    ) -> Job:
        """Reprotect on-prem → Azure (``InMageAzureV2ReprotectInput``) after the failback was committed.

        Until the on-prem VM's agent re-registers with the configuration server (up to 15 minutes after it
        starts) ASR answers "agent isn't installed"; with ``agent_registration_window`` (seconds) that
        error is retried every ``retry_every`` seconds on ``self.clock`` until the window ends; otherwise
        (or after it)
        :class:`AgentNotInstalledError` is raised.
        """
        op = "reprotect to Azure"

        def decide(state: ItemState) -> Job | None:
            return self._decide(
                state,
                op,
                "ReverseReplication",
                REPROTECT_SCENARIOS,
                ready={Phase.committed},
                done={Phase.reprotected_to_azure},
                rule="reprotect on-prem → Azure after the failback is committed",
                why="only a committed failback can be reprotected to Azure",
            )

        def body() -> m.ReverseReplicationInput:
            return m.ReverseReplicationInput(
                properties=m.ReverseReplicationInputProperties(
                    failover_direction="RecoveryToPrimary",
                    provider_specific_details=m.InMageAzureV2ReprotectInput(
                        process_server_id=self.server_id(
                            "process server", process_server_id, vm=ref.vm, operation=op
                        ),
                        policy_id=policy_id,
                        master_target_id=self.server_id(
                            "master target", master_target_id, vm=ref.vm, operation=op
                        ),
                        storage_account_id=storage_account_id,
                        log_storage_account_id=log_storage_account_id,
                        run_as_account_id=run_as_account_id,
                    ),
                )
            )

        send = self._lazy_sender(ref, op, self._sdk.replication_protected_items.begin_reprotect, body)
        deadline = self.clock.monotonic() + (agent_registration_window or 0.0)
        while True:
            try:
                return self._run(
                    ref, op, "ReverseReplication", decide, send, wait=wait, timeout=timeout, state=state
                )
            except AgentNotInstalledError:
                state = None  # a retry reads the item afresh
                left = deadline - self.clock.monotonic()
                if left <= 0:
                    raise
                log.info("%s of %s: agent not registered yet, retrying in %ss", op, ref.vm, retry_every)
                self.clock.sleep(min(retry_every, left))

    # -- test failover (drills) ----------------------------------------------------------------------------
    def test_failover(
        self,
        ref: ItemRef,
        point: RecoveryPoint | None = None,
        *,
        point_type: str | None = None,
        network_id: str | None = None,
        network_type: str | None = None,
        direction: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> Job:
        """Test failover (a drill): ``InMage`` input for a VM reprotected toward on-prem,
        ``InMageAzureV2`` for one replicating to Azure. A test failover awaiting cleanup is not issued
        again."""
        op = "test failover"

        def decide(state: ItemState) -> Job | None:
            state, running = self.current(state, operation=op)
            if running is None and _cleanup_pending(state):
                return _done("TestFailover", ref.vm)
            return self._decide(
                state,
                op,
                "TestFailover",
                TEST_SCENARIOS,
                ready={Phase.reprotected_to_onprem, Phase.replicating_to_azure, Phase.reprotected_to_azure},
                done=set(),
                rule=REPROTECT_RULE,
                why="a drill needs a protected, replicating VM",
            )

        state = self.item_state(ref, operation=op)
        details: Any
        if normalise(state.provider) == "inmagercm":  # modernized: a drill is a test failover into Azure
            if not network_id:
                raise PreconditionError(
                    f"{op} of VM {ref.vm} refused: a modernized drill needs the isolated Azure network "
                    "(drill.test_network: a virtual network name or ARM id)",
                    vm=ref.vm,
                    operation=op,
                    rule="a drill runs in an isolated test network",
                )
            network_id = self.network_id(network_id)
            details = m.InMageRcmTestFailoverInput(
                network_id=network_id, recovery_point_id=point.id if point else None
            )
            default_direction = "PrimaryToRecovery"
        elif normalise(state.provider) == "inmage":
            details = m.InMageTestFailoverInput(
                recovery_point_type="Custom" if point else (point_type or "LatestTime"),
                recovery_point_id=point.id if point else None,
            )
            default_direction = self.direction
        else:
            details = m.InMageAzureV2TestFailoverInput(recovery_point_id=point.id if point else None)
            default_direction = "PrimaryToRecovery"
        body = m.TestFailoverInput(
            properties=m.TestFailoverInputProperties(
                failover_direction=direction or default_direction,
                network_type=network_type or ("VmNetworkAsInput" if network_id else "NoNetworkAttachAsInput"),
                network_id=network_id,
                provider_specific_details=details,
            )
        )
        send = self._sender(ref, op, self._sdk.replication_protected_items.begin_test_failover, body)
        return self._run(
            ref, op, "TestFailover", decide, send, wait=wait, timeout=timeout, accept_suspended=True
        )

    def test_failover_cleanup(
        self,
        ref: ItemRef,
        *,
        comments: str = "drplan drill cleanup",
        wait: bool = True,
        timeout: float | None = None,
    ) -> Job:
        """Clean up a test failover. Nothing to clean up → nothing issued."""
        op = "test failover cleanup"

        def decide(state: ItemState) -> Job | None:
            state, running = self.current(state, operation=op)
            if running is not None and normalise(running.scenario) in CLEANUP_SCENARIOS:
                return replace(running, reused=True)
            if running is not None:
                raise PreconditionError(
                    f"{op} of VM {ref.vm} refused: job {running.name} ({running.scenario}) is still running",
                    vm=ref.vm,
                    operation=op,
                    rule="one ASR job at a time per VM",
                )
            if not _cleanup_pending(state):
                log.info("%s of %s: no test failover (left) to clean up", op, ref.vm)
                return _done("TestFailoverCleanup", ref.vm)
            return None

        body = m.TestFailoverCleanupInput(properties=m.TestFailoverCleanupInputProperties(comments=comments))
        send = self._sender(ref, op, self._sdk.replication_protected_items.begin_test_failover_cleanup, body)
        return self._run(ref, op, "TestFailoverCleanup", decide, send, wait=wait, timeout=timeout)

    # -- helpers ---------------------------------------------------------------------------------------------
    def network_id(self, name_or_id: str) -> str:
        """An Azure virtual network's ARM id: as given, or ``name`` in the vault's resource group."""
        if name_or_id.startswith("/"):
            return name_or_id
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}/providers/"
            f"Microsoft.Network/virtualNetworks/{name_or_id}"
        )

    def _sender(self, ref: ItemRef, operation: str, begin, *body) -> Callable[[], Started]:
        return lambda: self._start(ref.vm, operation, begin, ref.fabric, ref.container, ref.item, *body)

    def _lazy_sender(
        self, ref: ItemRef, operation: str, begin, body: Callable[[], Any]
    ) -> Callable[[], Started]:
        """Like :meth:`_sender`, building the body only when a write is really sent (ids resolved then)."""
        return lambda: self._start(ref.vm, operation, begin, ref.fabric, ref.container, ref.item, body())


def _given(value: str | None) -> str:
    """A reprotect input the caller checked is present (``needed`` refuses a missing one before sending)."""
    if value is None:
        raise AssertionError("a required reprotect input is missing")
    return value
