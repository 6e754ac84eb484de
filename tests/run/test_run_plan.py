"""The run plan (pure): on random plans, every step waits for exactly what the plan graph says, gates wait
for every sink, per-unit stages follow their gate, final hooks follow every stage; nothing is left out."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.synth import Spec, synth_plan_data
from drplan.drill.kind import DRILL
from drplan.failback.kind import FAILBACK
from drplan.plan.graph import compile_plan
from drplan.plan.schema import CommitPolicy, Plan
from drplan.reprotect_to_onprem.kind import REPROTECT_TO_ONPREM
from drplan.run.context import RunInputs
from drplan.run.run_plan import build_run_plan, effective_predecessors, runs_in

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _graph(seed: int, vms: int, hooks: int):
    return compile_plan(Plan.model_validate(synth_plan_data(Spec(vms=vms, hooks=hooks, seed=seed))))


@SETTINGS
@given(
    seed=st.integers(0, 10_000),
    vms=st.integers(1, 40),
    hooks=st.integers(0, 6),
    kind=st.sampled_from([FAILBACK, DRILL, REPROTECT_TO_ONPREM]),
    policy=st.sampled_from(list(CommitPolicy)),
)
def test_every_step_waits_for_its_graph_predecessors_and_only_runs_after_them(seed, vms, hooks, kind, policy):
    graph = _graph(seed, vms, hooks)
    shape = kind.shape(RunInputs(plan=None, graph=graph, kind=kind.name, commit_policy=policy))  # type: ignore[arg-type]
    plan = build_run_plan(graph, shape)
    keys = plan.keys()
    assert len(keys) == len(set(keys)), "a step is planned twice"
    position = {k: i for i, k in enumerate(keys)}
    for step in plan.steps:  # submission order is a topological order of the step graph
        assert all(position[u] < position[step.key] for u in step.upstream), step
    units = [n for n in graph.order if graph.units[n].kind != "hook"]
    first = shape.unit_steps[0]
    for node in graph.order:
        if not runs_in(graph, node, kind.name):
            continue
        kind_of_node = shape.hook_step if graph.units[node].kind == "hook" else first
        ups = dict((s.key, s.upstream) for s in plan.steps)[(kind_of_node, node)]
        expected = {p for p in effective_predecessors(graph, node, kind.name)}
        assert {n for _, n in ups} == expected, node  # exactly its dependencies, no wave barrier
    for stage in shape.stages:
        if stage.per_unit:
            assert {n for k, n in keys if k == stage.kind} == set(units)
    if kind is FAILBACK and policy == CommitPolicy.never:
        assert {k for k, _ in keys} <= {"failback", "verify", "hook"}


def test_drill_after_cleanup_hooks_wait_for_every_cleanup():
    graph = _graph(3, 12, 0)
    plan = build_run_plan(graph, DRILL.shape(RunInputs(plan=None, graph=graph, kind="drill")))  # type: ignore[arg-type]
    cleanups = {s.key for s in plan.steps if s.kind == "drill-cleanup"}
    gate = next(s for s in plan.steps if s.kind == "drill-complete")
    assert len(cleanups) == len([u for u in graph.units.values() if u.kind != "hook"])
    assert all(s.upstream == (gate.key,) for s in plan.steps if s.kind == "drill-cleanup")
    assert plan.capped == frozenset({"drill-cleanup"})
