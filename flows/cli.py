"""The Prefect side of ``drplan failback | drill | reprotect``: run the flow with a live display of its units,
answer approvals, wait until the API recorded every task run, print the outcome, exit 0 or 1.

The flow runs in a worker thread; the main thread only waits, so one Ctrl-C or one SIGTERM stops the command
within seconds (:mod:`flows.interrupt`): the message, no traceback, no child process left.

Exit codes: 0 success, 1 the run failed (or was refused, or interrupted), 2 invalid input.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from datetime import datetime
from typing import Any

import typer
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL
from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from drplan.cli.run_cmds import err
from drplan.run.events import observing
from drplan.run.ports import UnitEvent
from drplan.settings import Settings
from flows.interrupt import guard, run_interruptibly
from flows.monitor import sentence

_STYLE = {
    "verified": "green",
    "committed": "green",
    "reprotected": "bold green",
    "done": "green",
    "failed": "bold red",
    "skipped": "yellow",
    "not run": "yellow",
    "running": "cyan",
    "failed-back": "cyan",
    "approval": "bold magenta",
}
_STATUS = {
    "failback-started": "running",
    "failed-back": "failed-back",
    "hook-done": "done",
    "hook-not-run": "not run",
    "commit-ready": "commit-ready",
    "commit-approved": "approved",
    "approval-requested": "approval",
    "approval-approved": "approved",
    "approval-declined": "declined",
}


_KNOWN = {"verified", "committed", "reprotected", "failed", "skipped", "done", "cleaned-up", "gate-skipped"}


def flow_run_url(run_id: object) -> str:
    """Where a person opens the flow run (and its approval form) in the Prefect UI."""
    ui = PREFECT_UI_URL.value() or (PREFECT_API_URL.value() or "").removesuffix("/api")
    return f"{ui.rstrip('/')}/runs/flow-run/{run_id}" if ui else f"flow run {run_id}"


class Progress:
    """Live table of the plan's units, fed by the run's events (an observer); answers approvals."""

    def __init__(
        self, graph, console: Console, *, auto_approve: bool, interactive: bool, lines: bool = False
    ):
        self.graph, self.console = graph, console
        self.auto_approve, self.interactive, self.lines = auto_approve, interactive, lines
        self.state: dict[str, tuple[str, str]] = {n: ("pending", "") for n in graph.order}
        self.live: Live | None = None
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.task_runs = 0  # how many task runs the flow run will have (from its "planned" event)
        self.run_id = ""

    def table(self) -> Table:
        t = Table(title="units", expand=False, box=box.SIMPLE_HEAD, pad_edge=False)
        t.add_column("unit", no_wrap=True, max_width=22)
        t.add_column("status", no_wrap=True, max_width=12)
        t.add_column("detail", no_wrap=True, overflow="ellipsis", max_width=42)
        for node, (status, detail) in self.state.items():
            style = _STYLE.get(status, "")
            t.add_row(node, f"[{style}]{status}[/]" if style else status, detail, style=None)
        return t

    def __call__(self, event: UnitEvent) -> None:
        if event.node == "(run)":
            self.task_runs = int(event.payload.get("task_runs", self.task_runs))
            self.run_id = str(event.payload.get("run_id", "") or self.run_id)
            return
        if event.transition.endswith("-skipped") and event.transition != "gate-skipped":
            status = self.state.get(event.node, ("pending", ""))[0]  # "commit X skipped": X stays as it was
        else:
            status = _STATUS.get(event.transition) or (
                event.transition if event.transition in _KNOWN else "running"
            )
        with self._lock:
            self.state[event.node] = (status, event.message.splitlines()[0] if event.message else "")
            if self.live is not None:
                self.live.update(self.table())
            elif self.lines:
                self.console.print(
                    f"{datetime.now():%H:%M:%S} {sentence(event)}", highlight=False, markup=False
                )
        if event.transition == "approval-requested":
            th = threading.Thread(target=self._answer, args=(event,), daemon=True)
            th.start()
            self.threads.append(th)

    def _answer(self, event) -> None:
        """Resume the paused flow run with an answer: ``--approve``, or the terminal's, when there is one."""
        run_id = event.payload.get("run_id")
        if not run_id or not (self.auto_approve or self.interactive):
            self.console.print(
                f"[yellow]approval {event.node} is waiting[/]: approve or decline it at "
                f"{flow_run_url(run_id)} (Resume), or with resume_flow_run(id, run_input=...)",
                highlight=False,
            )
            return

        def answer() -> dict:
            if self.auto_approve:
                who = os.environ.get("USER") or "cli"
                return {"approved": True, "approver": f"{who} (drplan --approve)", "comment": ""}
            if self.live is not None:
                self.live.stop()
            self.console.print(event.message, highlight=False, markup=False)
            approved = typer.confirm(f"Approve {event.node}?", default=False)
            approver = typer.prompt("Your name", default=os.environ.get("USER") or "cli")
            comment = typer.prompt("Comment", default="", show_default=False)
            if self.live is not None:
                self.live.start()
            return {"approved": approved, "approver": approver, "comment": comment}

        resume_when_paused(run_id, answer)


def approvals_needed(flow_name: str, params: dict[str, Any], plan, graph) -> list[str]:
    """The approval points that would pause this run (empty for a dry run): what needs a person."""
    if params.get("dry_run"):
        return []
    hooks = [u for u in graph.units.values() if u.kind == "hook" and u.hook.kind == "approval"]
    if flow_name == "failback":
        out = [h.name for h in hooks if "failback" in h.hook.runs_in]
        if (params.get("commit") or plan.failback.commit) == "approval":
            out.append("commit-gate")
        return out
    if flow_name == "drill":
        return [
            h.name
            for h in hooks
            if "drill" in h.hook.runs_in and (plan.drill.stop_for_approvals or h.hook.in_drills)
        ]
    return []


def run_flow(
    flow_name: str, params: dict[str, Any], plan, graph, *, approve: bool, as_json: bool, settings: Settings
) -> None:
    """Run the flow ``flow_name`` (failback, drill, reprotect) on a validated plan with a live display, print
    the outcome, exit 0 or 1. Prefect's console settings must be in the environment before this imports it."""
    import importlib

    console = Console(stderr=as_json)
    interactive = sys.stdin.isatty() and not as_json
    waiting = approvals_needed(flow_name, params, plan, graph)
    if waiting and not approve and not interactive:
        if not PREFECT_API_URL.value():
            err.print(
                f"[bold red]error:[/] plan {plan.name} stops for approval at {', '.join(waiting)}, and there "
                "is no terminal to ask and no --approve. Run it in a terminal, add --approve, or run it "
                "against a Prefect server (PREFECT_API_URL) and approve in its UI.",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1)
        err.print(
            f"[yellow]note:[/] plan {plan.name} stops for approval at {', '.join(waiting)}: approve in the "
            f"Prefect UI at {PREFECT_UI_URL.value() or PREFECT_API_URL.value()} when asked",
            highlight=False,
        )

    flow_obj = getattr(importlib.import_module(f"flows.{flow_name}"), flow_name)
    live_table = console.is_terminal and not as_json
    progress = Progress(
        graph, console, auto_approve=approve, interactive=interactive, lines=not live_table and not as_json
    )

    def run() -> Any:
        with observing(progress):
            if not live_table:
                return flow_obj(**params, return_state=True)
            with Live(progress.table(), console=console, refresh_per_second=4, transient=False) as live:
                progress.live = live
                try:
                    return flow_obj(**params, return_state=True)
                finally:
                    progress.live = None

    def on_interrupt() -> None:
        _stop_live(progress)
        _mark_interrupted(progress.run_id)

    try:
        state = run_interruptibly(run, on_interrupt)
    except Exception as exc:  # the engine could not run the flow at all (API unreachable, ...)
        err.print(f"[bold red]error:[/] could not run the flow: {type(exc).__name__}: {exc}", highlight=False)
        raise typer.Exit(1) from None

    with guard(on_interrupt):
        _finish(console, state, plan, progress, as_json=as_json, settings=settings)


def _finish(console: Console, state, plan, progress: Progress, *, as_json: bool, settings: Settings) -> None:
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
    summary = getattr(exc, "summary", None) or {}
    if as_json:
        print(
            json.dumps(
                {
                    **summary,
                    "plan": plan.name,
                    "outcome": "failed",
                    "error": message,
                    "flow_run_id": str(run_id),
                },
                default=str,
            )
        )
        raise typer.Exit(1)
    if summary:
        _print_summary(console, summary, footer=False)
    err.print(f"[bold red]{plan.name}: run failed[/] ({flow_run_url(run_id)})", highlight=False)
    err.print(_one_line_credentials(message), highlight=False, markup=False)
    raise typer.Exit(1)


def _mark_interrupted(run_id: str, wait: float = 2.0) -> None:
    """On a persistent server, the flow run ends Crashed saying why, not Running forever (bounded)."""
    if not run_id or not PREFECT_API_URL.value():
        return

    def mark() -> None:
        from prefect.states import Crashed

        with get_client(sync_client=True) as client:
            client.set_flow_run_state(
                run_id, Crashed(message="interrupted (Ctrl-C or SIGTERM); re-run to continue"), force=True
            )

    worker = threading.Thread(target=mark, daemon=True)
    worker.start()
    worker.join(wait)


def _stop_live(progress: Progress) -> None:
    live = progress.live
    if live is not None:
        progress.live = None
        live.stop()


_NO_CREDENTIAL = "DefaultAzureCredential failed to retrieve a token"


def _one_line_credentials(message: str) -> str:
    """A missing Azure credential said once, in one line, instead of once per failed check."""
    if _NO_CREDENTIAL not in message:
        return message
    kept = [line for line in message.splitlines() if _NO_CREDENTIAL not in line]
    kept.append(
        "  ✗ Azure credentials: none found. Set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET "
        "(a service principal), use a managed identity, or run `az login`."
    )
    return "\n".join(kept)


def _short(value: str, n: int = 16) -> str:
    return value[11:n] if len(value) >= n and value[4:5] == "-" else value


def _table() -> Table:
    """Compact: no side borders, no title (the outcome line follows the table)."""
    return Table(box=box.SIMPLE_HEAD, pad_edge=False)


def _print_summary(console: Console, result: dict, *, footer: bool = True) -> None:
    """The result as a table that fits 80 columns, then what needs attention, then the outcome."""
    for line in result.get("would", []):
        console.print(f"would: {line}", highlight=False, markup=False)
    rows = result.get("rows", [])
    if rows and result.get("columns"):  # drill / reprotect name their own columns
        _print_columns(console, result)
    elif rows:
        t = _table()
        for col, width in (("vm", 14), ("unit", 10), ("status", 12), ("point", 11), ("loss", 6), ("RTO", 8)):
            t.add_column(col, no_wrap=True, overflow="ellipsis", max_width=width)
        for r in rows:
            kind = {"app-consistent": "app", "crash-consistent": "crash"}.get(r.get("point_kind", ""), "")
            point = f"{kind} {_short(r.get('point_time', ''))}".strip()
            unit = r.get("unit", "")
            t.add_row(
                r.get("vm", ""),
                "" if unit == r.get("vm") else unit,
                _status(r),
                point,
                "none" if r.get("data_loss") == "0s" else r.get("data_loss", ""),
                r.get("rto", ""),
            )
        console.print(t)
    for line in result.get("attention", []):
        console.print(line.replace("**", "").replace("`", ""), highlight=False, markup=False)
    if footer:
        console.print(f"[bold]{result.get('plan')}[/]: {result.get('outcome')}", highlight=False)


def _status(row: dict) -> str:
    status = row.get("status", "")
    if status == "verified" and str(row.get("reprotect", "")).startswith("ok"):
        return "reprotected"
    if status == "verified" and str(row.get("commit", "")).startswith(("ok", "already")):
        return "committed"
    return status


def _print_columns(console: Console, result: dict) -> None:
    t = _table()
    columns = list(result["columns"])
    for col in columns:
        t.add_column(col.replace("_", " "), overflow="fold", max_width=30)
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
