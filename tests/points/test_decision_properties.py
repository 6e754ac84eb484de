"""Property tests of the point decision (pure): whatever the point streams (points appear and expire) and
whenever a unit fails back, the point sent is the newest one satisfying its policy at that moment, and a
replication group's members go to one point time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drplan.errors import RecoveryPointError
from drplan.observed import RecoveryPoint
from drplan.plan.schema import RecoveryPointPolicy
from drplan.recovery.points import CUSTOM, LATEST_TAG, decide

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class _Vm:
    name: str


@dataclass(frozen=True)
class _Unit:
    name: str
    kind: str
    vms: tuple[_Vm, ...]
    policy: RecoveryPointPolicy | None
    max_data_loss: float | None = None


@st.composite
def streams(draw, vms: tuple[str, ...]):
    """Per VM, points made every few minutes (some app-consistent; a group's shared ones multi-VM sync)."""
    horizon = draw(st.integers(60, 600))  # minutes of history
    shared = sorted(draw(st.sets(st.integers(0, horizon), max_size=8)))  # multi-VM sync times (groups)
    out = {}
    for vm in vms:
        own = draw(st.sets(st.integers(0, horizon), min_size=1, max_size=20))
        app = draw(st.sets(st.sampled_from(sorted(own)), max_size=5))
        points = [
            RecoveryPoint(f"{vm}/{m}", T0 + timedelta(minutes=m), m in app, False)
            for m in sorted(own - set(shared))
        ]
        points += [RecoveryPoint(f"{vm}/{m}", T0 + timedelta(minutes=m), True, len(vms) > 1) for m in shared]
        out[vm] = points
    return horizon, out


def _visible(points, now: datetime, retention: timedelta):
    """What ASR lists at ``now``: points already made and not yet expired."""
    return [p for p in points if now - retention <= p.time <= now]


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    policy=st.sampled_from([RecoveryPointPolicy.latest, RecoveryPointPolicy.latest_app_consistent]),
)
def test_a_standalone_vm_gets_the_newest_point_its_policy_allows_at_the_moment_of_the_write(data, policy):
    horizon, stream = data.draw(streams(("vm",)))
    now = T0 + timedelta(minutes=data.draw(st.integers(0, horizon + 120)))
    retention = timedelta(minutes=data.draw(st.integers(30, 600)))
    visible = {"vm": _visible(stream["vm"], now, retention)}
    unit = _Unit("vm", "vm", (_Vm("vm"),), policy)
    wanted = [p for p in visible["vm"] if policy is RecoveryPointPolicy.latest or p.app_consistent]
    if not wanted:
        with pytest.raises(RecoveryPointError):
            decide(unit, visible, now=now)
        return
    decision = decide(unit, visible, now=now)
    chosen = decision.choices["vm"].point
    assert chosen.time == max(p.time for p in wanted) and chosen in visible["vm"]  # never an expired point
    assert decision.asr_type == CUSTOM and decision.age("vm") == now - chosen.time


@settings(max_examples=150, deadline=None)
@given(data=st.data(), by_plan=st.booleans(), limit=st.one_of(st.none(), st.integers(10, 300)))
def test_a_group_goes_to_one_point_time_the_newest_all_members_share_and_the_guard_holds(
    data, by_plan, limit
):
    vms = ("a", "b", "c")
    horizon, stream = data.draw(streams(vms))
    now = T0 + timedelta(minutes=data.draw(st.integers(0, horizon + 60)))
    visible = {vm: _visible(points, now, timedelta(hours=24)) for vm, points in stream.items()}
    unit = _Unit(
        "g",
        "group",
        tuple(_Vm(v) for v in vms),
        RecoveryPointPolicy.common_app_consistent,
        limit and limit * 60,
    )
    common = set.intersection(
        *({p.time for p in pts if p.app_consistent and p.multi_vm_sync} for pts in visible.values())
    )
    too_old = bool(common) and limit is not None and now - max(common) > timedelta(minutes=limit)
    if not common or too_old:
        with pytest.raises(RecoveryPointError, match="group g"):
            decide(unit, visible, now=now, by_recovery_plan=by_plan)
        return
    decision = decide(unit, visible, now=now, by_recovery_plan=by_plan)
    times = {c.point.time for c in decision.choices.values()}
    assert times == {max(common)}  # one point time for every member: the group is never split
    assert decision.asr_type == (LATEST_TAG if by_plan else CUSTOM)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_resumed_group_is_held_to_its_first_members_point_time_or_refused(data):
    vms = ("a", "b")
    horizon, stream = data.draw(streams(vms))
    pinned = T0 + timedelta(minutes=data.draw(st.integers(0, horizon)))
    unit = _Unit("g", "group", tuple(_Vm(v) for v in vms), RecoveryPointPolicy.common_app_consistent)
    remaining = {"b": stream["b"]}
    now = T0 + timedelta(minutes=horizon + 30)
    if not any(p.time == pinned for p in stream["b"]):
        with pytest.raises(RecoveryPointError, match="VM b: no point at"):
            decide(unit, remaining, now=now, pinned_to=pinned)
        return
    decision = decide(unit, remaining, now=now, pinned_to=pinned)
    assert decision.choices["b"].point.time == pinned and decision.pinned_to == pinned
