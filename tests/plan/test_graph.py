"""compile_plan: units, edges, order, generations, critical path, unit settings."""

from __future__ import annotations

import json
import random

import networkx as nx
import pytest

from drplan.errors import PlanError
from drplan.plan.graph import compile_plan, load_and_compile
from drplan.plan.schema import Plan

from .helpers import plan_data, vm

PLANS = __import__("pathlib").Path(__file__).resolve().parents[2] / "plans"


@pytest.fixture(scope="module")
def three_tier():
    return load_and_compile(PLANS / "three-tier.yaml")


def test_three_tier_order_and_generations(three_tier):
    _, g = three_tier
    assert g.order == ("sql", "app-01", "app-02", "web-01", "web-02")
    assert g.generations == (("sql",), ("app-01", "app-02"), ("web-01", "web-02"))
    assert g.critical_path == (("sql", "app-01", "web-01"), 3 * (600 + 180 + 60))
    assert g.estimated_rto == 2520


def test_group_is_one_unit_with_its_members(three_tier):
    _, g = three_tier
    sql = g.units["sql"]
    assert sql.kind == "group"
    assert sql.vm_names == ("sql-01", "sql-02")
    assert sql.policy == "common-app-consistent"
    assert sql.max_data_loss == 7200  # plans/three-tier.yaml: 2h
    assert sql.failback_mode == "per-item"
    assert sql.verify_timeout == 600
    assert g.unit_of("sql-02") is sql
    assert "sql-01" not in g.units


def test_standalone_vm_defaults(three_tier):
    _, g = three_tier
    web = g.units["web-01"]
    assert (web.kind, web.policy, web.max_data_loss, web.hook) == ("vm", "latest", None, None)
    assert web.verify_timeouts == {"web-01": 300}
    assert web.depends_on == ("app-01", "app-02")


def test_graph_navigation(three_tier):
    _, g = three_tier
    assert g.predecessors("web-02") == ("app-01", "app-02")
    assert g.successors("sql") == ("app-01", "app-02")
    assert g.descendants("app-02") == frozenset({"web-01", "web-02"})
    assert g.descendants("sql") == frozenset({"app-01", "app-02", "web-01", "web-02"})


def test_digraph_is_read_only(three_tier):
    _, g = three_tier
    with pytest.raises(nx.NetworkXError):
        g.digraph.add_edge("web-01", "sql")
    assert g.digraph.nodes["sql"] == {"kind": "group", "estimate": 840.0}


def test_to_dict_is_json(three_tier):
    _, g = three_tier
    data = json.loads(json.dumps(g.to_dict()))
    assert data["order"][0] == "sql"
    assert data["critical_path"] == {"units": ["sql", "app-01", "web-01"], "seconds": 2520.0}
    assert data["units"][0]["vms"] == ["sql-01", "sql-02"]


def test_member_dependencies_merge_into_the_group_and_references_to_members_resolve_to_it():
    data = plan_data(
        vms=[vm("dc"), vm("db-1", "dc", os="windows"), vm("db-2", os="windows"), vm("app", "db-2"), vm("x")],
        groups=[{"name": "db", "members": ["db-1", "db-2"], "depends_on": ["x"]}],
    )
    g = compile_plan(Plan.model_validate(data))
    assert g.units["db"].depends_on == ("dc", "x")
    assert g.units["app"].depends_on == ("db",)
    assert set(g.digraph.edges) == {("dc", "db"), ("x", "db"), ("db", "app")}


def test_estimates_from_vm_then_defaults_then_builtins_group_takes_slowest_member():
    data = plan_data(
        vms=[
            vm("a", durations={"failback": "20m"}),
            vm("b"),
            vm("c", durations={"boot": 30, "verify": 0}),
        ],
        groups=[{"name": "g", "members": ["a", "b"]}],
        defaults={"durations": {"boot": "5m"}},
    )
    g = compile_plan(Plan.model_validate(data))
    assert g.units["g"].estimate == 1200 + 300 + 60
    assert g.units["c"].estimate == 600 + 30 + 0


def test_hook_estimates_and_policies():
    data = plan_data(
        vms=[vm("a", recovery_point="latest-app-consistent", max_data_loss="10m"), vm("b")],
        hooks=[
            {"name": "ok", "kind": "approval", "depends_on": ["a"]},
            {"name": "sh", "kind": "shell", "command": "true", "timeout": "30s", "depends_on": ["ok"]},
            {"name": "sh2", "kind": "shell", "command": "true"},
            {"name": "w", "kind": "wait", "duration": "2m", "depends_on": ["sh"]},
        ],
        defaults={"max_data_loss": "1h"},
    )
    g = compile_plan(Plan.model_validate(data))
    assert [g.units[n].estimate for n in ("ok", "sh", "sh2", "w")] == [0, 30, 60, 120]
    assert (g.units["a"].policy, g.units["a"].max_data_loss) == ("latest-app-consistent", 600)
    assert g.units["b"].max_data_loss == 3600
    assert g.units["ok"].policy is None and g.units["ok"].verify_timeout is None
    assert g.critical_path == (("a", "ok", "sh", "w"), 840 + 0 + 30 + 120)


def test_group_failback_mode_defaults_to_the_plan_option():
    data = plan_data(
        vms=[vm("a"), vm("b")],
        groups=[
            {"name": "g1", "members": ["a"]},
            {"name": "g2", "members": ["b"], "failback_mode": "per-item"},
        ],
        failback={"group_failback_mode": "recovery-plan"},
    )
    g = compile_plan(Plan.model_validate(data))
    assert (g.units["g1"].failback_mode, g.units["g2"].failback_mode) == ("recovery-plan", "per-item")


def test_compiling_an_invalid_plan_built_in_python_fails_closed():
    plan = Plan.model_validate(plan_data(vms=[vm("a", "b"), vm("b", "a")]))
    with pytest.raises(PlanError) as info:
        compile_plan(plan)
    assert info.value.problems == ["<plan>: vms[0].depends_on[0]: dependency cycle: a -> b -> a"]


def test_order_does_not_depend_on_declaration_order():
    vms = [vm("d", "b", "c"), vm("b", "a"), vm("c", "a"), vm("a"), vm("e"), vm("f", "e")]
    first = compile_plan(Plan.model_validate(plan_data(vms=vms)))
    for seed in range(5):
        shuffled = vms[:]
        random.Random(seed).shuffle(shuffled)
        g = compile_plan(Plan.model_validate(plan_data(vms=shuffled)))
        assert g.to_dict() == first.to_dict()
    assert first.order == ("a", "b", "c", "d", "e", "f")
