"""The reprotect (Azure → on-prem) and drill runs on the modernized providers, on the library executor against
the simulated estate (the real SDK over HTTPS), asserted from the simulator's audit log."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from run_support import THREE_TIER, Bench, simulated

from drplan.observed import Phase
from drplan.recovery.phase import phase_of
from drplan.reprotect_to_onprem.kind import REPROTECT_TO_ONPREM
from drplan.sim import Estate

SPEED = 3000.0


def modernized(
    phase: Phase, tweak: Callable[[Estate], None] | None = None, plan_path: Path = THREE_TIER
) -> AbstractContextManager[Bench]:
    """The plan's modernized estate in ``phase``, served over HTTPS (:func:`run_support.simulated`)."""
    return simulated(plan_path, tweak, phase, speed=SPEED, provider="modernized")


def test_reprotect_to_onprem_on_modernized_sends_rcm_inputs_and_waits_for_replication():
    with modernized(Phase.failed_over_to_azure) as bench:
        run = bench.run(REPROTECT_TO_ONPREM)
        assert run.error is None, run.error
        sent = run.requests("reProtect")
        assert {r["provider"] for r in sent} == {"InMageRcm"} and len(sent) == 6
        assert {r["direction"] for r in sent} == {"RecoveryToPrimary"}
        refs = bench.asr.discover([v.name for v in run.ctx.plan.vms])
        states = bench.asr.item_states(list(refs.values()))
        assert {phase_of(s) for s in states.values()} == {Phase.reprotected_to_onprem}
        progress = [e for e in run.events if e.transition == "replication-health"]
        assert progress and all("progress" in e.payload for e in progress)
        assert not [c for c in run.ctx.report.preflight if not c.ok]
        again = bench.run(REPROTECT_TO_ONPREM)  # a re-run sends nothing
        assert again.error is None and len(again.requests("reProtect")) == len(sent)


def test_reprotect_to_onprem_on_modernized_refuses_an_unregistered_agent_before_any_write():
    def unregistered(estate):
        estate.vm("web-01").agent_registered_after_failover = False

    with modernized(Phase.failed_over_to_azure, unregistered) as bench:
        run = bench.run(REPROTECT_TO_ONPREM)
        assert run.error is not None and "agent-registered web-01" in str(run.error)
        assert run.requests() == []
