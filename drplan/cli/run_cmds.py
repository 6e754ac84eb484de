"""``drplan failback``: run a plan as a Prefect flow, locally (Prefect's default engine) or on the server in
``PREFECT_API_URL``, with a live display of its units.

Exit codes: 0 success, 1 the run failed (or was refused), 2 invalid input. No tracebacks for users.
:func:`run_flow_command` is shared with ``drplan drill`` / ``drplan reprotect``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from drplan.cli import app
from drplan.errors import PlanError
from drplan.plan.schema import CommitPolicy

RECORD_WAIT_SECONDS = float(os.environ.get("DRPLAN_RECORD_WAIT_SECONDS", "60"))
_STYLE = {
    "verified": "green",
    "committed": "green",
    "reprotected": "bold green",
    "done": "green",
    "failed": "bold red",
    "skipped": "yellow",
    "running": "cyan",
    "failed-back": "cyan",
}

err = Console(stderr=True)


def _quiet_prefect_console() -> None:
    """Keep Prefect's INFO lines (still sent to the API) off the terminal while the live display runs."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    # DR networks are often closed: no telemetry calls (and no error lines when they cannot get out).
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DRPLAN_APPROVAL_POLL_SECONDS", "1")
    # the local engine's first start migrates a fresh SQLite database: allow for a busy machine
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # the ephemeral server (a child process: it inherits this environment) records task runs and events in
    # batches, so a large plan's task runs all reach the API soon after the flow ends (prefect-notes §4)
    os.environ.setdefault("PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE", "500")
    os.environ.setdefault("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE", "500")


def _fail_input(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(2)


class Progress:
    """Live table of the plan's units, fed by :mod:`drplan.run.context` events; answers approvals."""

    def __init__(self, graph, console: Console, *, auto_approve: bool, interactive: bool):
        self.graph, self.console = graph, console
        self.auto_approve, self.interactive = auto_approve, interactive
        self.state: dict[str, tuple[str, str]] = {n: ("pending", "") for n in graph.order}
        self.live: Live | None = None
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def table(self) -> Table:
        t = Table(title="units", expand=False)
        for col in ("unit", "kind", "status", "detail"):
            t.add_column(col, overflow="fold")
        for node, (status, detail) in self.state.items():
            kind = self.graph.units[node].kind if node in self.graph.units else "gate"
            style = _STYLE.get(status, "")
            t.add_row(node, kind, f"[{style}]{status}[/]" if style else status, detail[:90])
        return t

    def __call__(self, event) -> None:
        status = {
            "failback-started": "running",
            "failed-back": "failed-back",
            "hook-done": "done",
            "commit-ready": "commit-ready",
            "commit-approved": "commit-approved",
        }.get(event.transition, event.transition)
        with self._lock:
            self.state[event.node] = (status, event.message.splitlines()[0] if event.message else "")
            if self.live is not None:
                self.live.update(self.table())
        if event.transition == "approval-requested":
            th = threading.Thread(target=self._answer, args=(event,), daemon=True)
            th.start()
            self.threads.append(th)

    def _answer(self, event) -> None:
        """Resume the paused flow run with an answer: ``--approve``, or the terminal's, when there is one."""
        from flows.common import resume_when_paused

        run_id = event.payload.get("flow_run_id")
        if not run_id or not (self.auto_approve or self.interactive):
            self.console.print(
                f"[yellow]approval {event.node} is waiting:[/] {event.message} - resume flow run "
                f"{run_id} in the Prefect UI or with resume_flow_run(id, run_input=...)"
            )
            return

        def answer() -> dict:
            if self.auto_approve:
                return {"approved": True, "approver": "drplan --approve", "comment": ""}
            if self.live is not None:
                self.live.stop()
            approved = typer.confirm(f"{event.message}\nApprove {event.node}?", default=False)
            if self.live is not None:
                self.live.start()
            return {"approved": approved, "approver": os.environ.get("USER", "cli"), "comment": ""}

        resume_when_paused(run_id, answer)


def run_flow_command(
    flow_obj,
    params: dict[str, Any],
    plan_file: Path,
    *,
    approve: bool,
    as_json: bool,
    validate: Callable[[Any], None] | None = None,
) -> None:
    """Validate the plan (exit 2), run ``flow_obj`` with a live display, print the outcome, exit 0 or 1.

    Call :func:`_quiet_prefect_console` before importing the flow module (Prefect reads it at import).
    """
    from drplan.plan.graph import load_and_compile
    from drplan.run import context as runtime

    try:
        plan, graph = load_and_compile(plan_file)
        if validate is not None:
            validate(graph)
    except PlanError as exc:
        for problem in exc.problems:
            err.print(problem, highlight=False, markup=False)
        raise typer.Exit(2) from None
    except (ValueError, OSError) as exc:
        raise _fail_input(str(exc)) from None

    _quiet_prefect_console()
    import flows.common as common

    console = Console(stderr=as_json)
    progress = Progress(graph, console, auto_approve=approve, interactive=sys.stdin.isatty() and not as_json)
    unsubscribe = runtime.subscribe(progress)
    try:
        if as_json or not console.is_terminal:
            state = flow_obj(**params, return_state=True)
        else:
            with Live(progress.table(), console=console, refresh_per_second=4, transient=False) as live:
                progress.live = live
                state = flow_obj(**params, return_state=True)
                progress.live = None
    except KeyboardInterrupt:
        err.print(
            "[yellow]interrupted[/]: ASR jobs already started keep running; run the same command again "
            "to continue from ASR's state"
        )
        raise typer.Exit(1) from None
    except Exception as exc:  # the engine could not run the flow at all (API unreachable, ...)
        err.print(f"[bold red]error:[/] could not run the flow: {type(exc).__name__}: {exc}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        unsubscribe()

    run_id = state.state_details.flow_run_id
    try:
        recorded = common.wait_until_recorded(
            run_id, common.SUBMITTED.get(str(run_id), 0), RECORD_WAIT_SECONDS
        )
    except Exception:  # the API went away: nothing more to wait for
        recorded = False
    if not recorded:
        err.print(
            f"[yellow]warning:[/] the Prefect API has not recorded every task run of flow run {run_id} "
            f"after {RECORD_WAIT_SECONDS:g}s; its history may be incomplete"
        )
    if state.is_completed():
        result = state.result()
        if as_json:
            print(json.dumps(result, default=str, indent=2))
        else:
            _print_summary(console, result)
        raise typer.Exit(0)
    exc = state.result(raise_on_failure=False)
    message = str(exc) if isinstance(exc, BaseException) else (state.message or "the run failed")
    if as_json:
        print(
            json.dumps({"plan": plan.name, "outcome": "failed", "error": message, "flow_run_id": str(run_id)})
        )
    err.print(f"[bold red]{plan.name}: run failed[/] (flow run {run_id})", highlight=False)
    err.print(message, highlight=False, markup=False)
    raise typer.Exit(1)


def _short(value: str, n: int = 19) -> str:
    return value[11:n] if len(value) >= n and value[4:5] == "-" else value


def _outcome(text: str) -> str:
    """A step's outcome for the terminal table: ``ok`` (its time is in the report artifact) or the reason."""
    return "ok" if text.startswith("ok") else text.split(" (")[0][:24]


def _print_summary(console: Console, result: dict) -> None:
    for line in result.get("would", []):
        console.print(f"would: {line}", highlight=False, markup=False)
    rows = result.get("rows", [])
    if rows and result.get("columns"):  # drill / reprotect name their own columns
        _print_columns(console, result)
    elif rows:
        t = Table(title=f"{result.get('plan')}: {result.get('outcome')}")
        for col in ("unit", "vm", "status", "point", "data loss", "verified", "commit", "reprotect", "RTO"):
            t.add_column(col, overflow="fold")  # fold, never cut: a DR report must be read whole
        for r in rows:
            kind = {"app-consistent": "app", "crash-consistent": "crash"}.get(r.get("point_kind", ""), "")
            point = f"{kind} {_short(r.get('point_time', ''))}".strip()
            t.add_row(
                r.get("unit", ""),
                r.get("vm", ""),
                r.get("status", ""),
                point,
                r.get("data_loss", ""),
                _short(r.get("verified_at", "")),
                _outcome(r.get("commit", "")),
                _outcome(r.get("reprotect", "")),
                r.get("rto", ""),
            )
        console.print(t)
    console.print(f"[bold]{result.get('plan')}[/]: {result.get('outcome')}", highlight=False)


# -- the options failback, drill and reprotect share: declared once -----------------------------------------
PlanArg = Annotated[Path, typer.Argument(help="the plan YAML file")]
SimulateOpt = Annotated[bool, typer.Option("--simulate", help="run on the embedded simulated estate")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="every read, no write; print what it would do")]
RecoveryPointOpt = Annotated[
    list[str] | None,
    typer.Option("--recovery-point", help="POLICY for every unit, or UNIT=POLICY (repeatable)"),
]
EstateOpt = Annotated[
    Path | None, typer.Option("--estate", help="simulated estate YAML (implies --simulate)")
]
SpeedOpt = Annotated[float, typer.Option("--speed", help="simulated seconds per real second")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as JSON")]


@app.command("failback")
def failback_command(
    plan: PlanArg,
    simulate: SimulateOpt = False,
    dry_run: DryRunOpt = False,
    recovery_point: RecoveryPointOpt = None,
    commit: Annotated[
        str | None, typer.Option("--commit", help="commit policy: after-verification, approval or never")
    ] = None,
    no_reprotect: Annotated[
        bool, typer.Option("--no-reprotect", help="do not reprotect back to Azure")
    ] = False,
    estate: EstateOpt = None,
    speed: SpeedOpt = 600.0,
    approve: Annotated[
        bool, typer.Option("--approve", help="answer the plan's approval gates with yes")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Fail a plan back from Azure to on-prem VMware as a Prefect flow run whose task graph is the plan."""
    _quiet_prefect_console()  # before Prefect is first imported
    if commit is not None and commit not in {p.value for p in CommitPolicy}:
        raise _fail_input(f"--commit {commit!r}: use one of {', '.join(p.value for p in CommitPolicy)}")
    _check_run_options(speed, estate)

    from drplan.failback.point_choice import parse_overrides
    from flows.failback import failback

    params = {
        "plan": str(plan),
        "recovery_point": list(recovery_point or []),
        "commit": commit,
        "reprotect": not no_reprotect,
        **_target_params(simulate, dry_run, estate, speed),
    }
    run_flow_command(
        failback,
        params,
        plan,
        approve=approve,
        as_json=as_json,
        validate=lambda graph: parse_overrides(recovery_point, graph.units),
    )


# -- drill and reprotect: the same options, display and exit codes as failback (issue 7) --------------------
def _print_columns(console: Console, result: dict) -> None:
    t = Table(title=f"{result.get('plan')}: {result.get('outcome')}")
    columns = list(result["columns"])
    for col in columns:
        t.add_column(col.replace("_", " "), overflow="fold")
    for r in result["rows"]:
        t.add_row(*(str(r.get(c, "")) for c in columns))
    console.print(t)


def _target_params(simulate: bool, dry_run: bool, estate: Path | None, speed: float) -> dict[str, Any]:
    """The flow parameters every run command passes the same way: where it runs, and whether it writes."""
    return {
        "simulate": simulate or estate is not None,
        "dry_run": dry_run,
        "estate": str(estate) if estate else None,
        "speed": speed,
    }


def _check_run_options(speed: float, estate: Path | None) -> None:
    if speed <= 0:
        raise _fail_input("--speed must be positive")
    if estate is not None:
        from drplan.sim.estate import Estate

        try:
            Estate.from_yaml(estate)
        except PlanError as exc:
            for problem in exc.problems:
                err.print(problem, highlight=False, markup=False)
            raise typer.Exit(2) from None


@app.command("drill")
def drill_command(
    plan: PlanArg,
    simulate: SimulateOpt = False,
    dry_run: DryRunOpt = False,
    recovery_point: RecoveryPointOpt = None,
    estate: EstateOpt = None,
    speed: SpeedOpt = 600.0,
    approve: Annotated[
        bool, typer.Option("--approve", help="answer approval gates that stop drills with yes")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """DR drill: test failover to the plan's isolated test network in graph order, verify, always clean up,
    report RTO/RPO per unit against the plan's targets."""
    _check_run_options(speed, estate)
    from drplan.failback.point_choice import parse_overrides
    from flows.drill import drill

    params = {
        "plan": str(plan),
        "recovery_point": list(recovery_point or []),
        **_target_params(simulate, dry_run, estate, speed),
    }
    run_flow_command(
        drill,
        params,
        plan,
        approve=approve,
        as_json=as_json,
        validate=lambda graph: parse_overrides(recovery_point, graph.units),
    )


@app.command("reprotect")
def reprotect_command(
    plan: PlanArg,
    simulate: Annotated[
        bool, typer.Option("--simulate", help="run on the embedded simulated estate (VMs in Azure)")
    ] = False,
    dry_run: DryRunOpt = False,
    estate: EstateOpt = None,
    speed: SpeedOpt = 600.0,
    as_json: JsonOpt = False,
) -> None:
    """Reprotect the plan's VMs Azure -> on-prem (master target rules checked first) and wait for healthy
    replication."""
    _check_run_options(speed, estate)
    from flows.reprotect import reprotect

    params = {
        "plan": str(plan),
        **_target_params(simulate, dry_run, estate, speed),
    }
    run_flow_command(reprotect, params, plan, approve=False, as_json=as_json)
