"""load_plan: every problem at once, each as FILE:LINE:COL: path: message, with pinned text."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from drplan.errors import PlanError
from drplan.plan.loader import load_plan, load_plan_text
from drplan.plan.validate import Problem

FIXTURES = Path(__file__).parent / "fixtures" / "invalid"
CASES = sorted(p.stem for p in FIXTURES.glob("*.yaml"))


def problems_of(text: str, name: str = "plan.yaml") -> list[str]:
    with pytest.raises(PlanError) as info:
        load_plan_text(text, name)
    return list(info.value.problems)


@pytest.mark.parametrize("case", CASES)
def test_invalid_fixture_reports_exactly_the_pinned_problems(case):
    source = FIXTURES / f"{case}.yaml"
    expected = (FIXTURES / f"{case}.expected").read_text().splitlines()
    assert problems_of(source.read_text(), source.name) == expected


def test_every_fixture_has_its_expectation():
    assert {p.stem for p in FIXTURES.glob("*.expected")} == set(CASES)


def test_unknown_reference_suggests_the_close_name_with_position():
    # the example from the design document
    assert (
        "unknown-dependency.yaml:7:67: vms[1].depends_on[0]: unknown VM, group or hook 'ap-01' "
        "(did you mean 'app-01'?)" in (FIXTURES / "unknown-dependency.expected").read_text()
    )


@pytest.mark.parametrize("case", ["literal-secret", "yaml-duplicate-key"])
def test_a_literal_secret_is_never_echoed(case):
    problems = problems_of((FIXTURES / f"{case}.yaml").read_text())
    assert problems
    assert not any("hunter2" in p for p in problems)


def test_literal_secret_message_names_the_fix():
    [problem] = problems_of((FIXTURES / "literal-secret.yaml").read_text())
    assert problem.endswith(
        "vcenter.password: a literal secret is not allowed here; "
        "reference it: {env: VAR} or {prefect_secret: BLOCK}"
    )


def test_schema_and_cross_reference_problems_come_together_in_document_order():
    problems = problems_of((FIXTURES / "many-problems.yaml").read_text())
    kinds = [p.split(": ", 2)[2] for p in problems]
    assert [k.split(":")[0].split(" ")[0] for k in kinds] == ["dependency", "invalid", "unknown"]
    lines = [p.line for p in problems]
    assert lines == sorted(lines)


def test_problems_carry_their_parts_for_machines():
    [problem] = problems_of((FIXTURES / "unknown-master-target.yaml").read_text(), "x.yaml")
    assert isinstance(problem, Problem)
    assert problem.to_dict() == {
        "file": "x.yaml",
        "line": 6,
        "col": 46,
        "path": "vms[0].master_target",
        "message": "unknown master target 'mt-lnux' (did you mean 'mt-lnx'?); "
        "declare it under master_targets",
    }
    assert pickle.loads(pickle.dumps(problem)).to_dict() == problem.to_dict()


def test_missing_file_is_a_plan_error_without_position(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PlanError) as info:
        load_plan(missing)
    assert info.value.problems == [f"{missing}: cannot read the plan: no such file"]


def test_a_directory_is_not_a_plan(tmp_path):
    with pytest.raises(PlanError) as info:
        load_plan(tmp_path)
    assert info.value.problems == [f"{tmp_path}: cannot read the plan: it is a directory"]


def test_load_plan_reads_files_and_reports_their_path(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text((FIXTURES / "self-dependency.yaml").read_text())
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert info.value.problems[0].startswith(f"{path}:6:67: vms[0].depends_on[0]: ")


def test_a_valid_plan_loads_with_defaults_applied():
    plan = load_plan_text(
        "name: ok\nazure: {subscription_id: s, resource_group: r, vault: v}\n"
        "vcenter: {host: h, username: u, password: {env: PW}}\n"
        "master_targets: [{name: mt, os: linux}]\n"
        "vms: [{name: a, os: linux, master_target: mt, max_data_loss: 1h30m}]\n"
    )
    assert plan.vms[0].max_data_loss == 5400.0
    assert plan.defaults.group_recovery_point == "common-app-consistent"
    assert plan.defaults.recovery_point == "latest"


def test_hook_union_tag_is_not_part_of_the_path():
    problems = problems_of(
        "name: t\nazure: {subscription_id: s, resource_group: r, vault: v}\n"
        "vcenter: {host: h, username: u, password: {env: PW}}\n"
        "master_targets: [{name: mt, os: linux}]\n"
        "vms: [{name: a, os: linux, master_target: mt}]\n"
        "hooks:\n  - {name: h, kind: shell, command: x, timout: 5m}\n"
    )
    assert problems == ["plan.yaml:7:40: hooks[0].timout: unknown field 'timout' (did you mean 'timeout'?)"]


def test_a_master_target_with_a_bad_os_is_not_also_unknown_to_its_vms():
    problems = problems_of(
        "name: t\nazure: {subscription_id: s, resource_group: r, vault: v}\n"
        "vcenter: {host: h, username: u, password: {env: PW}}\n"
        "master_targets: [{name: mt, os: linx}]\n"
        "vms: [{name: a, os: linux, master_target: mt}]\n"
    )
    assert problems == [
        "plan.yaml:4:33: master_targets[0].os: invalid value 'linx': expected 'windows' or 'linux' "
        "(did you mean 'linux'?)"
    ]
