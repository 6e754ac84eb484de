"""Property tests on random plans: order respects dependencies, injected cycles are found, compile is
deterministic."""

from __future__ import annotations

import random
import re

import networkx as nx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.synth import Spec, synth_plan_data, synth_plan_yaml
from drplan.errors import PlanError
from drplan.plan.graph import compile_plan
from drplan.plan.loader import load_plan_text
from drplan.plan.schema import Plan
from drplan.plan.validate import check_plan

from .helpers import plan_data, vm

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def dags(draw, max_nodes: int = 14):
    """A random DAG over VM names, as {name: [names it depends on]} (deps only on earlier names)."""
    n = draw(st.integers(1, max_nodes))
    names = [f"v{i:02d}" for i in range(n)]
    deps = {}
    for i, name in enumerate(names):
        deps[name] = sorted(draw(st.sets(st.sampled_from(names[:i]), max_size=3))) if i else []
    return deps


@st.composite
def grouped_plans(draw):
    """A random DAG plus some replication groups (members of a group never depend on each other)."""
    deps = draw(dags())
    names = list(deps)
    groups, used = [], set()
    for gi in range(draw(st.integers(0, 3))):
        members = draw(st.sets(st.sampled_from(names), min_size=1, max_size=4))
        members -= used
        # members must not be ordered relative to one another, or merging them would make a cycle
        dag = nx.DiGraph([(d, n) for n, ds in deps.items() for d in ds])
        dag.add_nodes_from(names)
        closure = nx.transitive_closure_dag(dag)
        members = {
            m
            for m in members
            if not any(closure.has_edge(m, o) or closure.has_edge(o, m) for o in members if o != m)
        }
        if members:
            groups.append({"name": f"g{gi}", "members": sorted(members)})
            used |= members
    return deps, groups


def _expected_edges(deps, groups):
    unit = {m: g["name"] for g in groups for m in g["members"]}
    edges = {(unit.get(d, d), unit.get(n, n)) for n, ds in deps.items() for d in ds}
    return {(u, v) for u, v in edges if u != v}


@SETTINGS
@given(grouped_plans())
def test_compiled_order_respects_every_dependency(case):
    deps, groups = case
    plan = Plan.model_validate(plan_data(vms=[vm(n, *ds) for n, ds in deps.items()], groups=groups))
    problems = check_plan(plan)
    if problems:  # merging members may still close a cycle through outside VMs: then it must say so
        assert all("dependency cycle" in p for p in problems)
        return
    g = compile_plan(plan)
    position = {name: i for i, name in enumerate(g.order)}
    edges = _expected_edges(deps, groups)
    assert set(g.digraph.edges) == edges
    for u, v in edges:
        assert position[u] < position[v]
    generation = {n: i for i, gen in enumerate(g.generations) for n in gen}
    for u, v in edges:
        assert generation[u] < generation[v]
    path, seconds = g.critical_path
    assert nx.is_path(g.digraph, list(path))
    assert seconds == sum(g.units[n].estimate for n in path)


@SETTINGS
@given(dags(), st.data())
def test_every_injected_cycle_is_found_and_printed(deps, data):
    graph = nx.DiGraph([(n, d) for n, ds in deps.items() for d in ds])  # n -> d: n depends on d
    graph.add_nodes_from(deps)
    pairs = [(a, b) for a in deps for b in nx.descendants(graph, a)] + [(a, a) for a in deps]
    a, b = data.draw(st.sampled_from(pairs))  # a depends (transitively) on b; now make b depend on a
    deps = {n: list(ds) for n, ds in deps.items()}
    deps[b].append(a)
    text = synth_like_yaml(deps)
    try:
        load_plan_text(text, "p.yaml")
    except PlanError as exc:
        problems = exc.problems
    else:
        raise AssertionError("the injected cycle was not found")
    if a == b:
        assert any(p.endswith(f"'{a}' depends on itself") for p in problems)
        return
    [cycle] = [p for p in problems if "dependency cycle: " in p]
    nodes = cycle.split("dependency cycle: ")[1].split(" -> ")
    assert nodes[0] == nodes[-1] and len(set(nodes)) == len(nodes) - 1
    graph.add_edge(b, a)
    for u, v in zip(nodes, nodes[1:], strict=False):  # each arrow reads "depends on"
        assert graph.has_edge(u, v)
    assert any((u, v) == (b, a) for u, v in zip(nodes, nodes[1:], strict=False))
    # positioned at the depends_on entry of the first node that names the second
    line = int(re.match(r"p\.yaml:(\d+):", cycle).group(1))
    assert f"name: {nodes[0]}," in text.splitlines()[line - 1]


def synth_like_yaml(deps: dict[str, list[str]]) -> str:
    lines = [
        "name: t",
        "azure: {subscription_id: s, resource_group: r, vault: v}",
        "vcenter: {host: h, username: u, password: {env: PW}}",
        "master_targets: [{name: mt, os: linux}]",
        "vms:",
    ]
    for name, ds in deps.items():
        lines.append(f"  - {{name: {name}, os: linux, master_target: mt, depends_on: [{', '.join(ds)}]}}")
    return "\n".join(lines) + "\n"


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(5, 120), st.integers(0, 6))
def test_compile_is_deterministic_and_independent_of_declaration_order(seed, n, hooks):
    spec = Spec(vms=n, hooks=hooks, seed=seed)
    data = synth_plan_data(spec)
    first = compile_plan(Plan.model_validate(data))
    again = compile_plan(Plan.model_validate(synth_plan_data(spec)))
    for key in ("vms", "replication_groups", "hooks"):
        random.Random(seed).shuffle(data[key])
    shuffled = compile_plan(Plan.model_validate(data))
    for other in (again, shuffled):
        assert other.to_dict() == first.to_dict()


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 60))
def test_synthetic_yaml_loads_to_the_same_plan_as_its_data(seed, n):
    spec = Spec(vms=n, hooks=3, seed=seed)
    assert load_plan_text(synth_plan_yaml(spec), "synth.yaml") == Plan.model_validate(synth_plan_data(spec))
