"""The one entry every drplan flow goes through: load the plan, take the plan, open the targets, build the
run context, and drive the run kind with Prefect as the orchestrator (steps become task runs with
``wait_for`` edges), publishing events, progress and the report."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.flow_runs import pause_flow_run
from prefect.futures import PrefectFuture, wait
from prefect.input import RunInput
from prefect.logging.handlers import APILogHandler
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import allow_failure
from pydantic import Field

from drplan.errors import DrplanError
from drplan.failback.point_choice import parse_overrides
from drplan.plan.graph import load_and_compile
from drplan.plan.schema import CommitPolicy
from drplan.run.context import Ports, RunContext, RunInputs, bound
from drplan.run.driver import drive
from drplan.run.events import Fanout, observers
from drplan.run.host_lock import PlanBusy
from drplan.run.kind import RunKind
from drplan.run.outcomes import facts_line, needs_attention, summary
from drplan.run.ports import Approval
from drplan.run.report import mode_marker
from drplan.run.run_plan import PlannedStep, RunPlan, StepKey
from drplan.run.schedule import schedule
from drplan.run.steps import Step
from drplan.run.targets import open_targets
from drplan.settings import Settings
from flows.claims import exclusive_run
from flows.monitor import Monitor, publish_report
from tasks.steps import for_node, read, step_tags

T = TypeVar("T")


class SettingsTaskRunner(ThreadPoolTaskRunner):
    """Prefect's thread pool, bounded by ``DRPLAN_MAX_WORKERS`` read when a run starts (not at import)."""

    def __enter__(self):
        self._max_workers = Settings().max_workers
        return super().__enter__()

    def duplicate(self) -> SettingsTaskRunner:
        return type(self)()


def run_namer(kind: str) -> Callable[[], str]:
    """A ``flow_run_name`` callable: ``<plan name>-<kind>[-SIMULATED][-DRY-RUN]-<UTC time>``; the plan's
    ``name`` (its file stem when the file cannot be read)."""

    def run_name() -> str:
        params = current_flow_run.parameters or {}
        path = Path(str(params.get("plan", "plan"))).expanduser()
        try:
            name = load_and_compile(path)[0].name
        except Exception:  # the flow itself reports an unreadable plan
            name = path.stem
        simulated = params.get("simulate") or params.get("estate") or Settings().sim_endpoint
        marks = ("-SIMULATED" if simulated else "") + ("-DRY-RUN" if params.get("dry_run") else "")
        return f"{name}-{kind}{marks}-{datetime.now(UTC):%Y%m%d-%H%M%S}"

    return run_name


class ApprovalInput(RunInput):
    """What an approver sends (UI form or ``resume_flow_run(id, run_input={...})``): not approved unless
    someone says so, and always who."""

    approved: bool = Field(False, description="tick to approve; left unticked, the run does not go on")
    approver: str = Field(min_length=1, description="your name: recorded in the report, the log and an event")
    comment: str = Field("", description="why, or what was checked (recorded with your name)")


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
        return Approval(bool(answer.approved), answer.approver.strip(), answer.comment.strip())


class PrefectOrchestrator:
    """Plan-level reads as ``read`` task runs; a run plan's steps as task runs with ``wait_for`` edges."""

    def __init__(self, cap: int):
        self.cap = cap

    def read(self, ctx: RunContext, name: str, fn: Callable[[], T]) -> T:
        box: list[T] = []
        read.with_options(name=name, task_run_name=name, tags=[f"drplan-step:{name}"])(
            lambda: box.append(fn())
        )
        return box[0]

    def run(self, ctx: RunContext, plan: RunPlan, steps: Mapping[str, Step]) -> None:
        def submit(step: PlannedStep, handles: dict[StepKey, PrefectFuture]) -> PrefectFuture:
            upstream = [edge(handles[u]) for u in step.upstream]
            task = for_node(step.kind, step.node, step_tags(step.kind))
            return task.submit(step.node, wait_for=upstream)

        futures = schedule(plan, submit, self.cap)
        wait(list(futures.values()))


def edge(upstream: PrefectFuture) -> Any:
    """A ``wait_for`` entry: the graph edge to an upstream step that has finished (the scheduler submits a
    step only then). A skipped upstream (CANCELLED, which ``allow_failure`` does not let through) is drawn
    through a stand-in COMPLETED state naming its task run: the step still runs and decides for itself."""
    upstream.wait()  # already done: this only makes the future hold its final state
    state = upstream.state
    if state.is_cancelled():
        stand_in: State = Completed(message="upstream did not run", data="skipped upstream")
        stand_in.state_details.task_run_id = upstream.task_run_id
        return stand_in
    return allow_failure(upstream)


class RunLogHandler(APILogHandler):
    """Prefect's API log handler for drplan's loggers: lines written outside a flow or task run (a simulator
    thread, a test) are dropped quietly instead of warned about."""

    def emit(self, record: logging.LogRecord) -> None:
        from prefect.context import FlowRunContext, TaskRunContext

        if getattr(record, "flow_run_id", None) or FlowRunContext.get() or TaskRunContext.get():
            super().emit(record)


class SkipIsNoError(logging.Filter):
    """Prefect logs every final state that is not Completed at ERROR; a step that did not run is a WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if (
            record.levelno == logging.ERROR
            and text.startswith("Finished in state ")
            and "type=CANCELLED" in text
        ):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def drplan_logs_to_api() -> None:
    """drplan's own log lines (ASR jobs, retries, verification) go to the run's logs, under the task that
    wrote them (Prefect's run context travels with the thread's context); skipped steps log as warnings.
    Idempotent, like Prefect's ``extra_loggers`` setting."""
    logger = logging.getLogger("drplan")
    if not any(isinstance(h, RunLogHandler) for h in logger.handlers):
        logger.addHandler(RunLogHandler())
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    tasks = logging.getLogger("prefect.task_runs")
    if not any(isinstance(f, SkipIsNoError) for f in tasks.filters):
        tasks.addFilter(SkipIsNoError())


def _tag_run(run_id: str, tags: list[str]) -> None:
    if not run_id:
        return
    with contextlib.suppress(Exception), get_client(sync_client=True) as client:
        me = client.read_flow_run(run_id)
        client.update_flow_run(me.id, tags=sorted({*me.tags, *tags}))


def command_line(kind: str, plan: str, mode: str, dry_run: bool, estate: str | None = None) -> str:
    """The command that re-runs this run from a terminal."""
    where = f" --estate {estate}" if estate else " --simulate" if mode != "real" else ""
    return f"drplan {kind} {plan}{where}" + (" --dry-run" if dry_run else "")


def run_kind(kind: RunKind, plan: str, **options: Any) -> dict[str, Any] | State:
    """Run ``kind`` on the plan file ``plan`` inside the current flow run (``options``: :func:`_run_kind`'s);
    returns its result, or a Failed state whose message leads with the facts and whose data is the error (no
    traceback for a user error)."""
    drplan_logs_to_api()
    try:
        return _run_kind(kind, plan, **options)
    except (DrplanError, PlanBusy) as exc:
        facts = getattr(exc, "facts", "")
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "nothing was changed" in str(exc) and "nothing was changed" not in first:
            first += " (nothing was changed)"
        get_run_logger().error("%s", str(exc))
        return Failed(message=f"{facts}. {first}" if facts else first, data=exc)


def _run_kind(
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
    logger = get_run_logger()
    settings = Settings()
    the_plan, graph = load_and_compile(Path(plan).expanduser())
    overrides = parse_overrides(recovery_point, graph.units)
    policy = CommitPolicy(commit) if commit else the_plan.failback.commit
    run_id = str(current_flow_run.id or "")
    with (
        exclusive_run(
            the_plan,
            kind.name,
            settings,
            enabled=kind.lock_in_dry_run or not dry_run,
            simulated=bool(simulate or estate),
        ),
        open_targets(
            the_plan,
            simulate=simulate,
            estate=estate,
            speed=speed,
            settings=settings,
            secret_loader=_prefect_secret,
            simulated_phases=kind.simulated_phases,
            simulated_provider=kind.simulated_provider,
        ) as targets,
    ):
        tags = ["drplan", f"drplan-mode:{targets.mode}", f"drplan-flow:{kind.name}"]
        _tag_run(run_id, tags + (["drplan-dry-run"] if dry_run else []))
        mode = targets.mode + (" (dry run)" if dry_run else "")
        if mode_marker(mode):
            logger.warning("%s run: nothing real is changed", mode_marker(mode))
        monitor = Monitor(the_plan.name, graph, kind.name, mode, targets.clock)
        inputs = RunInputs(
            plan=the_plan,
            graph=graph,
            kind=kind.name,
            mode=targets.mode,
            dry_run=dry_run,
            overrides=overrides,
            commit_policy=policy,
            reprotect_to_azure=reprotect and the_plan.failback.reprotect_to_azure.enabled,
            run_id=run_id,
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
        monitor.start(run_id)
        command = command_line(kind.name, plan, targets.mode, dry_run, estate)
        with bound(ctx):
            try:
                result = drive(ctx, kind, PrefectOrchestrator(settings.max_commits))
            except DrplanError as exc:
                _finish(ctx, kind.name, monitor, command)
                attention = ctx.report.attention if ctx.report else []
                exc.facts = facts_line(ctx)  # type: ignore[attr-defined]
                exc.summary = summary(ctx, attention=attention)  # type: ignore[attr-defined]
                raise
            except BaseException:
                _finish(ctx, kind.name, monitor, command)
                raise
            _finish(ctx, kind.name, monitor, command)
            return {**result, "attention": ctx.report.attention if ctx.report else []}


def _finish(ctx: RunContext, kind: str, monitor: Monitor, command: str) -> None:
    """Whatever happened: the dry-run lines in the log, the board's last state, the report published."""
    logger = get_run_logger()
    for line in ctx.state.would:
        logger.info("would: %s", line)
    monitor.finish()
    if ctx.report is not None:
        ctx.report.attention = needs_attention(ctx, command)
        publish_report(ctx.report, kind)


def _prefect_secret(name: str) -> str:
    from prefect.blocks.system import Secret

    return Secret.load(name).get()
