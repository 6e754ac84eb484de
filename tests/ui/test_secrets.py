"""A secret in drplan's environment, printed by a hook, reaches none of: the report and the other artifacts,
the events, the run's logs, the CLI's output. The hook sees only the variables it declares."""

from __future__ import annotations

import json

import pytest

from tests.deploy.processes import wait_until

from .conftest import ROOT, drplan

pytestmark = [pytest.mark.server, pytest.mark.timeout(600)]

SECRET = "S3cr3t-Value-4711-do-not-leak"
HOOKS = """
hooks:
  - name: announce
    kind: shell
    command: echo "connected with $AZURE_CLIENT_SECRET; vcenter $DRPLAN_VCENTER_PASSWORD"
    env: [AZURE_CLIENT_SECRET, DRPLAN_VCENTER_PASSWORD]
    in_simulation: true
    depends_on: [sql]
  - name: check-lb
    kind: shell
    command: echo "token=$AZURE_CLIENT_SECRET" >&2; echo "leaked $OTHER_SECRET_TOKEN" >&2; exit 3
    env: [AZURE_CLIENT_SECRET]
    in_simulation: true
    depends_on: [app-01]
"""


def test_a_secret_printed_by_a_hook_is_redacted_everywhere(ui_server, tmp_path):
    plan = tmp_path / "three-tier.yaml"
    plan.write_text(
        (ROOT / "plans" / "three-tier.yaml").read_text().replace("name: three-tier", "name: secrets") + HOOKS
    )
    env = {
        "DRPLAN_LOCK_DIR": str(tmp_path / "locks"),
        "AZURE_CLIENT_SECRET": SECRET,
        "DRPLAN_VCENTER_PASSWORD": SECRET + "-vc",
        "OTHER_SECRET_TOKEN": "not-declared-so-not-passed",
    }
    done = drplan(ui_server, "failback", str(plan), "--simulate", "--commit", "after-verification", env=env)
    cli = done.stdout + done.stderr
    assert done.returncode == 1, cli  # check-lb fails; the run says so
    assert "check-lb" in cli and "exited 3" in cli and "***" in cli, cli
    assert "not-declared-so-not-passed" not in cli, "a variable the hook did not declare reached it"

    runs = ui_server.post("/flow_runs/filter", {"flow_runs": {"tags": {"all_": ["drplan-plan:secrets"]}}})
    assert len(runs) == 1
    run_id = runs[0]["id"]
    artifacts = ui_server.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
    report = next(a for a in artifacts if a.get("key", "").endswith("failback-report"))["data"]
    assert "check-lb" in report and "***" in report, report
    logs = ui_server.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200})
    assert any("check-lb" in line["message"] for line in logs)

    def unit_events() -> list[dict] | None:
        page = ui_server.post(
            "/events/filter", {"filter": {"resource": {"id_prefix": ["drplan.unit.secrets"]}}, "limit": 50}
        )
        found = list(page["events"])
        while page.get("next_page"):  # 50 a page at most
            page = ui_server.http.get(page["next_page"]).json()
            found += page["events"]
        return found if any(e["resource"]["prefect.resource.name"] == "check-lb" for e in found) else None

    events = wait_until("the hook's events", unit_events, timeout=60)
    for where, text in (
        ("the CLI output", cli),
        ("the artifacts", json.dumps(artifacts)),
        ("the logs", json.dumps(logs)),
        ("the events", json.dumps(events)),
    ):
        assert SECRET not in text, f"the secret reached {where}"
