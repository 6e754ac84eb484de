"""The Prefect side of ``drplan failback | drill | reprotect``: run the flow with a live display of its units,
answer approvals, wait until the API recorded every task run, print the outcome, exit 0 or 1.

Exit codes: 0 success, 1 the run failed (or was refused), 2 invalid input. No tracebacks for users.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

import typer
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter
from rich.console import Console
from rich.live import Live
from rich.table import Table

from drplan.cli.run_cmds import err
from drplan.run.events import observing
from drplan.run.ports import UnitEvent
from drplan.settings import Settings

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


class Progress:
    """Live table of the plan's units, fed by the run's events (an observer); answers approvals."""

    def __init__(self, graph, console: Console, *, auto_approve: bool, interactive: bool):
        self.graph, self.console = graph, console
        self.auto_approve, self.interactive = auto_approve, interactive
        self.state: dict[str, tuple[str, str]] = {n: ("pending", "") for n in graph.order}
        self.live: Live | None = None
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.task_runs = 1  # how many task runs the flow run will have (from its "planned" event)

    def table(self) -> Table:
        t = Table(title="units", expand=False)
        for col in ("unit", "kind", "status", "detail"):
            t.add_column(col, overflow="fold")
        for node, (status, detail) in self.state.items():
            kind = self.graph.units[node].kind if node in self.graph.units else "gate"
            style = _STYLE.get(status, "")
            t.add_row(node, kind, f"[{style}]{status}[/]" if style else status, detail[:90])
        return t

    def __call__(self, event: UnitEvent) -> None:
        if event.node == "(run)":
            self.task_runs = int(event.payload.get("task_runs", self.task_runs))
            return
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
        run_id = event.payload.get("run_id")
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


def run_flow(
    flow_name: str, params: dict[str, Any], plan, graph, *, approve: bool, as_json: bool, settings: Settings
) -> None:
    """Run the flow ``flow_name`` (failback, drill, reprotect) on a validated plan with a live display, print
    the outcome, exit 0 or 1. Prefect's console settings must be in the environment before this imports it."""
    import importlib

    flow_obj = getattr(importlib.import_module(f"flows.{flow_name}"), flow_name)

    console = Console(stderr=as_json)
    progress = Progress(graph, console, auto_approve=approve, interactive=sys.stdin.isatty() and not as_json)
    try:
        with observing(progress):
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

    run_id = state.state_details.flow_run_id
    try:
        recorded = wait_until_recorded(run_id, progress.task_runs, settings.record_wait_seconds)
    except Exception:  # the API went away: nothing more to wait for
        recorded = False
    if not recorded:
        err.print(
            f"[yellow]warning:[/] the Prefect API has not recorded every task run of flow run {run_id} "
            f"after {settings.record_wait_seconds:g}s; its history may be incomplete"
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


def _print_columns(console: Console, result: dict) -> None:
    t = Table(title=f"{result.get('plan')}: {result.get('outcome')}")
    columns = list(result["columns"])
    for col in columns:
        t.add_column(col.replace("_", " "), overflow="fold")
    for r in result["rows"]:
        t.add_row(*(str(r.get(c, "")) for c in columns))
    console.print(t)


def resume_when_paused(flow_run_id, answer, *, timeout: float = 300.0) -> bool:
    """Wait until the flow run is Paused, then resume it with ``answer()`` as its run input."""
    import time

    from prefect.flow_runs import resume_flow_run

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if run.state and run.state.is_paused():
                break
            if (run.state and run.state.is_final()) or time.monotonic() > deadline:
                return False
            time.sleep(0.5)
    resume_flow_run(flow_run_id, run_input=answer())
    return True


def wait_until_recorded(flow_run_id, expected: int, timeout: float = 60.0) -> bool:
    """Wait (bounded) until the API has recorded every task run of the flow run, each in a final state.

    The ephemeral local server dies with this process together with its unrecorded events (prefect-notes §1),
    so the CLI calls this before exiting.
    """
    import time

    from prefect.client.schemas.filters import FlowRunFilterId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            if len(runs) >= expected and all(r.state and r.state.is_final() for r in runs):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)
