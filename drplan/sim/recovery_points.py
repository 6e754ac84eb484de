"""Recovery points of one simulated VM: an explicit list, or a generator running on simulated time.

Generator: crash-consistent points every ``crash_every``, app-consistent every ``app_every`` (an app point
replaces the crash point at the same instant), kept for ``retention``. Members of a replication group
share multi-VM sync points at identical times; standalone VMs get a stable per-VM offset (jitter).
"""

from __future__ import annotations

import math
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from drplan.sim.estate import ExplicitPoint, PointGenerator, PointKind, Vm

_NS = uuid.UUID("6f1b8f4e-7d7a-4c55-9a59-6a0c2f0d1f3e")
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SimPoint:
    name: str
    time: datetime
    app_consistent: bool
    multi_vm_sync: bool

    @property
    def type(self) -> str:
        return "ApplicationConsistent" if self.app_consistent else "CrashConsistent"


def point_name(vm: str, time: datetime, app: bool) -> str:
    return str(uuid.uuid5(_NS, f"{vm}|{time.isoformat()}|{'app' if app else 'crash'}"))


def jitter_offset(vm: Vm, gen: PointGenerator) -> float:
    """Seconds by which a standalone VM's grid is shifted (0 for group members)."""
    if vm.replication_group or not gen.jitter:
        return 0.0
    return float(zlib.crc32(vm.name.encode()) % max(1, int(gen.crash_every)))


def _grid(start: datetime, end: datetime, every: float, offset: float) -> list[datetime]:
    if every <= 0 or end < start:
        return []
    s = (start - _EPOCH).total_seconds()
    e = (end - _EPOCH).total_seconds()
    k0 = math.ceil((s - offset) / every)
    k1 = math.floor((e - offset) / every)
    return [_EPOCH + timedelta(seconds=k * every + offset) for k in range(k0, k1 + 1)]


def points_for(
    vm: Vm,
    *,
    default_generator: PointGenerator,
    clock_start: datetime,
    now: datetime,
    stopped_at: datetime | None = None,
) -> list[SimPoint]:
    """Points available for ``vm`` at ``now``, newest first. ``stopped_at`` ends replication (failover)."""
    end = min(now, stopped_at) if stopped_at else now
    if vm.recovery_points is not None:
        return sorted(
            (_explicit(vm, p, clock_start) for p in vm.recovery_points if _time(p, clock_start) <= end),
            key=lambda p: p.time,
            reverse=True,
        )
    gen = vm.generator or default_generator
    since = vm.replicating_since or (clock_start - timedelta(seconds=gen.retention))
    start = max(since, now - timedelta(seconds=gen.retention))
    offset = jitter_offset(vm, gen)
    multi = vm.replication_group is not None
    out: dict[datetime, SimPoint] = {}
    for t in _grid(start, end, gen.crash_every, offset):
        out[t] = SimPoint(point_name(vm.name, t, False), t, False, multi)
    for t in _grid(start, end, gen.app_every, offset):
        out[t] = SimPoint(point_name(vm.name, t, True), t, True, multi)
    if vm.replicating_since and start <= vm.replicating_since <= end and vm.replicating_since not in out:
        t = vm.replicating_since  # the initial replication's point
        out[t] = SimPoint(point_name(vm.name, t, False), t, False, False)
    return sorted(out.values(), key=lambda p: p.time, reverse=True)


def _time(p: ExplicitPoint, clock_start: datetime) -> datetime:
    return p.time if p.time is not None else clock_start - timedelta(seconds=p.ago or 0)


def _explicit(vm: Vm, p: ExplicitPoint, clock_start: datetime) -> SimPoint:
    t = _time(p, clock_start)
    app = p.kind == PointKind.app
    return SimPoint(point_name(vm.name, t, app), t, app, p.multi_vm_sync)


def latest(points: list[SimPoint], *, app: bool = False) -> SimPoint | None:
    for p in points:  # newest first
        if p.app_consistent or not app:
            return p
    return None


def common_app_point(members: dict[str, list[SimPoint]]) -> dict[str, SimPoint] | None:
    """The newest app-consistent multi-VM sync time that every member has, as each member's point."""
    if not members:
        return None
    times = None
    for pts in members.values():
        ts = {p.time for p in pts if p.app_consistent and p.multi_vm_sync}
        times = ts if times is None else times & ts
    if not times:
        return None
    t = max(times)
    return {vm: next(p for p in pts if p.time == t and p.app_consistent) for vm, pts in members.items()}
