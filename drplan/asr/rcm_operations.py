"""Item-level actions of the modernized providers (``InMageRcm`` forward, ``InMageRcmFailback`` back), each
idempotent like the classic ones: read the item's phase, then skip, await, or issue exactly once.

The cycle: reprotect Azure → on-prem (``InMageRcmReprotectInput``) → planned failover by point *type*
(``InMageRcmFailbackPlannedFailoverProviderInput``; no point id exists at failback) → commit (shared with the
classic path: :meth:`~drplan.asr.operations.ItemOperationsMixin.commit`) → reprotect on-prem → Azure
(``InMageRcmFailbackReprotectInput``), once the mobility agent registered after the failover and sends
heartbeats. A failed planned failover rolls itself back in ASR; where it did not, :meth:`planned_failback`
cancels it (``failoverCancel``) before raising, so a re-run can retry.
"""

from __future__ import annotations

from dataclasses import replace

from azure.mgmt.recoveryservicessiterecovery import models as m

from drplan.asr.base import log
from drplan.asr.operations import ItemOperationsMixin
from drplan.asr.rcm_infrastructure import ModernizedInfrastructureMixin
from drplan.errors import AgentNotInstalledError, AsrError, JobTimeout, PreconditionError, TransientError
from drplan.observed import ItemRef, ItemState, Job, JobStatus, Phase
from drplan.recovery import preconditions
from drplan.recovery.phase import (
    REPROTECT_SCENARIOS,
    is_modernized,
    normalise,
    phase_of,
)

#: the only point types a modernized failback takes (no point id)
RCM_POINT_TYPES = ("ApplicationConsistent", "CrashConsistent")
CANCEL_SCENARIOS = frozenset({"cancelfailover", "failovercancel"})
_ALIASES = {
    "latesttag": "ApplicationConsistent",
    "latestapplicationconsistent": "ApplicationConsistent",
    "applicationconsistent": "ApplicationConsistent",
    "latesttime": "CrashConsistent",
    "latest": "CrashConsistent",
    "latestcrashconsistent": "CrashConsistent",
    "crashconsistent": "CrashConsistent",
}


def rcm_point_type(point_type: str | None) -> str:
    """``ApplicationConsistent`` / ``CrashConsistent`` from either vocabulary (``LatestTag`` → app-consistent,
    ``LatestTime`` → crash-consistent); ``ValueError`` for anything else (``Custom``: no point id exists)."""
    key = normalise(point_type or "CrashConsistent")
    if key not in _ALIASES:
        raise ValueError(
            f"recovery point type {point_type!r}: a modernized failback takes ApplicationConsistent or "
            "CrashConsistent (no specific point)"
        )
    return _ALIASES[key]


def rolled_back(err: AsrError, what: str) -> AsrError:
    """``err`` (same type) saying how the failed failback was rolled back; ``rolled_back`` is ``True``."""
    kw: dict = {"vm": err.vm, "operation": err.operation, "code": err.code}
    if isinstance(err, PreconditionError):
        kw["rule"] = err.rule
    out = type(err)(f"{err} ({what}; a re-run retries the failback)", **kw)
    out.rolled_back = True  # type: ignore[attr-defined]
    return out


def _not_modernized(state: ItemState, op: str, instead: str) -> PreconditionError:
    vm = state.ref.vm
    return PreconditionError(
        f"{op} of VM {vm} refused: it replicates with {state.provider or 'an unknown provider'} (classic), "
        f"not a modernized provider; use {instead}",
        vm=vm,
        operation=op,
        rule="each VM through its own provider's operations",
    )


class RcmOperationsMixin(ModernizedInfrastructureMixin, ItemOperationsMixin):
    # -- failback --------------------------------------------------------------------------------------------
    def planned_failback(
        self,
        ref: ItemRef,
        point_type: str = "CrashConsistent",
        *,
        wait: bool = True,
        timeout: float | None = None,
        state: ItemState | None = None,
    ) -> Job:
        """Fail a modernized VM back to on-prem: item ``plannedFailover`` with
        ``InMageRcmFailbackPlannedFailoverProviderInput{recoveryPointType}``.

        ``point_type``: ``CrashConsistent`` (its own latest point, made once ASR shut the Azure VM down) or
        ``ApplicationConsistent`` (its newest app-consistent point then); ``LatestTime``/``LatestTag`` are
        accepted as those. Already failed back → not issued again (a done :class:`Job` with ``reused``); a
        planned failover already running → awaited. A failed job raises the mapped :class:`AsrError`, whose
        message says that ASR rolled the failback back (or that drplan cancelled it with ``failoverCancel``
        because ASR had not) and has ``rolled_back = True``: the item is ready to retry.
        """
        op = "failback (planned failover)"
        try:
            rp_type = rcm_point_type(point_type)
        except ValueError as exc:
            raise PreconditionError(f"{op} of VM {ref.vm}: {exc}", vm=ref.vm, operation=op) from None

        def decide(state: ItemState) -> Job | None:
            if not is_modernized(state):
                raise _not_modernized(state, op, "failback() with an InMage recovery point")
            return self._decide_failback(state, op, "PlannedFailover")

        body = m.PlannedFailoverInput(
            properties=m.PlannedFailoverInputProperties(
                provider_specific_details=m.InMageRcmFailbackPlannedFailoverProviderInput(
                    recovery_point_type=rp_type
                )
            )
        )
        send = self._sender(ref, op, self._sdk.replication_protected_items.begin_planned_failover, body)
        job = self._run(ref, op, "PlannedFailover", decide, send, wait=False, timeout=None, state=state)
        if not wait or not job.name or job.done and job.state is JobStatus.succeeded:
            return job

        def settled(state: ItemState) -> Job | None:  # a failed failover ASR did not roll back is not done
            if normalise(state.last_planned_failover_status) in ("failed", "cancelled"):
                return None
            return decide(state)

        try:
            done = self.await_on_item(
                ref,
                job.name,
                settled,
                scenario="PlannedFailover",
                timeout=timeout,
                operation=op,
                first_delay=job.poll_after,
            )
        except (JobTimeout, TransientError):  # still running, or not known: a retry awaits it again
            raise
        except AsrError as err:
            raise self._failed_failback(ref, op, job.name, err, timeout=timeout) from None
        return replace(done, reused=job.reused)

    def _failed_failback(
        self, ref: ItemRef, op: str, job: str, err: AsrError, *, timeout: float | None
    ) -> AsrError:
        """The error of a failed planned failover, after making sure it is rolled back in ASR."""
        state = self.item_state(ref, operation=op)
        phase = phase_of(state)
        status = state.last_planned_failover_status or "unknown"
        if phase is Phase.failed_back:
            cancel = self.cancel_failback(ref, timeout=timeout, state=state)
            what = (
                f"ASR did not roll it back, so drplan cancelled it (failoverCancel job "
                f"{cancel.name or '(done)'}): the on-prem VM is off and the Azure VM runs again"
            )
        elif phase is Phase.reprotected_to_onprem:
            what = (
                f"ASR rolled it back (lastPlannedFailoverStatus {status}): the on-prem VM is off and the "
                "Azure VM runs again"
            )
        else:
            return err
        log.warning("%s of %s failed in job %s; %s", op, ref.vm, job, what)
        return rolled_back(err, what)

    def cancel_failback(
        self, ref: ItemRef, *, wait: bool = True, timeout: float | None = None, state: ItemState | None = None
    ) -> Job:
        """Roll a planned failover back (``failoverCancel``): the on-prem VM is powered off and the Azure VM
        started again; the item returns to reprotected toward on-prem. Nothing to cancel → nothing issued."""
        op = "cancel failback"

        def decide(state: ItemState) -> Job | None:
            return self._decide(
                state,
                op,
                "CancelFailover",
                CANCEL_SCENARIOS,
                ready={Phase.failed_back},
                done={Phase.reprotected_to_onprem},
                rule="cancel only a failback that is not committed",
                why="only a failed-back VM whose failback is not committed can be cancelled",
            )

        send = self._sender(ref, op, self._sdk.replication_protected_items.begin_failover_cancel)
        return self._run(ref, op, "CancelFailover", decide, send, wait=wait, timeout=timeout, state=state)

    # -- reprotect Azure -> on-prem --------------------------------------------------------------------------
    def reprotect_to_onprem_modernized(
        self,
        ref: ItemRef,
        *,
        appliance: str,
        datastore: str,
        log_storage_account: str,
        policy: str | None = None,
        wait: bool = True,
        timeout: float | None = None,
        state: ItemState | None = None,
    ) -> Job:
        """Reprotect a modernized VM Azure → on-prem (``reProtect`` RecoveryToPrimary,
        ``InMageRcmReprotectInput``), after its failover to Azure was committed.

        ``appliance``: the replication appliance whose reprotect agent replicates it (name, or a component
        id); ``datastore``: a datastore the appliance reaches; ``log_storage_account``: a storage account name
        (in the vault's resource group) or ARM id; ``policy``: an ``InMageRcmFailback`` policy name or id
        (``None``: the vault's only one). Names are resolved to the ids the InMageRcm fabric lists, only when
        the write is really sent. Where the original on-prem VM is gone, ASR creates a new one (alternate
        location, full replication); :meth:`replication_progress` reports it.
        """
        op = "reprotect to on-prem"

        def decide(state: ItemState) -> Job | None:
            if not is_modernized(state):
                raise _not_modernized(state, op, "reprotect_to_onprem() with a master target")
            return self._decide_reprotect_onprem(state, op)

        def body() -> m.ReverseReplicationInput:
            agent = self.appliance_info(appliance, vm=ref.vm, operation=op)
            return m.ReverseReplicationInput(
                properties=m.ReverseReplicationInputProperties(
                    failover_direction="RecoveryToPrimary",
                    provider_specific_details=m.InMageRcmReprotectInput(
                        reprotect_agent_id=agent.reprotect_agent_id,
                        datastore_name=datastore,
                        log_storage_account_id=self.storage_account_id(log_storage_account),
                        policy_id=self.policy_id(policy, "InMageRcmFailback", vm=ref.vm, operation=op),
                    ),
                )
            )

        send = self._lazy_sender(ref, op, self._sdk.replication_protected_items.begin_reprotect, body)
        return self._run(ref, op, "ReverseReplication", decide, send, wait=wait, timeout=timeout, state=state)

    def replication_progress(self, ref: ItemRef, *, state: ItemState | None = None) -> tuple[int | None, str]:
        """(percent, what) of a modernized item's replication toward on-prem: ``initial replication`` (a new
        VM at an alternate location) or ``resync`` (changes only, the original VM)."""
        state = state or self.item_state(ref, operation="read replication progress")
        if state.initial_replication_progress is not None and state.resync_progress is None:
            return state.initial_replication_progress, "initial replication"
        if state.resync_progress is not None:
            return state.resync_progress, "resync"
        return state.initial_replication_progress, "initial replication"

    # -- reprotect on-prem -> Azure --------------------------------------------------------------------------
    def wait_agent_ready(
        self,
        ref: ItemRef,
        *,
        timeout: float,
        poll: float = 60.0,
        max_heartbeat_age: float = preconditions.AGENT_HEARTBEAT_MAX_AGE,
        state: ItemState | None = None,
    ) -> ItemState:
        """Wait (on ``self.clock``) until the item reports its mobility agent registered after the failover
        (``isAgentRegistrationSuccessfulAfterFailover``) with a heartbeat at most ``max_heartbeat_age``
        seconds old; returns the state that said so. At ``timeout``: :class:`AgentNotInstalledError` naming
        what is missing."""
        deadline = self.clock.monotonic() + timeout
        while True:
            state = state or self.item_state(ref, operation="wait for the mobility agent")
            check = preconditions.agent_ready_check(
                ref.vm, state, self.clock.now(), max_age=max_heartbeat_age
            )
            if check.ok:
                return state
            left = deadline - self.clock.monotonic()
            if left <= 0:
                raise AgentNotInstalledError(
                    f"reprotect to Azure of VM {ref.vm}: {check.message}", vm=ref.vm, operation="reprotect"
                )
            log.info("VM %s: %s; reading again in %ss", ref.vm, check.message, round(min(poll, left)))
            self.clock.sleep(min(poll, left))
            state = None

    def reprotect_to_azure_modernized(
        self,
        ref: ItemRef,
        *,
        process_server: str | None = None,
        policy: str | None = None,
        run_as_account: str | None = None,
        readiness_timeout: float = 1200.0,
        agent_registration_window: float | None = None,
        retry_every: float = 120.0,
        wait: bool = True,
        timeout: float | None = None,
        state: ItemState | None = None,
    ) -> Job:
        """Reprotect a committed modernized failback on-prem → Azure (``reProtect`` PrimaryToRecovery,
        ``InMageRcmFailbackReprotectInput{processServerId, policyId, runAsAccountId}``).

        First waits up to ``readiness_timeout`` for the agent to be registered after the failover with a
        recent heartbeat (:meth:`wait_agent_ready`, instead of a fixed window). ``process_server``: an
        appliance name or process-server id (``None``: the appliance that replicated the VM back);
        ``policy``: an ``InMageRcm`` policy name or id (``None``: the vault's only one); ``run_as_account``:
        an ARM id, or ``None``/a name for the run-as account of the vCenter the appliances discovered. If ASR
        still answers "agent not installed", that is retried every ``retry_every`` seconds within
        ``agent_registration_window`` seconds (if given).
        """
        op = "reprotect to Azure"

        def decide(state: ItemState) -> Job | None:
            if not is_modernized(state):
                raise _not_modernized(state, op, "reprotect_to_azure() with InMageAzureV2 inputs")
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

        state = state or self.item_state(ref, operation=op)
        if decide(state) is None and phase_of(state) is Phase.committed:
            state = self.wait_agent_ready(ref, timeout=readiness_timeout, state=state)
        appliance_ref = process_server or state.appliance_id or state.appliance_name or ""

        def body() -> m.ReverseReplicationInput:
            appliance = self.appliance_info(appliance_ref, vm=ref.vm, operation=op)
            policy_id = self.policy_id(policy, "InMageRcm", vm=ref.vm, operation=op)
            if policy_id is None:
                raise PreconditionError(
                    f"{op} of VM {ref.vm} refused: the vault has several InMageRcm policies; name one "
                    "(modernized.policy_to_azure)",
                    vm=ref.vm,
                    operation=op,
                    rule="InMageRcmFailbackReprotectInput needs a policy",
                )
            return m.ReverseReplicationInput(
                properties=m.ReverseReplicationInputProperties(
                    failover_direction="PrimaryToRecovery",
                    provider_specific_details=m.InMageRcmFailbackReprotectInput(
                        process_server_id=appliance.process_server_id,
                        policy_id=policy_id,
                        run_as_account_id=self.run_as_account_id(run_as_account, vm=ref.vm, operation=op),
                    ),
                )
            )

        send = self._lazy_sender(ref, op, self._sdk.replication_protected_items.begin_reprotect, body)
        deadline = self.clock.monotonic() + (agent_registration_window or 0.0)
        current: ItemState | None = state
        while True:
            try:
                return self._run(
                    ref, op, "ReverseReplication", decide, send, wait=wait, timeout=timeout, state=current
                )
            except AgentNotInstalledError:
                current = None
                left = deadline - self.clock.monotonic()
                if left <= 0:
                    raise
                log.info("%s of %s: agent not registered yet, retrying in %ss", op, ref.vm, retry_every)
                self.clock.sleep(min(retry_every, left))
