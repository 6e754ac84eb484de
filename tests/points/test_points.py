"""Recovery-point policy: examples pinning the messages, and hypothesis properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drplan.errors import RecoveryPointError
from drplan.observed import RecoveryPoint
from drplan.plan.schema import RecoveryPointPolicy as P
from drplan.recovery.points import check_all_have_points, choose_for_unit, choose_points, point_checks

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=2)


def rp(vm: str, minutes: int, *, app: bool = False, sync: bool = False) -> RecoveryPoint:
    return RecoveryPoint(
        f"{vm}/rp-{minutes}-{int(app)}{int(sync)}", T0 + timedelta(minutes=minutes), app, sync
    )


# --- examples -------------------------------------------------------------------------------------------


def test_latest_picks_each_vms_newest_point_even_in_a_group():
    points = {"db": [rp("db", 0, app=True, sync=True), rp("db", 7)], "web": [rp("web", 3)]}
    got = choose_for_unit(P.latest, points, now=NOW, unit="g")
    assert got["db"].point.time == T0 + timedelta(minutes=7)
    assert got["web"].point.time == T0 + timedelta(minutes=3)
    assert got["db"].data_loss == timedelta(0)


def test_latest_app_consistent_reports_the_data_loss_window():
    points = {"app": [rp("app", 0, app=True), rp("app", 10), rp("app", 15)]}
    got = choose_for_unit(P.latest_app_consistent, points, now=NOW)["app"]
    assert got.point.app_consistent and got.point.time == T0
    assert got.data_loss == timedelta(minutes=15)
    assert got.to_dict()["data_loss_seconds"] == 900.0
    assert "app-consistent" in got.reason


def test_common_point_is_the_newest_time_every_member_shares():
    points = {
        "a": [rp("a", 0, app=True, sync=True), rp("a", 30, app=True, sync=True), rp("a", 45)],
        "b": [rp("b", 0, app=True, sync=True), rp("b", 30, app=True, sync=True), rp("b", 40, app=True)],
        "c": [
            rp("c", 0, app=True, sync=True),
            rp("c", 30, app=True, sync=True),
            rp("c", 60, app=True, sync=True),
        ],
    }
    got = choose_for_unit(P.common_app_consistent, points, now=NOW, unit="erp")
    assert {c.point.time for c in got.values()} == {T0 + timedelta(minutes=30)}
    assert {vm: c.point.id for vm, c in got.items()} == {vm: f"{vm}/rp-30-11" for vm in "abc"}
    assert got["c"].data_loss == timedelta(minutes=30)
    assert "group erp" in got["a"].reason


def test_no_point_at_all_names_the_vm():
    with pytest.raises(RecoveryPointError, match=r"^cannot fail back VM web: it has no recovery point yet$"):
        choose_for_unit(P.latest, {"web": []}, now=NOW)


def test_no_common_point_names_each_member_and_its_newest_app_consistent_time():
    points = {
        "a": [rp("a", 0, app=True, sync=True)],
        "b": [rp("b", 5, app=True, sync=True), rp("b", 9, app=True)],
    }
    with pytest.raises(RecoveryPointError) as err:
        choose_for_unit(P.common_app_consistent, points, now=NOW, unit="erp")
    text = str(err.value)
    assert "group erp" in text
    assert "VM a: newest app-consistent point 2025-03-01T12:00:00Z" in text
    assert "VM b: newest app-consistent point 2025-03-01T12:09:00Z" in text


def test_max_data_loss_guard_names_vm_age_and_limit():
    points = {"app": [rp("app", 0)]}
    with pytest.raises(RecoveryPointError) as err:
        choose_for_unit(P.latest, points, now=NOW, max_data_loss=3600)
    assert str(err.value).startswith("cannot fail back VM app:")
    assert "2h old" in str(err.value) and "max_data_loss 1h" in str(err.value)
    assert choose_for_unit(P.latest, points, now=NOW, max_data_loss=7200)["app"].point.time == T0


def test_plan_rule_lists_every_vm_without_points():
    points = {"a": [rp("a", 0)], "b": [], "c": []}
    with pytest.raises(RecoveryPointError) as err:
        check_all_have_points(["a", "b", "c", "d"], points)
    lines = str(err.value).splitlines()
    assert lines[1:] == [f"cannot fail back VM {vm}: it has no recovery point yet" for vm in "bcd"]
    check_all_have_points(["a"], points)
    assert [c.ok for c in point_checks(["a", "b"], points)] == [True, False]


def test_choose_points_over_units_skips_hooks_and_collects_errors():
    vm = lambda n: SimpleNamespace(name=n)  # noqa: E731
    units = [
        SimpleNamespace(name="web", kind="vm", vms=(vm("web"),), policy=P.latest, max_data_loss=None),
        SimpleNamespace(
            name="erp",
            kind="group",
            vms=(vm("a"), vm("b")),
            policy=P.common_app_consistent,
            max_data_loss=None,
        ),
        SimpleNamespace(name="ok", kind="hook", vms=(), policy=None, max_data_loss=None),
    ]
    points = {
        "web": [rp("web", 1)],
        "a": [rp("a", 0, app=True, sync=True)],
        "b": [rp("b", 1, app=True, sync=True)],
    }
    errors: dict[str, str] = {}
    got = choose_points(units, points, now=NOW, errors=errors)
    assert list(got) == ["web"] and list(errors) == ["erp"]
    with pytest.raises(RecoveryPointError, match="group erp"):
        choose_points(units, points, now=NOW)


# --- properties -----------------------------------------------------------------------------------------

point_lists = st.lists(st.tuples(st.integers(0, 40), st.booleans(), st.booleans()), max_size=8)


def build(vm: str, raw) -> list[RecoveryPoint]:
    return [rp(vm, m * 5, app=app, sync=app and sync) for m, app, sync in raw]


estates = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), point_lists, min_size=1, max_size=4).map(
    lambda d: {vm: build(vm, raw) for vm, raw in d.items()}
)


def common_times(points):
    sets = [{p.time for p in pts if p.app_consistent and p.multi_vm_sync} for pts in points.values()]
    return set.intersection(*sets)


@settings(max_examples=300)
@given(estates)
def test_property_latest_picks_each_maximum(points):
    if any(not pts for pts in points.values()):
        with pytest.raises(RecoveryPointError):
            choose_for_unit(P.latest, points, now=NOW)
        return
    got = choose_for_unit(P.latest, points, now=NOW)
    for vm, pts in points.items():
        assert got[vm].point in pts
        assert got[vm].point.time == max(p.time for p in pts)
        assert got[vm].data_loss == timedelta(0)


@settings(max_examples=300)
@given(estates)
def test_property_latest_app_consistent(points):
    valid = all(any(p.app_consistent for p in pts) for pts in points.values())
    if not valid:
        with pytest.raises(RecoveryPointError):
            choose_for_unit(P.latest_app_consistent, points, now=NOW)
        return
    got = choose_for_unit(P.latest_app_consistent, points, now=NOW)
    for vm, pts in points.items():
        assert got[vm].point.app_consistent
        assert got[vm].point.time == max(p.time for p in pts if p.app_consistent)
        assert got[vm].data_loss >= timedelta(0)


@settings(max_examples=500)
@given(estates.filter(lambda d: len(d) >= 2))
def test_property_group_common_point(points):
    valid = all(points.values()) and bool(common_times(points))
    if not valid:
        with pytest.raises(RecoveryPointError):
            choose_for_unit(P.common_app_consistent, points, now=NOW, unit="g")
        return
    got = choose_for_unit(P.common_app_consistent, points, now=NOW, unit="g")
    times = {c.point.time for c in got.values()}
    assert len(times) == 1
    (when,) = times
    assert all(c.point.app_consistent and c.point.multi_vm_sync for c in got.values())
    assert all(got[vm].point in pts for vm, pts in points.items())
    assert not any(t > when for t in common_times(points))  # no newer common point exists
    for vm, c in got.items():
        assert c.data_loss == max(p.time for p in points[vm]) - when >= timedelta(0)


@settings(max_examples=300)
@given(estates, st.sampled_from(list(P)), st.integers(0, 400))
def test_property_guard_refuses_exactly_points_older_than_the_limit(points, policy, limit_minutes):
    try:
        unguarded = choose_for_unit(policy, points, now=NOW)
    except RecoveryPointError:
        with pytest.raises(RecoveryPointError):
            choose_for_unit(policy, points, now=NOW, max_data_loss=limit_minutes * 60)
        return
    too_old = any(NOW - c.point.time > timedelta(minutes=limit_minutes) for c in unguarded.values())
    if too_old:
        with pytest.raises(RecoveryPointError, match="max_data_loss"):
            choose_for_unit(policy, points, now=NOW, max_data_loss=limit_minutes * 60)
    else:
        assert choose_for_unit(policy, points, now=NOW, max_data_loss=limit_minutes * 60) == unguarded
