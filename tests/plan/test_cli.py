"""drplan validate | graph | plan | schema: exit codes, JSON output, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import drplan.cli.plan_cmds  # noqa: F401  (registers the commands)
from drplan.cli import app
from drplan.cli.plan_cmds import dry_run_report, print_dry_run
from drplan.plan.graph import load_and_compile

ROOT = Path(__file__).resolve().parents[2]
THREE_TIER = str(ROOT / "plans" / "three-tier.yaml")
ERP = str(ROOT / "plans" / "erp-mixed.yaml")
FIXTURES = Path(__file__).parent / "fixtures" / "invalid"


def run(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_validate_ok():
    result = run("validate", THREE_TIER, ERP)
    assert result.exit_code == 0
    assert f"{THREE_TIER}: ok (6 VMs, 5 units, 0 hooks, estimated RTO 42m)" in result.stdout


def test_validate_invalid_exits_2_and_lists_every_problem():
    bad = str(FIXTURES / "unknown-dependency.yaml")
    result = run("validate", THREE_TIER, bad)
    assert result.exit_code == 2
    assert (
        f"{bad}:7:67: vms[1].depends_on[0]: unknown VM, group or hook 'ap-01' (did you mean 'app-01'?)"
        in result.stdout.splitlines()
    )
    assert "2 problems in 1 of 2 plans" in result.stderr


def test_validate_json_lists_problems():
    bad = str(FIXTURES / "os-master-target-mismatch.yaml")
    result = run("validate", "--json", bad)
    assert result.exit_code == 2
    problems = json.loads(result.stdout)
    assert problems[0] == {
        "file": bad,
        "line": 6,
        "col": 48,
        "path": "vms[0].master_target",
        "message": "a windows VM needs a windows master target; 'mt-lnx' is linux",
    }
    assert len(problems) == 2


def test_validate_json_valid_is_an_empty_list():
    result = run("validate", "--json", THREE_TIER)
    assert (result.exit_code, json.loads(result.stdout)) == (0, [])


@pytest.mark.parametrize("args", [("validate", "nope.yaml"), ("plan", "nope.yaml"), ("graph", "nope.yaml")])
def test_missing_file_is_invalid_input(args):
    result = run(*args)
    assert result.exit_code == 2
    assert "nope.yaml: cannot read the plan: no such file" in result.output


def test_invalid_yaml_in_plan_command_is_exit_2_on_stderr():
    result = run("plan", str(FIXTURES / "yaml-syntax.yaml"))
    assert result.exit_code == 2
    assert "yaml-syntax.yaml:4:1: invalid YAML: expected ',' or '}'" in result.stderr
    assert result.stdout == ""


def test_graph_mermaid_is_the_default():
    result = run("graph", THREE_TIER)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "flowchart LR"
    assert '  n0[["sql (sql-01, sql-02)"]]' in lines
    assert "  n0 --> n1" in lines
    assert "  class n0,n1,n3 critical" in lines


def test_graph_dot_and_text():
    dot = run("graph", THREE_TIER, "--format", "dot")
    assert dot.exit_code == 0
    assert dot.stdout.startswith('digraph "three-tier" {')
    assert '  "sql" -> "app-01";' in dot.stdout
    text = run("graph", ERP, "-f", "text")
    assert text.exit_code == 0
    assert "generation 1" in text.stdout
    assert "critical path: dc-01 -> dns-ready -> erp-db" in text.stdout


def test_graph_rejects_unknown_format():
    assert run("graph", THREE_TIER, "--format", "png").exit_code == 2


def test_plan_dry_run_for_people():
    result = run("plan", ERP)
    assert result.exit_code == 0
    assert "Estimated RTO: 1h28m" in result.stdout
    assert "common-app-consistent" in result.stdout
    assert "latest-app-consistent" in result.stdout


def test_plan_dry_run_json():
    result = run("plan", THREE_TIER, "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["order"] == ["sql", "app-01", "app-02", "web-01", "web-02"]
    assert report["estimated_rto"] == 2520.0
    assert report["commit"] == "approval"
    sql = report["steps"][0]
    assert (sql["unit"], sql["policy"], sql["vms"], sql["critical"]) == (
        "sql",
        "common-app-consistent",
        ["sql-01", "sql-02"],
        True,
    )
    assert [s["generation"] for s in report["steps"]] == [1, 2, 2, 3, 3]


def test_dry_run_report_takes_extra_columns_per_unit():
    plan, graph = load_and_compile(THREE_TIER)
    report = dry_run_report(plan, graph, {"sql": {"recovery_point": "2024-05-01T10:00Z", "data_loss": "12m"}})
    assert report["extra_columns"] == ["recovery_point", "data_loss"]
    assert report["steps"][0]["recovery_point"] == "2024-05-01T10:00Z"
    assert report["steps"][1]["data_loss"] is None
    from rich.console import Console

    console = Console(record=True, width=200)
    print_dry_run(report, console)
    assert "2024-05-01T10:00Z" in console.export_text()


def test_schema_to_stdout_and_file(tmp_path):
    out = run("schema")
    assert out.exit_code == 0
    assert json.loads(out.stdout)["title"] == "Plan"
    target = tmp_path / "s.json"
    assert run("schema", "--output", str(target)).exit_code == 0
    assert target.read_text() == out.stdout
    assert run("schema", "--output", str(tmp_path / "missing" / "s.json")).exit_code == 2


def test_console_script_prints_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from drplan.cli import main; main()",
            "validate",
            str(bad),
            str(tmp_path / "x.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"{bad}:2:1: invalid YAML" in proc.stdout
    assert f"{tmp_path / 'x.yaml'}: cannot read the plan: no such file" in proc.stdout
