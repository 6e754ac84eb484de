"""The schedule transforms and the critical-path bounds (pure: no simulator, no Prefect)."""

from __future__ import annotations

import networkx as nx
import pytest

from benchmarks.schedules import SCHEDULES, bound, dependencies, transform
from benchmarks.workload import build_workload
from drplan.plan.graph import compile_plan
from drplan.plan.schema import Plan


@pytest.fixture(scope="module")
def workload_and_graph():
    wl = build_workload(60, seed=3)
    return wl, compile_plan(Plan.model_validate(wl.data))


def _compiled(data):
    return compile_plan(Plan.model_validate(data))


def test_each_schedule_compiles_to_the_same_units_with_its_own_edges(workload_and_graph):
    wl, graph = workload_and_graph
    for schedule in SCHEDULES:
        g = _compiled(transform(wl.data, graph, schedule))
        assert set(g.units) == set(graph.units)
        want = {(u, n) for n, ups in dependencies(graph, schedule).items() for u in ups}
        assert set(g.digraph.edges) == want, schedule


def test_wave_barriers_keep_every_dependency_of_the_plan(workload_and_graph):
    wl, graph = workload_and_graph
    wave = _compiled(transform(wl.data, graph, "wave")).digraph
    for u, v in graph.digraph.edges:
        assert nx.has_path(wave, u, v), f"{u} -> {v} lost"
    assert [set(g) for g in nx.topological_generations(wave)] == [set(g) for g in graph.generations]


def test_sequential_is_one_chain_in_topological_order(workload_and_graph):
    wl, graph = workload_and_graph
    seq = _compiled(transform(wl.data, graph, "sequential")).digraph
    assert nx.is_directed_acyclic_graph(seq)
    assert list(nx.topological_sort(seq)) == list(graph.order)
    assert all(seq.in_degree(n) <= 1 and seq.out_degree(n) <= 1 for n in seq)


def test_bounds_order_graph_wave_sequential(workload_and_graph):
    wl, graph = workload_and_graph
    b = {s: bound(graph, wl.durations, wl.hook_waits, deps=dependencies(graph, s)) for s in SCHEDULES}
    assert b["graph"] <= b["wave"] <= b["sequential"]
    assert b["graph"] == bound(graph, wl.durations, wl.hook_waits)
    # the sequential bound is the sum of every unit's failback+verification plus the longest post-commit part
    assert b["sequential"] >= sum(
        max(wl.durations[v.name]["failback"] + wl.durations[v.name]["boot"] for v in u.vms)
        for u in graph.units.values()
        if u.kind != "hook"
    )
    grid = bound(graph, wl.durations, wl.hook_waits, grid=True)
    assert grid >= b["graph"]


def test_workload_is_seeded_and_unattended():
    a, b = build_workload(30, seed=5), build_workload(30, seed=5)
    assert a.data == b.data and a.durations == b.durations
    assert build_workload(30, seed=6).durations != a.durations
    assert {h["kind"] for h in a.data["hooks"]} <= {"shell", "wait"}
