"""The one entry every drplan flow goes through: load the plan, take the plan, open the targets, build the
run context, and drive the run kind with Prefect as the orchestrator (steps become task runs with
``wait_for`` edges), publishing events, progress and the report."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from prefect import get_run_logger
from prefect.flow_runs import pause_flow_run
from prefect.futures import PrefectFuture, wait
from prefect.input import RunInput
from prefect.runtime import flow_run as current_flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import allow_failure

from drplan.failback.point_choice import parse_overrides
from drplan.plan.graph import load_and_compile
from drplan.plan.schema import CommitPolicy
from drplan.run.context import Ports, RunContext, RunInputs, bound
from drplan.run.driver import drive
from drplan.run.events import Fanout, observers
from drplan.run.kind import RunKind
from drplan.run.ports import Approval
from drplan.run.run_plan import PlannedStep, RunPlan, StepKey
from drplan.run.schedule import schedule
from drplan.run.steps import Step
from drplan.run.targets import open_targets
from drplan.settings import Settings
from flows.claims import exclusive_run
from flows.monitor import Monitor, publish_report
from tasks.steps import for_node, read

T = TypeVar("T")


class SettingsTaskRunner(ThreadPoolTaskRunner):
    """Prefect's thread pool, bounded by ``DRPLAN_MAX_WORKERS`` read when a run starts (not at import)."""

    def __enter__(self):
        self._max_workers = Settings().max_workers
        return super().__enter__()

    def duplicate(self) -> SettingsTaskRunner:
        return type(self)()


def run_namer(kind: str = "") -> Callable[[], str]:
    """A ``flow_run_name`` callable: ``<plan file stem>[-<kind>][-dry-run]-<UTC time>``."""
    infix = f"-{kind}" if kind else ""

    def run_name() -> str:
        params = current_flow_run.parameters or {}
        stem = Path(str(params.get("plan", "plan"))).stem
        suffix = "-dry-run" if params.get("dry_run") else ""
        return f"{stem}{infix}{suffix}-{datetime.now(UTC):%Y%m%d-%H%M%S}"

    return run_name


class ApprovalInput(RunInput):
    """What an approver sends (UI form or ``resume_flow_run(id, run_input={...})``)."""

    approved: bool = False
    approver: str = ""
    comment: str = ""


class PrefectApprover:
    """Pauses the flow run until someone answers in the UI, the CLI or the API (no deployment needed)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def __call__(self, node: str, prompt: str) -> Approval:
        get_run_logger().warning("waiting for approval %s: %s", node, prompt)
        answer = pause_flow_run(
            wait_for_input=ApprovalInput.with_initial_data(description=prompt),
            timeout=int(self.settings.approval_timeout),
            poll_interval=int(max(1, self.settings.approval_poll_seconds)),
            key=f"approval-{node}",
        )
        return Approval(bool(answer.approved), answer.approver, answer.comment)


class PrefectOrchestrator:
    """Plan-level reads as ``read`` task runs; a run plan's steps as task runs with ``wait_for`` edges."""

    def __init__(self, cap: int):
        self.cap = cap

    def read(self, ctx: RunContext, name: str, fn: Callable[[], T]) -> T:
        return read.with_options(name=name, task_run_name=name)(fn)

    def run(self, ctx: RunContext, plan: RunPlan, steps: Mapping[str, Step]) -> None:
        def submit(step: PlannedStep, handles: dict[StepKey, PrefectFuture]) -> PrefectFuture:
            upstream = [allow_failure(handles[u]) for u in step.upstream]
            return for_node(step.kind, step.node).submit(step.node, wait_for=upstream)

        futures = schedule(plan, submit, self.cap)
        wait(list(futures.values()))


def run_kind(
    kind: RunKind,
    plan: str,
    *,
    recovery_point: list[str] | None = None,
    commit: CommitPolicy | str | None = None,
    reprotect: bool = True,
    simulate: bool = False,
    dry_run: bool = False,
    estate: str | None = None,
    speed: float = 600.0,
) -> dict[str, Any]:
    """Run ``kind`` on the plan file ``plan`` inside the current flow run; returns its result."""
    logger = get_run_logger()
    settings = Settings()
    the_plan, graph = load_and_compile(Path(plan).expanduser())
    overrides = parse_overrides(recovery_point, graph.units)
    policy = CommitPolicy(commit) if commit else the_plan.failback.commit
    with (
        exclusive_run(the_plan.name, kind.name, settings, enabled=kind.lock_in_dry_run or not dry_run),
        open_targets(
            the_plan,
            simulate=simulate,
            estate=estate,
            speed=speed,
            settings=settings,
            secret_loader=_prefect_secret,
            simulated_phase=kind.simulated_phase,
        ) as targets,
    ):
        monitor = Monitor(the_plan.name, graph, kind.name, targets.mode)
        inputs = RunInputs(
            plan=the_plan,
            graph=graph,
            kind=kind.name,
            mode=targets.mode,
            dry_run=dry_run,
            overrides=overrides,
            commit_policy=policy,
            reprotect_to_azure=reprotect and the_plan.failback.reprotect_to_azure.enabled,
            run_id=str(current_flow_run.id or ""),
            settings=settings,
        )
        ports = Ports(
            targets.asr,
            targets.onprem,
            targets.clock,
            PrefectApprover(settings),
            Fanout([monitor, *observers()]),
        )
        ctx = RunContext(inputs, ports)
        monitor.start()
        with bound(ctx):
            try:
                return drive(ctx, kind, PrefectOrchestrator(settings.max_commits))
            finally:
                for line in ctx.state.would:
                    logger.info("would: %s", line)
                monitor.finish()
                if ctx.report is not None:
                    publish_report(ctx.report, kind.name)


def _prefect_secret(name: str) -> str:
    from prefect.blocks.system import Secret

    return Secret.load(name).get()
