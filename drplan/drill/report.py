"""The drill report: the failback report's rows plus what a drill measures per VM (RTO, RPO, checks,
cleanup), summed per unit and compared with the plan's ``drill.targets``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from drplan.drill.state import test_vm_name
from drplan.plan.schema import format_duration
from drplan.run.context import RunContext
from drplan.run.report import Report


@dataclass
class Facts:
    """What the drill measured for one VM."""

    test_vm: str = ""
    point_time: datetime | None = None
    test_failover_start: datetime | None = None
    test_failover_end: datetime | None = None
    verified_at: datetime | None = None
    rto: float | None = None
    rpo: float | None = None
    checks_passed: int = 0
    checks_total: int = 0
    checks: str = ""
    cleanup: str = ""


class DrillReport(Report):
    """The failback report's rows (status, point, notes) plus what a drill measures, compared with targets."""

    def __init__(self, plan, mode: str = "", started_at: datetime | None = None):
        super().__init__(plan.name, mode, started_at)
        self.targets = plan.drill.targets
        self.test_network = plan.drill.test_network or ""
        self.facts: dict[tuple[str, str], Facts] = {}
        self.leftovers: list[str] = []
        self.hooks: dict[str, str] = {}
        self.scope: list[str] = []  # what the drill exercised and what it cannot (modernized VMs)

    def fact(self, unit: str, vm: str) -> Facts:
        with self._lock:
            return self.facts.setdefault((unit, vm), Facts())

    def measure(self, unit: str, vm: str, **values) -> Facts:
        facts = self.fact(unit, vm)
        with self._lock:
            for name, value in values.items():
                setattr(facts, name, value)
        return facts

    @staticmethod
    def _against(value: float | None, target: float | None) -> str:
        if value is None:
            return ""
        text = format_duration(value)
        if target is None:
            return text
        return (
            f"{text} ✓ (target {format_duration(target)})"
            if value <= target
            else f"{text} ✗ over target {format_duration(target)}"
        )

    def units(self) -> list[dict[str, str]]:
        """One summary per unit: RTO = its slowest member, RPO = its oldest point, checks summed."""
        out, order = [], []
        for r in self.rows:
            if r.kind in ("hook", "gate") or r.unit in order:
                continue
            order.append(r.unit)
        for unit in order:
            rows = [r for r in self.rows if r.unit == unit]
            facts = [self.fact(unit, r.vm) for r in rows]
            rtos = [f.rto for f in facts if f.rto is not None]
            rpos = [f.rpo for f in facts if f.rpo is not None]
            rto = max(rtos) if rtos and len(rtos) == len(facts) else None
            rpo = max(rpos) if rpos else None
            statuses = {r.status for r in rows}
            out.append(
                {
                    "unit": unit,
                    "vms": ", ".join(r.vm for r in rows),
                    "status": statuses.pop() if len(statuses) == 1 else ", ".join(sorted(statuses)),
                    "rto": self._against(rto, self.targets.rto),
                    "rpo": self._against(rpo, self.targets.rpo),
                    "rto_seconds": "" if rto is None else f"{rto:.0f}",
                    "rpo_seconds": "" if rpo is None else f"{rpo:.0f}",
                    "rto_met": ""
                    if rto is None or self.targets.rto is None
                    else str(rto <= self.targets.rto).lower(),
                    "rpo_met": ""
                    if rpo is None or self.targets.rpo is None
                    else str(rpo <= self.targets.rpo).lower(),
                    "checks": f"{sum(f.checks_passed for f in facts)}/{sum(f.checks_total for f in facts)}",
                    "cleanup": "; ".join(sorted({f.cleanup for f in facts if f.cleanup})),
                }
            )
        return out

    def table(self) -> list[dict[str, str]]:
        """Per-VM rows: the run's status and point plus the drill's measurements."""
        out = []
        for r in self.rows:
            if r.kind in ("hook", "gate"):
                continue
            f = self.fact(r.unit, r.vm)
            out.append(
                {
                    "unit": r.unit,
                    "vm": r.vm,
                    "status": r.status,
                    "point": r.point.rsplit("/", 1)[-1],
                    "point_kind": r.point_kind,
                    "point_time": r.point_time.isoformat() if r.point_time else "",
                    "test_vm": f.test_vm,
                    "test_failover_start": f.test_failover_start.isoformat() if f.test_failover_start else "",
                    "verified_at": f.verified_at.isoformat() if f.verified_at else "",
                    "rto": self._against(f.rto, self.targets.rto),
                    "rpo": self._against(f.rpo, self.targets.rpo),
                    "rto_seconds": "" if f.rto is None else f"{f.rto:.0f}",
                    "rpo_seconds": "" if f.rpo is None else f"{f.rpo:.0f}",
                    "checks": f.checks,
                    "cleanup": f.cleanup,
                    "note": r.note,
                }
            )
        return out

    def markdown(self) -> str:
        targets = [
            f"RTO {format_duration(self.targets.rto)}" if self.targets.rto is not None else "",
            f"RPO {format_duration(self.targets.rpo)}" if self.targets.rpo is not None else "",
        ]
        lines = self.heading(
            "drill",
            after_mode=[f"**test network:** {self.test_network}"] if self.test_network else [],
            after_times=["**targets:** " + (", ".join(t for t in targets if t) or "none set")],
        )
        if self.scope:  # right under the title: what was exercised, and that failback cannot be drilled
            head, _, rest = zip(*(line.partition(":") for line in self.scope), strict=True)
            lines[2:2] = [x for h, r in zip(head, rest, strict=True) for x in (f"**{h}:**{r}", "")]
        lines += [
            "## Units",
            "",
            "| unit | VMs | status | RTO | RPO | checks passed | cleanup |",
            "|---|---|---|---|---|---|---|",
        ]
        for u in self.units():
            cells = [u["unit"], u["vms"], u["status"], u["rto"], u["rpo"], u["checks"], u["cleanup"]]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines += [
            "",
            "## VMs",
            "",
            "| unit | VM | status | point | RPO | test failover | verified | RTO | checks "
            "| test VM | cleanup | note |",
            "|" + "---|" * 12,
        ]
        for r in self.table():
            cells = [
                r["unit"],
                r["vm"],
                r["status"],
                f"{r['point_kind']} {_when(r['point_time'])}".strip(),
                r["rpo"],
                _when(r["test_failover_start"]),
                _when(r["verified_at"]),
                r["rto"],
                r["checks"],
                r["test_vm"],
                r["cleanup"],
                r["note"],
            ]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        if self.hooks:
            lines += ["", "## Hooks", ""] + [f"- **{h}**: {what}" for h, what in self.hooks.items()]
        lines += ["", "## Test VMs left behind", ""]
        lines.append(
            ", ".join(f"**{v}**" for v in self.leftovers) + " — remove them by hand or re-run the drill"
            if self.leftovers
            else "None: every test VM was removed."
        )
        return "\n".join(lines) + "\n"


def _when(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S") if iso else ""


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def new_report(ctx: RunContext) -> DrillReport:
    report = DrillReport(ctx.plan, ctx.mode + (" (dry run)" if ctx.dry_run else ""), ctx.state.started_at)
    for unit in ctx.graph.units.values():
        for vm in unit.vms:
            report.row(unit.name, vm.name, unit.kind)
            report.measure(unit.name, vm.name, test_vm=test_vm_name(vm))
    return report


def report_of(ctx: RunContext) -> DrillReport | None:
    return ctx.report if isinstance(ctx.report, DrillReport) else None


def missed_targets(report: DrillReport) -> list[str]:
    """``"web-01 RTO 1h1m over target 1h"``-style lines for every unit that missed a target."""
    out = []
    for u in report.units():
        for what in ("rto", "rpo"):
            if u[f"{what}_met"] == "false":
                out.append(f"{u['unit']} {what.upper()} {u[what]}")
    return out


def nothing_left(names: Sequence[str]) -> str:
    return "no test VM left behind" if not names else f"test VMs left behind: {', '.join(names)}"
