"""Helpers for runs on the library executor (:class:`drplan.run.executor.ThreadExecutor`), no Prefect:
the embedded simulated estate behind the recovery-service and on-prem ports (the real SDK over HTTPS), a
scripted approver and a recording event sink."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from drplan.asr import AsrClient, StaticTokenCredential
from drplan.plan.graph import load_and_compile
from drplan.plan.schema import CommitPolicy
from drplan.run.context import Ports, RunContext, RunInputs
from drplan.run.driver import drive
from drplan.run.executor import ThreadExecutor
from drplan.run.kind import RunKind
from drplan.run.ports import Approval, UnitEvent
from drplan.sim import start_simulator
from drplan.sim.estate import Estate

ROOT = Path(__file__).resolve().parents[2]
THREE_TIER = ROOT / "plans" / "three-tier.yaml"
SPEED = 3000.0  # simulated seconds per wall second: a three-tier failback takes about a wall second


@dataclass
class Approver:
    """Answers every approval with ``answer`` and remembers what it was asked."""

    answer: Approval = field(default_factory=lambda: Approval(True, "dr-lead", "window open"))
    asked: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, node: str, prompt: str) -> Approval:
        self.asked.append((node, prompt))
        return self.answer


@dataclass
class Recorded:
    """One run on the executor: what it returned or raised, what it emitted, what ASR received."""

    ctx: RunContext
    executor: ThreadExecutor
    result: dict | None
    error: BaseException | None
    events: list[UnitEvent]
    sim: object
    approver: Approver

    def requests(self, operation: str | None = None) -> list[dict]:
        return [
            r
            for r in self.sim.audit  # type: ignore[attr-defined]
            if r.get("event") == "request"
            and r.get("outcome") == "accepted"
            and (operation is None or r.get("operation") == operation)
        ]

    def transitions(self, node: str) -> list[str]:
        return [e.transition for e in self.events if e.node == node]


@dataclass
class Bench:
    """One simulated estate, reached through the real SDK; ``run`` drives a kind on it (re-runs included)."""

    plan_path: Path
    sim: object
    asr: AsrClient

    def run(
        self,
        kind: RunKind,
        *,
        approver: Approver | None = None,
        dry_run: bool = False,
        commit: CommitPolicy | None = None,
        overrides: dict | None = None,
    ) -> Recorded:
        """Run ``kind`` once; never raises (the run's own error is recorded)."""
        plan, graph = load_and_compile(self.plan_path)
        approver = approver or Approver()
        events: list[UnitEvent] = []
        sim = self.sim
        ctx = RunContext(
            RunInputs(
                plan=plan,
                graph=graph,
                kind=kind.name,
                mode="simulate",
                dry_run=dry_run,
                overrides=overrides or {},
                commit_policy=commit or plan.failback.commit,
                reprotect_to_azure=plan.failback.reprotect_to_azure.enabled,
            ),
            Ports(self.asr, sim.onprem, sim.clock, approver, events.append),  # type: ignore[attr-defined]
        )
        executor = ThreadExecutor()
        result, error = None, None
        try:
            result = drive(ctx, kind, executor)
        except Exception as exc:  # the run's own verdict (RunFailed, PreflightFailed, ...)
            error = exc
        return Recorded(ctx, executor, result, error, events, sim, approver)


@contextmanager
def simulated(
    plan_path: Path = THREE_TIER,
    tweak: Callable[[Estate], None] | None = None,
    phase=None,
    speed: float = SPEED,
    provider: str = "classic",
) -> Iterator[Bench]:
    """The plan's estate on ``provider`` (``tweak`` edits it first) served over HTTPS, and a client for it."""
    plan, _ = load_and_compile(plan_path)
    estate = (
        Estate.from_plan(plan, phase=phase, provider=provider)
        if phase
        else Estate.from_plan(plan, provider=provider)
    )
    if tweak:
        tweak(estate)
    with start_simulator(estate, speed=speed) as sim:
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


def execute(
    kind: RunKind,
    plan_path: Path = THREE_TIER,
    *,
    tweak: Callable[[Estate], None] | None = None,
    approver: Approver | None = None,
    dry_run: bool = False,
    commit: CommitPolicy | None = None,
) -> Recorded:
    """Run ``kind`` on the plan against a fresh simulated estate; never raises (the error is recorded). A kind
    that says where its generated estate starts (drill, reprotect) gets the estate ``--simulate`` generates
    for it (that phase, the kind's providers); the failback a classic one."""
    provider = kind.simulated_provider if kind.simulated_phases else "classic"
    with simulated(plan_path, tweak, kind.simulated_phase(provider), provider=provider) as bench:
        return bench.run(kind, approver=approver, dry_run=dry_run, commit=commit)
