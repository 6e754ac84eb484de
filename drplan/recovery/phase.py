"""Where a protected item is in the failback lifecycle, read from one :class:`ItemState`, for both provider
families (the same :class:`Phase` values).

Lifecycle (Microsoft's failback doc, classic providers): replicating to Azure (``InMageAzureV2``) → failed
over to Azure → reprotected toward on-prem (``InMage``, ready to fail back) → failback in progress → failed
back (commit pending) → committed → reprotected to Azure (``InMageAzureV2`` again). Every operation of
:class:`drplan.asr.AsrClient` reads this first, so a re-run after a crash neither repeats a write that
already happened nor duplicates a running job.

Modernized providers (``InMageRcm`` forward, ``InMageRcmFailback`` back): replicating to Azure (InMageRcm) →
failed over to Azure → reprotected toward on-prem (InMageRcmFailback ``Protected``, PlannedFailover allowed) →
planned failover in progress → failed back (``PlannedFailoverCommitRequired``) → committed
(``PlannedFailoverStatesBegin``: Microsoft's FailoverCommit example) → reprotected to Azure (InMageRcm
again). ``allowedOperations`` and the running scenario decide first, the state strings after them.
"""

from __future__ import annotations

from drplan.observed import ItemState, Phase

__all__ = [
    "CLEANUP_SCENARIOS",
    "COMMIT_SCENARIOS",
    "FAILBACK_SCENARIOS",
    "REPROTECT_SCENARIOS",
    "TEST_SCENARIOS",
    "is_modernized",
    "normalise",
    "phase_of",
    "scenario_of",
]

FAILBACK_SCENARIOS = frozenset({"unplannedfailover", "failover", "plannedfailover"})
COMMIT_SCENARIOS = frozenset({"commitfailover", "failovercommit", "commit"})
REPROTECT_SCENARIOS = frozenset({"reprotect", "reversereplication", "reverserepl", "switchprotection"})
TEST_SCENARIOS = frozenset({"testfailover"})
CLEANUP_SCENARIOS = frozenset({"testfailovercleanup"})


def normalise(text: str | None) -> str:
    """Compare ASR strings loosely: ``"Unplanned Failover"`` and ``"unplannedFailover"`` match."""
    return (text or "").replace(" ", "").replace("-", "").replace("_", "").lower()


def _commit_pending(ps: str, allowed: set[str]) -> bool:
    return "commitpending" in ps or "commitrequired" in ps or "failovercompleted" in ps or "commit" in allowed


def _committed(ps: str) -> bool:
    return "committed" in ps


def scenario_of(state: ItemState) -> str:
    """The item's current scenario, normalised (``""`` when idle)."""
    s = normalise(state.current_scenario)
    return "" if s in ("", "none") else s


def is_modernized(state: ItemState) -> bool:
    """The item replicates with a modernized provider (``InMageRcm`` / ``InMageRcmFailback``)."""
    return state.family == "modernized"


def _rcm_failback_phase(ps: str, allowed: set[str], scenario: str) -> Phase:
    """An InMageRcmFailback item: reprotected toward on-prem, failing back, failed back or committed."""
    if "reversereplicate" in allowed or ("plannedfailoverstatesbegin" in ps) or _committed(ps):
        return Phase.committed
    if "commit" in allowed or "commitrequired" in ps or "commitpending" in ps:
        return Phase.failed_back
    if scenario in FAILBACK_SCENARIOS or "failoverinprogress" in ps:
        return Phase.failback_in_progress
    if "plannedfailover" in allowed or ps.startswith("protected") or "resync" in ps or "initial" in ps:
        return Phase.reprotected_to_onprem
    return Phase.unknown


def _rcm_forward_phase(state: ItemState, ps: str, allowed: set[str]) -> Phase:
    """An InMageRcm item: replicating to Azure (first time or after a failback cycle), or failed over."""
    if _committed(ps) or _commit_pending(ps, allowed) or normalise(state.active_location) == "recovery":
        return Phase.failed_over_to_azure
    if ps.startswith("protected") or "resync" in ps or "initial" in ps or "unplannedfailover" in allowed:
        if state.last_successful_failover_time is not None:
            return Phase.reprotected_to_azure
        return Phase.replicating_to_azure
    return Phase.unknown


def phase_of(state: ItemState) -> Phase:
    """Classify an item. Pure; ``Phase.unknown`` when the state fits no step of the lifecycle."""
    ps = normalise(state.protection_state)
    allowed = {normalise(a) for a in state.allowed_operations}
    scenario = scenario_of(state) if state.current_job else ""
    provider = normalise(state.provider)

    if provider == "inmagercmfailback":
        return _rcm_failback_phase(ps, allowed, scenario)
    if provider == "inmagercm":
        return _rcm_forward_phase(state, ps, allowed)

    if provider == "inmage":  # Azure -> on-prem replication: the failback half of the lifecycle
        if _committed(ps):
            return Phase.committed
        if _commit_pending(ps, allowed):
            return Phase.failed_back
        if scenario in FAILBACK_SCENARIOS or "failoverinprogress" in ps or "failoverstatesbegin" in ps:
            return Phase.failback_in_progress
        if ps.startswith("protected") or "unplannedfailover" in allowed or ps in ("", "replicating"):
            return Phase.reprotected_to_onprem
        return Phase.unknown

    if provider == "inmageazurev2":  # VMware -> Azure replication
        if _committed(ps) or _commit_pending(ps, allowed) or normalise(state.active_location) == "recovery":
            return Phase.failed_over_to_azure
        if ps.startswith("protected") or "reprotect" in ps or "resync" in ps or "initial" in ps:
            # Same wire state before the first failover and after a completed failback cycle; ASR keeps
            # lastSuccessfulFailoverTime from the failback, which tells them apart.
            if state.last_successful_failover_time is not None:
                return Phase.reprotected_to_azure
            return Phase.replicating_to_azure
        return Phase.unknown

    return Phase.unknown


#: phases from which a failback run can continue (anything else fails preflight)
RESUMABLE = (
    Phase.reprotected_to_onprem,
    Phase.failback_in_progress,
    Phase.failed_back,
    Phase.committed,
    Phase.reprotected_to_azure,
)
#: phases in which a VM's failback has happened (its point is fixed)
DONE_FAILBACK = (Phase.failed_back, Phase.committed, Phase.reprotected_to_azure)
