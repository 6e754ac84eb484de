"""The run report: one row per VM (and one per hook), rendered as markdown or table rows. Prefect-free.

Times are on the run's clock (simulated time under ``--simulate``). RTO is measured from the run's
start to the moment the unit was verified on-prem.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime

from drplan.plan.schema import format_duration


@dataclass
class Row:
    unit: str
    vm: str  # the VM, or the hook/gate name for non-VM nodes
    kind: str = "vm"  # vm | group | hook | gate
    status: str = "pending"
    point: str = ""
    point_time: datetime | None = None
    point_kind: str = ""  # app-consistent | crash-consistent
    data_loss: float | None = None  # seconds between the newest available point and the chosen one
    failback_start: datetime | None = None
    failback_end: datetime | None = None
    verified_at: datetime | None = None
    verification: str = ""
    committed_at: datetime | None = None
    commit: str = ""
    reprotected_at: datetime | None = None
    reprotect: str = ""
    rto: float | None = None
    note: str = ""


COLUMNS = [f.name for f in fields(Row)]
_HEAD = [
    "unit",
    "vm",
    "status",
    "point",
    "point time",
    "data loss",
    "failback start",
    "failback end",
    "verification",
    "commit",
    "reprotect",
    "RTO",
    "note",
]


def _t(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _d(value: float | None) -> str:
    return format_duration(value) if value is not None else ""


class Report:
    """Rows keyed by (unit, vm); thread-safe updates from concurrent steps."""

    def __init__(self, plan_name: str, mode: str = "", started_at: datetime | None = None):
        self.plan_name, self.mode, self.started_at = plan_name, mode, started_at
        self.finished_at: datetime | None = None
        self.outcome = ""
        self.preflight: list = []  # CheckResult
        self._rows: dict[tuple[str, str], Row] = {}
        self._lock = threading.Lock()

    def row(self, unit: str, vm: str, kind: str = "vm") -> Row:
        with self._lock:
            key = (unit, vm)
            if key not in self._rows:
                self._rows[key] = Row(unit=unit, vm=vm, kind=kind)
            return self._rows[key]

    def update(self, unit: str, vm: str, **values) -> Row:
        row = self.row(unit, vm)
        with self._lock:
            for name, value in values.items():
                setattr(row, name, value)
        return row

    def rows_of(self, unit: str) -> list[Row]:
        with self._lock:
            return [r for (u, _), r in self._rows.items() if u == unit]

    @property
    def rows(self) -> list[Row]:
        with self._lock:
            return list(self._rows.values())

    def table(self) -> list[dict[str, str]]:
        """Rows as string dicts, for a table artifact or ``--json``."""
        out = []
        for r in self.rows:
            d = asdict(r)
            for k, v in d.items():
                if isinstance(v, datetime):
                    d[k] = v.isoformat()
                elif k in ("data_loss", "rto"):
                    d[k] = _d(v)
                elif v is None:
                    d[k] = ""
            out.append(d)
        return out

    def heading(
        self, kind: str, *, after_mode: Sequence[str] = (), after_times: Sequence[str] = ()
    ) -> list[str]:
        """The markdown title, the meta line (outcome, mode, ``after_mode``, times, ``after_times``) and the
        preflight summary: what every kind of report (failback, drill, reprotect) starts with."""
        lines = [f"# drplan {kind} report: {self.plan_name}", ""]
        meta = [f"**outcome:** {self.outcome or 'running'}"]
        if self.mode:
            meta.append(f"**mode:** {self.mode}")
        meta += after_mode
        if self.started_at:
            meta.append(f"**started:** {_t(self.started_at)}")
        if self.finished_at:
            meta.append(f"**finished:** {_t(self.finished_at)}")
        meta += after_times
        lines += [" · ".join(meta), ""]
        bad = [c for c in self.preflight if not c.ok]
        if self.preflight:
            lines.append(f"Preflight: {len(self.preflight) - len(bad)}/{len(self.preflight)} checks passed.")
            lines += [f"- ✗ **{c.name}**: {c.message}" for c in bad]
            lines.append("")
        return lines

    def markdown(self) -> str:
        lines = self.heading("failback")
        lines.append("| " + " | ".join(_HEAD) + " |")
        lines.append("|" + "---|" * len(_HEAD))
        for r in self.rows:
            point = f"{r.point_kind} `{r.point.rsplit('/', 1)[-1]}`" if r.point else ""
            cells = [
                r.unit,
                r.vm,
                r.status,
                point,
                _t(r.point_time),
                _d(r.data_loss),
                _t(r.failback_start),
                _t(r.failback_end),
                r.verification or _t(r.verified_at),
                r.commit or _t(r.committed_at),
                r.reprotect or _t(r.reprotected_at),
                _d(r.rto),
                r.note,
            ]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        return "\n".join(lines) + "\n"
