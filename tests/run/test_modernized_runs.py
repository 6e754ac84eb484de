"""The reprotect (Azure → on-prem) and drill runs on the modernized providers, on the library executor against
the simulated estate (the real SDK over HTTPS), asserted from the simulator's audit log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from run_support import THREE_TIER, Bench

from drplan.asr import AsrClient, StaticTokenCredential
from drplan.observed import Phase
from drplan.plan.graph import load_and_compile
from drplan.recovery.phase import phase_of
from drplan.reprotect_to_onprem.kind import REPROTECT_TO_ONPREM
from drplan.sim import Estate, start_simulator

SPEED = 3000.0


@contextmanager
def modernized(
    phase: Phase, tweak: Callable[[Estate], None] | None = None, plan_path: Path = THREE_TIER
) -> Iterator[Bench]:
    plan, _ = load_and_compile(plan_path)
    estate = Estate.from_plan(plan, phase=phase, provider="modernized")
    if tweak:
        tweak(estate)
    with start_simulator(estate, speed=SPEED) as sim:
        asr = AsrClient.for_vault(
            plan.azure,
            endpoint=sim.endpoint,
            ca_file=sim.ca_file,
            clock=sim.clock,
            credential=StaticTokenCredential(sim.token),
        )
        try:
            yield Bench(plan_path, sim, asr)
        finally:
            asr.close()


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
