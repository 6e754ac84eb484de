"""What a run shows in Prefect while it runs and after: ``drplan.unit.*`` events with a human message, a log
line per unit change (under the task that made it), a live status artifact with one row per unit (pending
ones included), a progress artifact, a links artifact, and the report artifacts at the end."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactUpdate
from prefect.events import emit_event
from prefect.logging.loggers import get_logger

from drplan.clock import Clock
from drplan.plan.graph import RecoveryGraph
from drplan.plan.schema import format_duration
from drplan.run.ports import UnitEvent
from drplan.run.report import Report, mode_marker

log = get_logger("drplan.run")

#: a unit's state mark by its last transition (anything else: running); characters every font has
ICONS = {
    "pending": "·",
    "failed": "✗",
    "skipped": "–",
    "verified": "✓",
    "committed": "✓",
    "reprotected": "✓",
    "done": "✓",
    "cleaned-up": "✓",
    "hook-done": "✓",
    "hook-not-run": "–",
    "approval-requested": "?",
}
RUNNING = "…"
FINAL = {"verified", "failed", "skipped", "hook-done", "hook-not-run"}
WORDS = {
    "failback-started": "failback started",
    "failed-back": "failed back to on-prem",
    "verified": "verified on-prem",
    "committed": "committed",
    "reprotected": "reprotected to Azure",
    "failed": "failed",
    "skipped": "not started",
    "hook-done": "done",
    "hook-not-run": "not run",
    "approval-requested": "waiting for approval",
    "approval-approved": "approved",
    "approval-declined": "declined",
}


@dataclass
class UnitLine:
    """One unit's row on the status board."""

    kind: str
    state: str = "pending"
    step: str = ""
    started: datetime | None = None
    ended: datetime | None = None
    message: str = ""


def artifact_key(plan_name: str, what: str) -> str:
    """Artifact keys: lowercase letters, numbers and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"drplan-{plan_name}-{what}".lower()).strip("-")


def sentence(event: UnitEvent) -> str:
    """The event as a sentence an operator reads: ``app-01 failed: failback: job 42 ...``."""
    what = WORDS.get(event.transition, event.transition.replace("-", " "))
    text = f"{event.node} {what}"
    first = event.message.splitlines()[0] if event.message else ""
    return f"{text}: {first}" if first else text


class Monitor:
    """Event sink: each unit transition becomes a Prefect event, a log line and a status-board change."""

    def __init__(
        self,
        plan_name: str,
        graph: RecoveryGraph,
        flow_kind: str,
        mode: str,
        clock: Clock,
        *,
        refresh_seconds: float = 1.0,
    ):
        self.plan_name, self.graph, self.flow_kind, self.mode, self.clock = (
            plan_name,
            graph,
            flow_kind,
            mode,
            clock,
        )
        self.units = [n for n in graph.order if graph.units[n].kind != "hook"]
        self.lines = {n: UnitLine(graph.units[n].kind) for n in graph.order}
        self.finished: set[str] = set()  # units verified, failed or skipped
        self.progress_id: UUID | None = None
        self.status_id: UUID | None = None
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.run_id = ""

    # -- artifacts ----------------------------------------------------------------------------------------
    def key(self, what: str) -> str:
        return artifact_key(self.plan_name, f"{self.flow_kind}-{what}")

    def start(self, run_id: str = "") -> None:
        """Create the progress, status and links artifacts; start refreshing the status board."""
        self.run_id = run_id
        self.progress_id = create_progress_artifact(
            0.0,
            key=self.key("progress"),
            description=f"{self.flow_kind} of plan {self.plan_name}: units finished / total",
        )
        self.status_id = create_markdown_artifact(
            self.board(),
            key=self.key("status"),
            description=f"live status of the {self.flow_kind} of plan {self.plan_name}: one row per unit",
        )
        create_markdown_artifact(
            self.links(), key=self.key("links"), description="where to watch this run and read its report"
        )
        self._thread = threading.Thread(target=self._refresh, name="drplan-status-board", daemon=True)
        self._thread.start()

    def links(self) -> str:
        marker = mode_marker(self.mode)
        lines = [f"# {self.flow_kind} of plan {self.plan_name}" + (f" — {marker}" if marker else ""), ""]
        lines.append(f"- [Live status board: one row per unit](/artifacts/artifact/{self.status_id})")
        lines.append(f"- [Report (when the run ends)](/artifacts/key/{self.key('report')})")
        lines.append(f"- [Per-VM table (when the run ends)](/artifacts/key/{self.key('table')})")
        if self.run_id:
            lines.append(f"- [This flow run](/runs/flow-run/{self.run_id})")
        lines.append(f"- Unit events: `drplan.unit.*` on resources `drplan.unit.{self.plan_name}.<unit>`")
        return "\n".join(lines) + "\n"

    def board(self) -> str:
        """The status board: counts, then one row per unit and hook, in graph order."""
        now = self.clock.now()
        with self._lock:
            lines = dict(self.lines)
            done = len(self.finished)
        marker = mode_marker(self.mode)
        out = [
            f"# {self.flow_kind} of {self.plan_name}" + (f" — {marker}" if marker else ""),
            "",
            f"**{done} of {len(self.units)} units finished** · updated {now:%H:%M:%S}"
            + (" (simulated time)" if "sim" in self.mode else ""),
            "",
            "| | unit | state | step | elapsed | last message |",
            "|---|---|---|---|---|---|",
        ]
        for node, line in lines.items():
            elapsed = ""
            if line.started is not None:
                elapsed = format_duration(max(0.0, ((line.ended or now) - line.started).total_seconds()))
            message = line.message or self._waiting_for(node, lines)
            cells = [
                ICONS.get(line.state, RUNNING),
                node + (" (hook)" if line.kind == "hook" else ""),
                WORDS.get(line.state, line.state),
                line.step,
                elapsed,
                message[:160],
            ]
            out.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
        return "\n".join(out) + "\n"

    def _waiting_for(self, node: str, lines: dict[str, UnitLine]) -> str:
        if lines[node].state != "pending":
            return ""
        deps = [p for p in self.graph.predecessors(node) if lines.get(p, UnitLine("")).state not in FINAL]
        return f"waiting for {', '.join(deps)}" if deps else "ready"

    def _refresh(self) -> None:
        with get_client(sync_client=True) as client:  # one client for the run's board, not one per update
            while not self._stop.is_set():
                if self._dirty.wait(self.refresh_seconds) and not self._stop.is_set():
                    self._dirty.clear()
                    self._push(client)
                    self._stop.wait(self.refresh_seconds)

    def _push(self, client: Any = None) -> None:
        if self.status_id is None:
            return
        try:
            if client is not None:
                client.update_artifact(self.status_id, ArtifactUpdate(data=self.board()))
                return
            with get_client(sync_client=True) as own:
                own.update_artifact(self.status_id, ArtifactUpdate(data=self.board()))
        except Exception as exc:  # the board is a view: never break a failback for it
            log.debug("status board update failed: %s", exc)

    # -- events --------------------------------------------------------------------------------------------
    def __call__(self, event: UnitEvent) -> None:
        if event.node == "(run)":
            return
        text = sentence(event)
        quiet = event.transition not in ("failed", "skipped", "hook-not-run", "approval-declined")
        level = logging.INFO if quiet and not event.transition.endswith("-skipped") else logging.WARNING
        _run_logger().log(level, "%s", text)
        kind = self.graph.units[event.node].kind if event.node in self.graph.units else "gate"
        emit_event(
            event=f"drplan.unit.{event.transition}",
            resource={
                "prefect.resource.id": f"drplan.unit.{self.plan_name}.{event.node}",
                "prefect.resource.name": event.node,
                "drplan.plan": self.plan_name,
                "drplan.kind": kind,
            },
            payload={
                "message": text,
                "detail": event.message,
                "flow": self.flow_kind,
                "mode": self.mode,
                **_plain(event.payload),
            },
        )
        self._note(event)

    def _note(self, event: UnitEvent) -> None:
        now, step = self.clock.now(), _task_name()
        with self._lock:
            line = self.lines.setdefault(event.node, UnitLine("gate"))
            if line.started is None:
                line.started = now
            aside = event.transition.endswith("-skipped") and event.transition != "gate-skipped"
            if not aside:  # "commit X skipped" leaves X as it was (verified), with the reason as its message
                line.state = "skipped" if event.transition == "gate-skipped" else event.transition
                if line.state not in ICONS:
                    line.state = "running"
                line.ended = now if line.state in ICONS and line.state != "approval-requested" else None
            line.step = step or line.step
            line.message = sentence(event)
            newly = event.node in self.units and event.transition in ("verified", "failed", "skipped")
            if newly:
                self.finished.add(event.node)
            share = 100.0 * len(self.finished) / max(1, len(self.units))
        self._dirty.set()
        if newly and self.progress_id is not None:
            with contextlib.suppress(Exception):
                update_progress_artifact(self.progress_id, share)

    def finish(self) -> None:
        """Stop refreshing; the board's last state and the progress at 100 %."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._push()
        if self.progress_id is not None:
            with contextlib.suppress(Exception):
                update_progress_artifact(self.progress_id, 100.0)


def _plain(payload: Any) -> dict[str, Any]:
    """Event payload values as JSON-friendly scalars and lists."""
    out = {}
    for k, v in dict(payload).items():
        out[k] = v if isinstance(v, str | int | float | bool | list | type(None)) else str(v)
    return out


def _task_name() -> str:
    from prefect.context import TaskRunContext

    ctx = TaskRunContext.get()
    return ctx.task_run.name if ctx is not None and ctx.task_run is not None else ""


def _run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The current task's (or flow's) run logger, so the line lands under the task that made it."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return log


def publish_report(report: Report, flow_kind: str) -> None:
    """The run's markdown report and the same rows as a table artifact (point ids shortened)."""
    create_markdown_artifact(
        report.markdown(),
        key=artifact_key(report.plan_name, f"{flow_kind}-report"),
        description=f"drplan {flow_kind} report for plan {report.plan_name}",
    )
    rows = [
        {k: (v.rsplit("/", 1)[-1] if k == "point" and isinstance(v, str) else v) for k, v in r.items()}
        for r in report.table()
    ]
    if rows:
        create_table_artifact(
            rows,
            key=artifact_key(report.plan_name, f"{flow_kind}-table"),
            description=f"drplan {flow_kind} per-VM rows for plan {report.plan_name}",
        )
