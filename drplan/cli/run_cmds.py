"""``drplan failback | drill | reprotect``: validate the plan and the options here (exit 2, no Prefect
imported), then hand over to the Prefect layer (:mod:`flows.cli`, imported inside the command), which runs
the flow locally (Prefect's default engine) or on the server in ``PREFECT_API_URL`` with a live display.

Exit codes: 0 success, 1 the run failed (or was refused), 2 invalid input. No tracebacks for users.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from drplan.cli import app
from drplan.errors import PlanError
from drplan.plan.schema import CommitPolicy

err = Console(stderr=True)


def _quiet_prefect_console() -> None:
    """Keep Prefect's and the SDKs' log lines (still sent to the API) off the terminal: the command shows the
    run itself (live table, approvals, outcome) and every user-facing error in its own words."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
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


def _run(
    flow_name: str,
    params: dict[str, Any],
    plan_file: Path,
    *,
    approve: bool,
    as_json: bool,
    validate: Callable[[Any], object] | None = None,
) -> None:
    """Validate the plan and the settings (exit 2), then run the flow in the Prefect layer."""
    from drplan.plan.graph import load_and_compile
    from drplan.settings import Settings

    try:
        plan, graph = load_and_compile(plan_file)
        if validate is not None:
            validate(graph)
        settings = Settings()
    except PlanError as exc:
        for problem in exc.problems:
            err.print(problem, highlight=False, markup=False)
        raise typer.Exit(2) from None
    except ValidationError as exc:  # a DRPLAN_* setting that is not valid: one line per setting
        raise _fail_input(
            "; ".join(f"DRPLAN_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        ) from None
    except (ValueError, OSError) as exc:
        raise _fail_input(str(exc)) from None
    _quiet_prefect_console()
    from flows.cli import run_flow

    run_flow(flow_name, params, plan, graph, approve=approve, as_json=as_json, settings=settings)


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

    params = {
        "plan": str(plan),
        "recovery_point": list(recovery_point or []),
        "commit": commit,
        "reprotect": not no_reprotect,
        **_target_params(simulate, dry_run, estate, speed),
    }
    _run(
        "failback",
        params,
        plan,
        approve=approve,
        as_json=as_json,
        validate=lambda graph: parse_overrides(recovery_point, graph.units),
    )


# -- drill and reprotect: the same options, display and exit codes as failback -------------------------
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
    _quiet_prefect_console()  # before Prefect is first imported
    _check_run_options(speed, estate)
    from drplan.failback.point_choice import parse_overrides

    params = {
        "plan": str(plan),
        "recovery_point": list(recovery_point or []),
        **_target_params(simulate, dry_run, estate, speed),
    }
    _run(
        "drill",
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
    _quiet_prefect_console()  # before Prefect is first imported
    _check_run_options(speed, estate)
    params = {
        "plan": str(plan),
        **_target_params(simulate, dry_run, estate, speed),
    }
    _run("reprotect", params, plan, approve=False, as_json=as_json)
