"""What a run shows in Prefect: ``drplan.unit.*`` events, the progress artifact, the report artifacts."""

from __future__ import annotations

import contextlib
import re

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.events import emit_event

from drplan.plan.graph import RecoveryGraph
from drplan.run.ports import UnitEvent
from drplan.run.report import Report


class Monitor:
    """Event sink turning unit transitions into Prefect events and progress-artifact updates."""

    def __init__(self, plan_name: str, graph: RecoveryGraph, flow_kind: str, mode: str):
        self.plan_name, self.graph, self.flow_kind, self.mode = plan_name, graph, flow_kind, mode
        self.units = {n for n, u in graph.units.items() if u.kind != "hook"}
        self.finished: set[str] = set()  # units verified, failed or skipped
        self.progress_id = None

    def start(self) -> None:
        self.progress_id = create_progress_artifact(
            0.0,
            key=artifact_key(self.plan_name, "progress"),
            description=f"{self.flow_kind} of plan {self.plan_name}: units done / total",
        )

    def __call__(self, event: UnitEvent) -> None:
        if event.node == "(run)":
            return
        emit_event(
            event=f"drplan.unit.{event.transition}",
            resource={
                "prefect.resource.id": f"drplan.unit.{self.plan_name}.{event.node}",
                "prefect.resource.name": event.node,
                "drplan.plan": self.plan_name,
                "drplan.kind": self.graph.units[event.node].kind
                if event.node in self.graph.units
                else "gate",
            },
            payload={"message": event.message, "flow": self.flow_kind, "mode": self.mode, **event.payload},
        )
        if event.node in self.units and event.transition in ("verified", "failed", "skipped"):
            self.finished.add(event.node)
            if self.progress_id is not None:
                with contextlib.suppress(Exception):
                    update_progress_artifact(self.progress_id, 100.0 * len(self.finished) / len(self.units))

    def finish(self) -> None:
        if self.progress_id is not None:
            with contextlib.suppress(Exception):
                update_progress_artifact(self.progress_id, 100.0)


def artifact_key(plan_name: str, what: str) -> str:
    """Artifact keys: lowercase letters, numbers and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"drplan-{plan_name}-{what}".lower()).strip("-")


def publish_report(report: Report, flow_kind: str) -> None:
    """The run's markdown report and the same rows as a table artifact."""
    create_markdown_artifact(
        report.markdown(),
        key=artifact_key(report.plan_name, f"{flow_kind}-report"),
        description=f"drplan {flow_kind} report for plan {report.plan_name}",
    )
    rows = report.table()
    if rows:
        create_table_artifact(
            rows,
            key=artifact_key(report.plan_name, f"{flow_kind}-table"),
            description=f"drplan {flow_kind} per-VM rows for plan {report.plan_name}",
        )
