"""The reprotect report: per VM the inputs used, when the reprotect was sent, the replication health seen."""

from __future__ import annotations

from drplan.run.context import RunContext
from drplan.run.report import Report


class ReprotectReport(Report):
    """Per VM: the reprotect inputs used, when the reprotect was sent, and the replication health seen."""

    def table(self) -> list[dict[str, str]]:
        return [
            {
                "unit": r.unit,
                "vm": r.vm,
                "status": r.status,
                "reprotect": r.reprotect,
                "health": r.verification,
                "inputs": r.note,
            }
            for r in self.rows
            if r.kind not in ("hook", "gate")
        ]

    def markdown(self) -> str:
        lines = self.heading("reprotect")
        lines += [
            "| unit | VM | status | reprotect | replication health | inputs |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.table():
            cells = [r["unit"], r["vm"], r["status"], r["reprotect"], r["health"], r["inputs"]]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        return "\n".join(lines) + "\n"


def new_report(ctx: RunContext) -> ReprotectReport:
    report = ReprotectReport(
        ctx.plan.name, ctx.mode + (" (dry run)" if ctx.dry_run else ""), ctx.state.started_at
    )
    for unit in ctx.graph.units.values():
        for vm in unit.vms:
            report.row(unit.name, vm.name, unit.kind)
    return report
