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
    point_age: float | None = None  # seconds: how old the point ASR applied was when its failback was decided
    provider: str = ""  # modernized | classic, as ASR reports the item
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
    "provider",
    "status",
    "point",
    "point time",
    "point age",
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
        self.attention: list[str] = []  # "needs attention" markdown bullets, set when the run ends
        self.approvals: list[str] = []  # who answered each approval, and what
        self.not_run: dict[str, str] = {}  # hooks that did not run (simulation), with why
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
                elif k in ("data_loss", "point_age", "rto"):
                    d[k] = _d(v)
                elif v is None:
                    d[k] = ""
            out.append(d)
        return out

    def heading(
        self, kind: str, *, after_mode: Sequence[str] = (), after_times: Sequence[str] = ()
    ) -> list[str]:
        """What every kind of report (failback, drill, reprotect) starts with: the title (with a marker for
        simulated and dry runs), "needs attention", the meta line, approvals, hooks not run, preflight."""
        marker = mode_marker(self.mode)
        lines = [f"# drplan {kind} report: {self.plan_name}" + (f" — {marker}" if marker else ""), ""]
        if self.attention:
            lines += ["## ⚠ Needs attention", "", *self.attention, ""]
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
        if self.approvals:
            lines += ["**Approvals:**", "", *(f"- {a}" for a in self.approvals), ""]
        if self.not_run:
            lines += ["**Hooks not run:**", "", *(f"- {h}: {why}" for h, why in self.not_run.items()), ""]
        bad = [c for c in self.preflight if not c.ok]
        if self.preflight:
            lines.append(f"Preflight: {len(self.preflight) - len(bad)}/{len(self.preflight)} checks passed.")
            lines += [f"- ✗ **{c.name}**: {c.message}" for c in bad]
            lines.append("")
        return lines

    def unit_rows(self) -> list[dict[str, str]]:
        """One short row per unit (and hook), for a laptop screen: no ids, times as hh:mm, worst member."""
        groups: dict[str, list[Row]] = {}
        for r in self.rows:
            groups.setdefault(r.unit, []).append(r)
        out = []
        for unit, rows in groups.items():
            statuses = [shown_status(r) for r in rows]
            timed = [r for r in rows if r.point_time]
            losses = [r.data_loss for r in rows if r.data_loss is not None]
            rtos = [r.rto for r in rows if r.rto is not None]
            out.append(
                {
                    "unit": unit,
                    "VMs": ", ".join(r.vm for r in rows if r.kind not in ("hook", "gate")),
                    "status": min(statuses, key=_rank),
                    "point": f"{_kind(timed[0].point_kind)} {timed[0].point_time:%H:%M}" if timed else "",
                    "data loss": _loss(max(losses)) if losses else "",
                    "RTO": _d(max(rtos)) if rtos and len(rtos) == len(rows) else "",
                }
            )
        return out

    def markdown(self) -> str:
        lines = self.heading("failback")
        units = self.unit_rows()
        if units:
            head = list(units[0])
            lines += ["## Units", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(_cell(u[h]) for h in head) + " |" for u in units]
            lines += ["", "## Details", ""]
        lines.append("| " + " | ".join(_HEAD) + " |")
        lines.append("|" + "---|" * len(_HEAD))
        for r in self.rows:
            point = f"{r.point_kind} `{r.point.rsplit('/', 1)[-1]}`" if r.point else ""
            cells = [
                r.unit,
                r.vm,
                r.provider,
                shown_status(r),
                point,
                _t(r.point_time),
                _d(r.point_age),
                _loss(r.data_loss),
                _t(r.failback_start),
                _t(r.failback_end),
                r.verification or _t(r.verified_at),
                r.commit or _t(r.committed_at),
                r.reprotect or _t(r.reprotected_at),
                _d(r.rto),
                r.note,
            ]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        return "\n".join(lines) + "\n"


_RANK = ["failed", "skipped", "not run", "pending", "running", "failing-back", "failed-back"]


def _rank(status: str) -> int:
    """Members differ: a unit shows its least advanced member (failed first)."""
    return next((i for i, k in enumerate(_RANK) if status.startswith(k)), len(_RANK))


def _kind(point_kind: str) -> str:
    return {"app-consistent": "app", "crash-consistent": "crash"}.get(point_kind, point_kind)


def _loss(value: float | None) -> str:
    """Data loss against the newest point: "0s" reads as none lost, so say "none (newest point)"."""
    if value is None:
        return ""
    return "none (newest point)" if value < 1 else format_duration(value)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def shown_status(row: Row) -> str:
    """A VM row's status as the operator needs it: committed and reprotected once they happened."""
    if row.status == "verified" and row.reprotect.startswith("ok"):
        return "reprotected"
    if row.status == "verified" and row.commit.startswith(("ok", "already")):
        return "committed"
    return row.status


def mode_marker(mode: str) -> str:
    """The marker of a run that is not a real one: SIMULATED, DRY RUN, or both."""
    marks = []
    if "sim" in mode:
        marks.append("SIMULATED")
    if "dry run" in mode:
        marks.append("DRY RUN")
    return " · ".join(marks)
