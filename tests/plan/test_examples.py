"""Every plan under plans/ loads, compiles and matches the committed JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from drplan.cli.plan_cmds import schema_text
from drplan.plan.graph import load_and_compile

PLANS = Path(__file__).resolve().parents[2] / "plans"
EXAMPLES = sorted(PLANS.rglob("*.yaml"))


def test_there_are_example_plans():
    assert {p.name for p in EXAMPLES} >= {"three-tier.yaml", "erp-mixed.yaml"}


def test_committed_schema_is_the_generated_one():
    committed = (PLANS / "plan.schema.json").read_text()
    assert committed == schema_text(), "regenerate it: drplan schema -o plans/plan.schema.json"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads_and_compiles(path):
    plan, graph = load_and_compile(path)
    assert graph.order and graph.estimated_rto > 0
    assert len(plan.vms) == sum(len(u.vms) for u in graph.units.values())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_against_the_json_schema_editors_use(path):
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=./plan.schema.json\n")
    schema = json.loads((PLANS / "plan.schema.json").read_text())
    jsonschema.validate(YAML(typ="safe", pure=True).load(text), schema)


def test_three_tier_is_what_the_issue_asks_for():
    plan, graph = load_and_compile(PLANS / "three-tier.yaml")
    sql = graph.units["sql"]
    assert sql.kind == "group" and len(sql.vms) == 2 and {v.os for v in sql.vms} == {"windows"}
    assert graph.predecessors("app-01") == ("sql",) and graph.predecessors("app-02") == ("sql",)
    assert graph.predecessors("web-01") == ("app-01", "app-02")
    assert plan.failback.commit == "approval"
    assert plan.vcenter.password.env == "DRPLAN_VCENTER_PASSWORD"
    assert {m.name: m.os for m in plan.master_targets} == {"mt-win-01": "windows", "mt-lnx-01": "linux"}


def test_erp_mixed_shows_hooks_groups_and_mixed_policies():
    plan, graph = load_and_compile(PLANS / "erp-mixed.yaml")
    kinds = {u.hook.kind for u in graph.units.values() if u.hook}
    assert kinds == {"shell", "wait", "approval"}
    assert sum(1 for u in graph.units.values() if u.kind == "group") == 2
    assert {str(u.policy) for u in graph.units.values() if u.policy} == {
        "latest",
        "latest-app-consistent",
        "common-app-consistent",
    }
    assert len(plan.vms) >= 12


def _properties(node):
    """Every (``Model.field``, property schema) in a JSON Schema, at any depth."""
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            yield f"{node.get('title', '?')}.{name}", prop
        for value in node.values():
            yield from _properties(value)
    elif isinstance(node, list):
        for item in node:
            yield from _properties(item)


def test_every_field_in_the_schema_has_a_description_for_editors():
    from drplan.plan.schema import plan_json_schema

    found = list(_properties(plan_json_schema()))
    assert len(found) > 70
    assert [path for path, prop in found if not prop.get("description")] == []
