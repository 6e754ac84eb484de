"""The plan reader (libyaml events -> positioned dicts and lists) reads every document exactly as
ruamel.yaml's round-trip loader did: same values, same types, same line:column for every path."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from benchmarks.synth import Spec, synth_plan_yaml
from drplan.errors import PlanError
from drplan.plan.loader import _Locator, _parse_yaml, load_plan_text

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "invalid"

TRICKY = """\
# comment
---
plain: value
quoted: "double"
single: 'single'
words: [no, on, yes, off, y, n, True, FALSE, ~, null, Null, ""]
numbers: [1_000, 0o17, 017, 0x1F, -0b101, +12, 1e3, 1.5, 1., .5, .inf, -.inf, 1:30, 12abc]
dates: [2024-01-02, 2024-01-02 10:11:12]
tagged: [!!int "12", !!bool yes, !!float 1, ! 12]
empty:
block: |
  line one
  line two
folded: >-
  folded
  text
defaults: &defaults
  os: linux
  master_target: mt
vms:
  - <<: *defaults
    name: a
  - {<<: *defaults, name: b, os: windows}
  - name: c
    tags: *defaults
nested:
- - 1
  - [2, {x: 3}]
-   key: &anchor value
    again: *anchor
"<<": not a merge
...
"""


def ruamel_position(root, path, key=False):
    """The position the loader reported when it used ruamel.yaml's round-trip marks."""
    node = root
    pos = (node.lc.line, node.lc.col) if isinstance(node, CommentedMap | CommentedSeq) else (0, 0)
    for i, part in enumerate(path):
        try:
            if isinstance(node, CommentedMap) and isinstance(part, str) and part in node:
                pos = node.lc.key(part) if key and i == len(path) - 1 else node.lc.value(part)
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                pos = node.lc.item(part)
            else:
                return None
            node = node[part]
        except (KeyError, IndexError, AttributeError):
            return None
    return pos[0] + 1, pos[1] + 1


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, (*prefix, i))


def plain(node):
    """A comparable form: containers as dict/list, scalars with their type family."""
    if isinstance(node, dict):
        return {plain(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, float) and math.isnan(node):
        return ("nan",)
    for family in (bool, int, float, str):
        if isinstance(node, family):
            return family, family(node)
    return node


def assert_reads_like_ruamel(text: str):
    ours = _parse_yaml(text, "p.yaml")
    theirs = YAML(typ="rt").load(text)
    assert plain(ours) == plain(theirs)
    locate = _Locator(ours)
    for path in paths(theirs):
        for key in (False, True):
            expected = ruamel_position(theirs, path, key)
            if not key and expected and _empty_value(text, path, theirs):
                # an empty value (``key:`` and nothing): libyaml places it right after the colon,
                # ruamel.yaml at the next token (often the next key, lines below)
                assert locate(path)[0] == locate(path, key=True)[0], path
                continue
            assert locate(path, key=key) == expected, (path, key)


def _empty_value(text, path, root):
    """Whether ``path`` is a mapping value written as nothing at all."""
    if not path or not isinstance(path[-1], str):
        return False
    node = root
    for part in path:
        node = node[part]
    line, col = ruamel_position(root, path, key=True)
    rest = text.splitlines()[line - 1][col - 1 :].split(":", 1)[1].split("#")[0].split(",")[0]
    return node is None and not rest.strip(" }")


DOCUMENTS = sorted(ROOT.glob("plans/**/*.yaml")) + sorted(
    p for p in FIXTURES.glob("*.yaml") if not p.stem.startswith("yaml-")
)


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_plans_and_fixtures_read_like_ruamel(path):
    assert_reads_like_ruamel(path.read_text())


def test_tricky_scalars_anchors_merges_and_styles_read_like_ruamel():
    assert_reads_like_ruamel(TRICKY)


def test_a_synthetic_plan_reads_like_ruamel():
    assert_reads_like_ruamel(synth_plan_yaml(Spec(vms=100, hooks=4, seed=3)))


TOKENS = ["a", "no", "on", "7", "0o17", "017", "1_0", "1.5", ".inf", "~", "", "True", "x y", "2024-01-02"]
KEYS = st.sampled_from(["name", "os", "no", "1", "a b"])
TREES = st.recursive(
    st.sampled_from(TOKENS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=12,
)


def render(node, indent=0) -> str:
    """Block YAML with plain scalars; collections deeper than two levels in flow style."""
    pad = " " * indent
    lines = []
    for k, v in node.items() if isinstance(node, dict) else enumerate(node):
        head = f"{pad}{k}:" if isinstance(node, dict) else f"{pad}-"
        if isinstance(v, dict | list) and v and indent < 4:
            lines.append(f"{head}\n{render(v, indent + 2)}")
        else:
            lines.append(f"{head} {flow(v)}".rstrip())
    return "\n".join(lines)


def flow(node) -> str:
    if isinstance(node, dict):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in node.items()) + "}"
    if isinstance(node, list):
        return "[" + ", ".join(flow(v) or "null" for v in node) + "]"
    return node


@settings(max_examples=150, deadline=None)
@given(TREES.filter(lambda t: isinstance(t, dict) and t))
def test_random_documents_read_like_ruamel(tree):
    assert_reads_like_ruamel(render(tree) + "\n")


# -- what a plan author sees ------------------------------------------------------------------------

BASE = (
    "name: t\nazure: {subscription_id: s, resource_group: r, vault: v}\n"
    "vcenter: {host: h, username: u, password: {env: PW}}\n"
    "master_targets: [{name: mt, os: linux}]\n"
)


def problems_of(text: str) -> list[str]:
    with pytest.raises(PlanError) as info:
        load_plan_text(text, "p.yaml")
    return list(info.value.problems)


def test_yaml_1_1_words_stay_names():
    plan = load_plan_text(
        BASE + "vms:\n  - {name: no, os: linux, master_target: mt}\n"
        "  - {name: on, os: linux, master_target: mt, depends_on: [no]}\n"
    )
    assert [vm.name for vm in plan.vms] == ["no", "on"]


def test_an_explicit_str_tag_makes_a_number_a_name():
    # (ruamel.yaml's round-trip loader returned a TaggedScalar here, which no field accepted)
    plan = load_plan_text(BASE + "vms: [{name: !!str 42, os: linux, master_target: mt}]\n")
    assert plan.vms[0].name == "42"


def test_merge_keys_share_settings_and_problems_in_them_point_at_the_item():
    plan = load_plan_text(
        BASE + "vms:\n  - &linux {name: a, os: linux, master_target: mt}\n  - {<<: *linux, name: b}\n"
    )
    assert [(vm.name, vm.os) for vm in plan.vms] == [("a", "linux"), ("b", "linux")]
    assert problems_of(
        BASE + "vms:\n  - &bad {name: a, os: plan9, master_target: mt}\n  - {<<: *bad, name: b}\n"
    ) == [
        "p.yaml:6:24: vms[0].os: invalid value 'plan9': expected 'windows' or 'linux'",
        "p.yaml:7:5: vms[1].os: invalid value 'plan9': expected 'windows' or 'linux'",
    ]


def test_an_empty_value_is_reported_on_its_key_line():
    text = BASE.replace("vcenter: {host: h, username: u, password: {env: PW}}", "vcenter:")
    assert problems_of(text + "vms: [{name: a, os: linux, master_target: mt}]\n") == [
        "p.yaml:3:9: vcenter: expected a mapping, got a null"
    ]


def test_a_duplicate_key_is_reported_at_its_second_occurrence():
    assert problems_of(BASE + "vms:\n  - {name: a, os: linux, name: b}\n") == [
        "p.yaml:6:26: invalid YAML: duplicate key 'name'"
    ]


def test_a_syntax_error_after_a_duplicate_key_is_the_one_reported():
    assert problems_of("name: a\nname: b\nvms: [\n") == [
        "p.yaml:4:1: invalid YAML: expected the node content, but found '<stream end>' "
        "(while parsing a flow node)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: *nope\n", "p.yaml:1:7: invalid YAML: found undefined alias 'nope'"),
        (
            "name: a\n---\nname: b\n",
            "p.yaml:2:1: invalid YAML: but found another document "
            "(expected a single document in the stream started at line 1)",
        ),
        ("description: !vault abc\n", "p.yaml:1:14: invalid YAML: tag '!vault' is not supported"),
        ("description: !!binary aGk=\n", "p.yaml:1:14: invalid YAML: tag '!!binary' is not supported"),
        ("description: !!timestamp nope\n", "p.yaml:1:14: invalid YAML: 'nope' is not a valid timestamp"),
        (
            "description: 2024-13-45\n",
            "p.yaml:1:14: invalid YAML: '2024-13-45' is not a valid number or date: month must be in 1..12",
        ),
        ("port: !!int ''\n", "p.yaml:1:7: invalid YAML: '' is not a valid int"),
        ("port: !!null x\n", "p.yaml:1:7: invalid YAML: 'x' is not a valid null"),
        (
            "a: &a [b, *a]\n",
            "p.yaml:1:11: invalid YAML: alias 'a' refers to a node that contains it; "
            "a plan cannot be recursive",
        ),
        ("name: !!int x\n", "p.yaml:1:7: invalid YAML: 'x' is not a valid int"),
        ("? [a]\n: b\n", "p.yaml:1:3: invalid YAML: a mapping key must be a scalar"),
        (
            "vms:\n  - <<: 3\n",
            "p.yaml:2:9: invalid YAML: a merge key (<<) takes a mapping or a list of mappings",
        ),
        (
            "name: a\ndescription: b\x07\n",
            "p.yaml:2:15: invalid YAML: unacceptable character #x0007: special characters are not allowed",
        ),
        (
            "name: a\n\tvms: []\n",
            "p.yaml:2:1: invalid YAML: "
            "found character '\\t' that cannot start any token (while scanning for the next token)",
        ),
    ],
)
def test_documents_the_reader_refuses_are_positioned_problems(text, expected):
    assert problems_of(text) == [expected]
