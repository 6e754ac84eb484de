"""What an operator sees in the Prefect UI, checked in Debian's headless Chromium against a real server.

A failback of the three-tier plan with one injected unit failure (app-01's failback job fails) and an approval
answered by ``--approve``, then a drill; the run pages, the status board and the report are opened as a person
would and asserted from the rendered page. Screenshots are saved (``screenshot_dir()``) to look at.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.deploy.processes import free_port, wait_until

from .browser import chromium
from .conftest import ROOT, drplan, screenshot_dir

pytestmark = [pytest.mark.server, pytest.mark.timeout(900)]

APPROVAL_HOOK = """
hooks:
  - name: change-approval
    kind: approval
    prompt: Open the change window for the orders application?
    depends_on: [sql]
    runs_in: [failback]
"""


def _plan_with_failure(tmp_path):
    from drplan.plan.loader import load_plan
    from drplan.sim.estate import Estate, OperationFault

    plan = tmp_path / "three-tier.yaml"
    plan.write_text((ROOT / "plans" / "three-tier.yaml").read_text() + APPROVAL_HOOK)
    estate = Estate.from_plan(load_plan(plan))
    estate.faults.operations = [OperationFault(operation="unplannedFailover", vm="app-01", mode="always")]
    estate_file = tmp_path / "estate.yaml"
    estate_file.write_text(estate.to_yaml())
    return plan, estate_file


def _flow_run(server, flow: str) -> dict:
    runs = server.post(
        "/flow_runs/filter",
        {"flow_runs": {"tags": {"all_": [f"drplan-flow:{flow}"]}}, "sort": "START_TIME_DESC"},
    )
    assert runs, f"no {flow} flow run on the server"
    return runs[0]


def _task_runs(server, run_id: str) -> dict[str, dict]:
    runs = server.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [run_id]}}, "limit": 200})
    return {r["name"]: r for r in runs}


def _artifact(server, run_id: str, key_part: str) -> dict:
    def found():
        arts = server.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
        return next((a for a in arts if a.get("key") and key_part in a["key"]), None)

    return wait_until(f"the {key_part} artifact", found, timeout=30)


def _badges(page) -> list[str]:
    """The state badges the page renders (their text), e.g. ["Failed"]."""
    return page.js(
        "Array.from(document.querySelectorAll('[class*=state-badge]'))"
        ".map(e => (e.textContent || '').trim()).filter(t => t)"
    )


def test_failback_with_a_failed_unit_and_a_drill_as_the_operator_sees_them(ui_server, tmp_path):
    plan, estate = _plan_with_failure(tmp_path)
    locks = {"DRPLAN_LOCK_DIR": str(tmp_path / "locks"), "USER": "night-lead"}
    done = drplan(ui_server, "failback", str(plan), "--estate", str(estate), "--approve", env=locks)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    drill = drplan(ui_server, "drill", "plans/three-tier.yaml", "--simulate", env=locks)
    assert drill.returncode == 0, drill.stdout + drill.stderr

    failback_run, drill_run = _flow_run(ui_server, "failback"), _flow_run(ui_server, "drill")
    tasks = _task_runs(ui_server, failback_run["id"])
    assert tasks["failback app-01"]["state_type"] == "FAILED"
    assert (
        tasks["failback web-01"]["state_type"] == "CANCELLED"
        and tasks["failback web-01"]["state_name"] == "Skipped"
    )
    status = _artifact(ui_server, failback_run["id"], "failback-status")
    report = _artifact(ui_server, failback_run["id"], "failback-report")
    drill_report = _artifact(ui_server, drill_run["id"], "drill-report")

    shots = screenshot_dir()
    ui = f"http://127.0.0.1:{ui_server.port}"
    with chromium(tmp_path / "chromium-profile", free_port()) as new_page:
        page = new_page()

        # The flow run page: the run's name carries the plan's name and the SIMULATED marker; the state says
        # what failed.
        page.goto(f"{ui}/runs/flow-run/{failback_run['id']}")
        text = page.wait_for("the failback flow run", lambda t: failback_run["name"] in t and "Failed" in t)
        assert failback_run["name"].startswith("three-tier-failback-SIMULATED-")
        time.sleep(3)  # the graph and the logs are drawn after the page's text
        page.screenshot(shots / "1-failback-flow-run.png", full_page=False)

        # The failed step is shown failed.
        page.goto(f"{ui}/runs/task-run/{tasks['failback app-01']['id']}")
        page.wait_for("the failed step", lambda t: "failback app-01" in t and "Failed" in t)
        assert "Failed" in _badges(page), _badges(page)
        page.screenshot(shots / "2-failed-step.png", full_page=False)

        # A skipped step is shown skipped, never completed; its reason is in words.
        page.goto(f"{ui}/runs/task-run/{tasks['failback web-01']['id']}")
        text = page.wait_for("the skipped step", lambda t: "failback web-01" in t and "Skipped" in t)
        badges = _badges(page)
        assert "Skipped" in badges and "Completed" not in badges, badges
        page.screenshot(shots / "3-skipped-step.png", full_page=False)

        # The task runs list of the run: skipped steps read Skipped, not Completed.
        page.goto(f"{ui}/runs/flow-run/{failback_run['id']}")
        page.wait_for("the flow run's tabs", lambda t: "Task Runs" in t)
        page.js(
            "Array.from(document.querySelectorAll('*'))"
            ".find(e => e.children.length === 0 && (e.textContent || '').trim() === 'Task Runs').click()"
        )
        text = page.wait_for("the task runs list", lambda t: "verify web-01" in t)
        assert "Skipped" in text and "Failed" in text, text
        page.screenshot(shots / "4-task-runs.png")

        # The status board lists every unit, pending or not.
        page.goto(f"{ui}/artifacts/artifact/{status['id']}")
        text = page.wait_for("the status board", lambda t: "units finished" in t)
        for unit in ("sql", "app-01", "app-02", "web-01", "web-02", "change-approval"):
            assert re.search(rf"\b{re.escape(unit)}\b", text), (
                f"{unit} missing from the status board:\n{text}"
            )
        page.screenshot(shots / "5-status-board.png")

        # The report opens with what needs attention: the failed unit and the uncommitted ones; the approver.
        page.goto(f"{ui}/artifacts/artifact/{report['id']}")
        text = page.wait_for("the report", lambda t: "Needs attention" in t)
        first_block = text.split("Needs attention", 1)[1].split("outcome:", 1)[0]
        assert "app-01" in first_block and "failed" in first_block, first_block
        assert "not committed" in first_block and "sql" in first_block and "app-02" in first_block, (
            first_block
        )
        assert "web-01" in first_block and "not started" in first_block, first_block
        assert "night-lead" in text, "the approver is not in the report"
        page.screenshot(shots / "6-failback-report.png")

        # The drill: its run page and its report.
        page.goto(f"{ui}/runs/flow-run/{drill_run['id']}")
        page.wait_for("the drill flow run", lambda t: drill_run["name"] in t and "Completed" in t)
        page.screenshot(shots / "7-drill-flow-run.png", full_page=False)
        page.goto(f"{ui}/artifacts/artifact/{drill_report['id']}")
        text = page.wait_for("the drill report", lambda t: "drill report" in t)
        assert "SIMULATED" in text
        page.screenshot(shots / "8-drill-report.png")
