"""Estate model: YAML round trip, generation from a plan, clear errors; recovery points; the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drplan.observed import Phase
from drplan.plan.loader import load_plan
from drplan.sim import Estate, EstateError, SimClock
from drplan.sim.estate import PointGenerator, Vm
from drplan.sim.recovery_points import common_app_point, points_for

from .conftest import small_estate

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def test_yaml_round_trip_keeps_everything():
    est = small_estate()
    est.vm("web-01").recovery_points = []
    again = Estate.from_yaml_text(est.to_yaml())
    assert again.model_dump() == est.model_dump()


def test_sub_second_durations_survive_the_yaml_round_trip():
    """The chaos benchmark writes its estate to YAML: a 0.2 s boot was written as ``0s`` (VMs booted at
    once, while the harness expected 0.2 s, and flagged a commit 0.15 s after the failback as early)."""
    from drplan.sim.estate import VmDurations

    est = small_estate()
    est.vm("web-01").durations = VmDurations(failback=0.437, boot=0.2, commit=5400)
    text = est.to_yaml()
    assert "boot: 0.2s" in text and "commit: 1h30m" in text
    again = Estate.from_yaml_text(text).vm("web-01").durations
    assert (again.failback, again.boot, again.commit) == (0.437, 0.2, 5400.0)


def test_from_plan_takes_names_groups_and_master_targets():
    plan = load_plan(ROOT / "plans/erp-mixed.yaml")
    first = plan.vms[0].name
    est = Estate.from_plan(plan, phases={first: Phase.failed_over_to_azure})
    assert [v.name for v in est.vms] == [v.name for v in plan.vms]
    assert {m.name for m in est.master_targets} == {m.name for m in plan.master_targets}
    for pv in plan.vms:
        v = est.vm(pv.name)
        assert v.vcenter_vm == (pv.vcenter_name or pv.name) and v.master_target == pv.master_target
    for g in plan.replication_groups:
        assert {v.name for v in est.group_members(g.name)} == set(g.members)
    assert est.vm(first).phase == Phase.failed_over_to_azure
    assert all(v.phase == Phase.reprotected_to_onprem for v in est.vms[1:])
    assert est.vault.name == plan.azure.vault
    assert Estate.from_yaml_text(est.to_yaml()).model_dump() == est.model_dump()


def test_invalid_estate_lists_every_problem(tmp_path):
    bad = tmp_path / "estate.yaml"
    bad.write_text("vms:\n  - name: a\n    master_target: nope\n  - name: b\n    os: solaris\n")
    with pytest.raises(EstateError) as err:
        Estate.from_yaml(bad)
    text = "\n".join(err.value.problems)
    assert str(bad) in text and "vms.1.os" in text
    with pytest.raises(EstateError, match="cannot read"):
        Estate.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(EstateError, match="unknown master target 'nope'"):
        Estate.from_yaml_text("vms:\n  - name: a\n    master_target: nope\n")


def test_group_members_share_multi_vm_points_and_standalone_vms_are_jittered():
    gen = PointGenerator(crash_every=300, app_every=3600, retention=6 * 3600)
    a, b = Vm(name="a", replication_group="g"), Vm(name="b", replication_group="g")
    s1, s2 = Vm(name="s1"), Vm(name="s2")
    pts = {v.name: points_for(v, default_generator=gen, clock_start=T0, now=T0) for v in (a, b, s1, s2)}
    assert [p.time for p in pts["a"]] == [p.time for p in pts["b"]]
    assert all(p.multi_vm_sync for p in pts["a"]) and not any(p.multi_vm_sync for p in pts["s1"])
    assert {p.time for p in pts["s1"]} != {p.time for p in pts["s2"]}
    common = common_app_point({"a": pts["a"], "b": pts["b"]})
    assert common["a"].time == common["b"].time and common["a"].app_consistent
    assert common["a"].time == max(p.time for p in pts["a"] if p.app_consistent)


@settings(max_examples=60, deadline=None)
@given(
    crash=st.integers(60, 1800),
    app_mult=st.integers(1, 12),
    hours=st.integers(1, 48),
    name=st.text("abcxyz-0123", min_size=1, max_size=8),
    grouped=st.booleans(),
)
def test_generated_points_stay_in_the_window_and_are_ordered(crash, app_mult, hours, name, grouped):
    gen = PointGenerator(crash_every=crash, app_every=crash * app_mult, retention=hours * 3600)
    vm = Vm(name=name, replication_group="g" if grouped else None)
    pts = points_for(vm, default_generator=gen, clock_start=T0, now=T0)
    times = [p.time for p in pts]
    assert times == sorted(times, reverse=True) and len(set(times)) == len(times)
    assert all(T0 - timedelta(hours=hours) <= t <= T0 for t in times)
    assert any(p.app_consistent for p in pts) or crash * app_mult > hours * 3600 - crash
    assert len(pts) >= hours * 3600 // crash - 1


def test_points_stop_at_failover_and_restart_after_reprotect():
    gen = PointGenerator(crash_every=300, app_every=3600, retention=86400)
    vm = Vm(name="x", replicating_since=T0)
    assert [p.time for p in points_for(vm, default_generator=gen, clock_start=T0, now=T0)] == [T0]
    later = points_for(
        vm,
        default_generator=gen,
        clock_start=T0,
        now=T0 + timedelta(hours=1),
        stopped_at=T0 + timedelta(minutes=30),
    )
    assert max(p.time for p in later) <= T0 + timedelta(minutes=30)


def test_sim_clock_speed_advance_and_sleep():
    clock = SimClock(T0, speed=1000)
    clock.advance(3600)
    assert clock.now() >= T0 + timedelta(hours=1)
    before = clock.monotonic()
    clock.sleep(50)  # 0.05 real seconds
    assert clock.monotonic() >= before + 50
    clock.speed = 1.0  # changing speed never moves time backwards
    assert clock.monotonic() >= before + 50
    with pytest.raises(ValueError):
        clock.advance(-1)
